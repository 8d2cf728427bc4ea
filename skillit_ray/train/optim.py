"""AdamW with warmup, then a linear, constant or cosine schedule over the whole run (state
persists across rounds)."""

from __future__ import annotations

import math

import torch


def build_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        # Biases, norms and embeddings of size-1 dims are not decayed (as HF Trainer does).
        (no_decay if p.ndim < 2 or "norm" in name.lower() or "ln_" in name else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, eps=1e-8)


def build_scheduler(opt: torch.optim.Optimizer, warmup: int, total: int, schedule="linear"):
    def factor(step: int) -> float:
        if warmup > 0 and step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        left = max(0.0, (total - step) / max(1, total - warmup))
        if schedule == "cosine":
            return 0.5 * (1.0 - math.cos(math.pi * left))
        return left

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)
