"""Training without Ray Train: the same plan, sampler, loss and optimizer in one process.

Used by graph-learning ablation runs (Ray tasks) and by the plain-PyTorch benchmark baseline.
"""

from __future__ import annotations

import numpy as np
import torch

from skillit_ray.data.plan import make_plan
from skillit_ray.train.loss import token_losses


def batch(skills, slots: np.ndarray, take):
    """The rows a step trains on: each skill's count from the plan, ``take(skill, count)``
    reading them (ids, mask). Returns numpy (ids, mask, skill index of each row)."""
    ids, mask, rows = [], [], []
    for k, skill in enumerate(skills):
        c = int((slots == k).sum())
        if c:
            i, m = take(skill, c)
            ids.append(i)
            mask.append(m)
            rows.append(np.full(c, k))
    return np.concatenate(ids), np.concatenate(mask), np.concatenate(rows)


def optimizer_step(model, opt, sched, loss: torch.Tensor, grad_clip: float) -> None:
    """Backward, clip the global gradient norm, step the optimizer and the LR schedule."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    if sched is not None:
        sched.step()


def step(model, opt, sched, ids, mask, grad_clip: float) -> torch.Tensor:
    """One optimizer step on the masked token-mean loss; returns per-row losses."""
    ce, m, _ = token_losses(model(input_ids=ids).logits, ids, mask)
    optimizer_step(model, opt, sched, ce.sum() / m.sum().clamp_min(1.0), grad_clip)
    return (ce.sum(1) / m.sum(1).clamp_min(1.0)).detach()


def train_round(
    model,
    opt,
    sched,
    streams,
    skills,
    probs,
    steps: int,
    batch_size: int,
    seed: int,
    round_: int,
    grad_clip: float,
) -> np.ndarray:
    """``steps`` steps under one mixture; returns [k, 2] per-skill (sum of row loss, rows)."""
    plan = make_plan(np.asarray(probs, dtype=float), steps, batch_size, seed, round_)
    sums = np.zeros((len(skills), 2))
    for s in range(steps):
        ids, mask, rows = batch(skills, plan.slots[s], streams.take)
        row_loss = step(
            model, opt, sched, torch.from_numpy(ids), torch.from_numpy(mask), grad_clip
        ).numpy()
        np.add.at(sums[:, 0], rows, row_loss)
        np.add.at(sums[:, 1], rows, 1)
    return sums
