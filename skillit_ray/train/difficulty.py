"""Per-row difficulty: the initial model's loss on each train row, by Ray Data batch inference.

Sample-level curricula rank rows by it. The scorer builds the model exactly as the training
workers do (same seed, same config), so "initial model" means the model training starts from.
"""

from __future__ import annotations

from collections import defaultdict

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


def score(ds, model: ModelConfig, vocab_size: int, max_len: int, seed: int, threads: int):
    """The train dataset with a difficulty column, materialized so training reuses the pass."""
    import ray.data

    return ds.map_batches(
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
    ).materialize()


def summarize(ds) -> dict[str, list[float]]:
    """Per skill, the sorted difficulties (what a curriculum policy paces over)."""
    out: dict[str, list] = defaultdict(list)
    for b in ds.select_columns(["skill", "difficulty"]).iter_batches(batch_format="numpy"):
        for skill, d in zip(b["skill"], b["difficulty"], strict=True):
            out[str(skill)].append(float(d))
    return {s: sorted(v) for s, v in out.items()}
