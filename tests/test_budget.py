"""A run over its memory budget: evaluations stream the eval rows from the token cache, and
the run's numbers are exactly an in-memory run's."""

import json

from skillit_ray import config, launch
from tests.conftest import tiny_lego


def _metrics(out) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_budgeted_run_trains_like_an_in_memory_run(ray_session, cache_dir, tmp_path):
    runs = {}
    for name, budget in (("memory", None), ("spilled", 0.02)):
        recipe = tiny_lego(cache_dir)
        recipe["data"]["memory_budget_mb"] = budget  # the eval split is ~5 KB of tokens
        out = tmp_path / name
        summary = launch.run(config.from_dict(recipe), out=str(out), echo=False)
        runs[name] = (summary, _metrics(out))
    (mem, mem_rows), (spill, spill_rows) = runs["memory"], runs["spilled"]
    assert (mem["eval_streamed"], spill["eval_streamed"]) == (False, True)
    assert len(spill_rows) == len(mem_rows) == 3
    for a, b in zip(mem_rows, spill_rows, strict=True):
        assert a["samples"] == b["samples"]
        assert a["train_loss"] == b["train_loss"]  # same rows, same order: bit-identical
        assert a["eval_loss"] == b["eval_loss"]
