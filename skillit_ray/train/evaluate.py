"""Per-skill evaluation, sharded across ranks and exact: all-reduce (sum, count, correct)."""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist

from skillit_ray.data.stream import RankShards
from skillit_ray.train.loss import row_stats


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    store: RankShards,
    batch_size: int,
    device: torch.device,
    with_accuracy: bool,
) -> tuple[dict[str, float], dict[str, float]]:
    """Mean over rows of each row's masked token-mean CE, and exact-match accuracy, per skill."""
    was_training = model.training
    model.eval()
    stats = torch.zeros(len(store.skills), 3, dtype=torch.float64, device=device)
    for k, skill in enumerate(store.skills):
        n = store.rows(skill)
        for lo in range(0, n, batch_size):
            ids, mask = store.gather(skill, np.arange(lo, min(n, lo + batch_size)))
            ids_t = torch.from_numpy(ids).to(device)
            mask_t = torch.from_numpy(mask).to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(input_ids=ids_t).logits
            loss, exact = row_stats(logits, ids_t, mask_t)
            stats[k, 0] += loss.double().sum()
            stats[k, 1] += len(ids)
            stats[k, 2] += exact.double().sum()
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(stats)
    model.train(was_training)
    s = stats.cpu().numpy()
    loss = {sk: float(s[k, 0] / s[k, 1]) for k, sk in enumerate(store.skills)}
    acc = (
        {sk: float(s[k, 2] / s[k, 1]) for k, sk in enumerate(store.skills)} if with_accuracy else {}
    )
    return loss, acc
