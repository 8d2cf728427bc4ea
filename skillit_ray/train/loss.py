"""Masked causal-LM cross-entropy: loss only where the mask says, padding never counts."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def token_losses(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor):
    """Per-token CE of predicting ids[:, 1:] from logits[:, :-1], with the shifted mask.

    Returns (ce [B, L-1] zeroed off-mask, mask [B, L-1] float, correct [B, L-1] bool).
    """
    target = ids[:, 1:]
    m = mask[:, 1:].to(logits.dtype if logits.is_floating_point() else torch.float32)
    pred = logits[:, :-1].float()
    ce = F.cross_entropy(pred.reshape(-1, pred.shape[-1]), target.reshape(-1), reduction="none")
    ce = ce.view_as(target) * m
    correct = pred.argmax(-1) == target
    return ce, m.float(), correct


def row_stats(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor):
    """Per row: mean CE over its masked tokens, and whether every masked token is the argmax."""
    ce, m, correct = token_losses(logits, ids, mask)
    ntok = m.sum(1).clamp_min(1.0)
    row_loss = ce.sum(1) / ntok
    exact = (correct | (m == 0)).all(1)
    return row_loss, exact
