"""A run over its memory budget, from a token cache that `skillit-ray prepare` wrote to a
file:// URI: evaluations stream the eval rows, and the numbers are exactly an in-memory run's
(whose cache is a local folder)."""

import json

import yaml

from skillit_ray import cli, config, launch
from tests.conftest import tiny_lego


def _metrics(out) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_budgeted_run_from_a_uri_cache_trains_like_an_in_memory_run(
    ray_session, cache_dir, tmp_path, capsys
):
    uri = f"file://{tmp_path}/uri-cache"
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_lego(cache_dir)))
    assert cli.main(["prepare", str(recipe), "--out", uri]) == 0
    printed = capsys.readouterr().out
    assert f"train from it with --set data.token_cache={uri}" in printed
    assert "train 600 rows" in printed and (tmp_path / "uri-cache/manifest.json").exists()
    runs = {}
    for name, budget, cache in (("memory", None, None), ("budget", 0.02, uri)):
        raw = tiny_lego(cache_dir)
        raw["data"]["memory_budget_mb"] = budget  # the eval split is ~5 KB of tokens
        raw["data"]["token_cache"] = cache
        out = tmp_path / name
        summary = launch.run(config.from_dict(raw), out=str(out), echo=False)
        runs[name] = (summary, _metrics(out))
    (mem, mem_rows), (bud, bud_rows) = runs["memory"], runs["budget"]
    assert (mem["eval_streamed"], bud["eval_streamed"]) == (False, True)
    assert "stale" not in capsys.readouterr().err  # the prepared URI cache was reused
    assert len(bud_rows) == len(mem_rows) == 3
    for a, b in zip(mem_rows, bud_rows, strict=True):
        assert a["samples"] == b["samples"]
        assert a["train_loss"] == b["train_loss"]  # same rows, same order: bit-identical
        assert a["eval_loss"] == b["eval_loss"]
