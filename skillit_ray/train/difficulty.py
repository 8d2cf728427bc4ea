"""Per-row difficulty: the initial model's loss on each train row, by Ray Data batch inference.

Sample-level curricula rank rows by it. The scorer builds the model exactly as the training
workers do (same seed, same config), so "initial model" means the model training starts from.
"""

from __future__ import annotations

import numpy as np
import torch

from skillit_ray.config import ModelConfig
from skillit_ray.model import build_model
from skillit_ray.train.loss import row_stats


class DifficultyScorer:
    """A Ray Data callable class: adds a ``difficulty`` column (answer-token mean CE per row)."""

    def __init__(self, model: ModelConfig, vocab_size: int, max_len: int, seed: int, threads: int):
        torch.set_num_threads(threads)
        torch.manual_seed(seed)
        self.model = build_model(model, vocab_size, max_len).eval()

    @torch.no_grad()
    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ids = torch.from_numpy(np.asarray(batch["input_ids"], dtype=np.int64))
        mask = torch.from_numpy(np.asarray(batch["loss_mask"]))
        loss, _ = row_stats(self.model(input_ids=ids).logits, ids, mask)
        batch["difficulty"] = loss.numpy().astype(np.float64)
        return batch


def _shard_rows(batch: dict, cache) -> dict:
    """Ray Data: the listed cache shards' rows, with their skill and row number."""
    skills, rows, ids, masks = [], [], [], []
    for skill, shard in zip(batch["skill"], batch["shard"], strict=True):
        i, m = cache.read_shard("train", str(skill), int(shard))
        start = sum(s.rows for s in cache.shards("train", str(skill))[: int(shard)])
        skills += [str(skill)] * len(i)
        rows.append(np.arange(start, start + len(i)))
        ids.append(i.astype(np.int64))
        masks.append(m)
    return {
        "skill": np.asarray(skills, dtype=object),
        "row": np.concatenate(rows),
        "input_ids": np.concatenate(ids),
        "loss_mask": np.concatenate(masks),
    }


def score(
    cache, skills, model: ModelConfig, vocab_size: int, max_len: int, seed: int, threads: int
) -> dict[str, np.ndarray]:
    """Every train row's difficulty, per skill in the cache's row order."""
    import ray.data

    items = [{"skill": s, "shard": i} for s in skills for i in range(len(cache.shards("train", s)))]
    ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        _shard_rows, fn_kwargs={"cache": cache}, batch_size=1, batch_format="numpy"
    )
    ds = ds.map_batches(
        DifficultyScorer,
        compute=ray.data.ActorPoolStrategy(size=1),
        fn_constructor_kwargs={
            "model": model,
            "vocab_size": vocab_size,
            "max_len": max_len,
            "seed": seed,
            "threads": threads,
        },
        batch_size=256,
        batch_format="numpy",
        concurrency=1,
        num_cpus=threads,
    )
    out = {s: np.full(cache.rows("train", s), np.nan) for s in skills}
    cols = ["skill", "row", "difficulty"]
    for b in ds.select_columns(cols).iter_batches(batch_format="numpy"):
        for s in np.unique(b["skill"].astype(str)):
            sel = b["skill"] == s
            out[s][b["row"][sel]] = b["difficulty"][sel]
    return out


def summarize(scored: dict[str, np.ndarray]) -> dict[str, list[float]]:
    """Per skill, the sorted difficulties (what a curriculum policy paces over)."""
    return {s: sorted(map(float, d)) for s, d in scored.items()}
