"""Two DDP workers: one mixture for all ranks, disjoint rows, exact sharded evaluation."""

import json

import numpy as np
import torch
from transformers import AutoModelForCausalLM

from skillit_ray import config, launch
from skillit_ray.data.prepare import prepare
from skillit_ray.train.evaluate import evaluate
from tests.conftest import tiny_lego
from tests.golden import check_golden


def test_two_workers(ray_session, cache_dir, tmp_path):
    raw = tiny_lego(cache_dir, rounds=2, steps_per_round=4, eval_every=None, num_workers=2)
    cfg = config.from_dict(raw)
    out = tmp_path / "run"
    launch.run(cfg, out=str(out), echo=False)
    check_golden("two_workers", out)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    ranks = [json.loads(x) for x in (out / "ranks.jsonl").read_text().splitlines()]
    for r, row in enumerate(rows):
        mine = [x for x in ranks if x["round"] == r]
        assert sorted(x["rank"] for x in mine) == [0, 1]
        assert mine[0]["mixture"] == mine[1]["mixture"] == list(row["mixture"].values())
        # the ranks' local draws add up to the round's exact global counts
        total = {s: mine[0]["samples"][s] + mine[1]["samples"][s] for s in row["samples"]}
        assert total == row["samples"]
    keys = [x["row_keys"] for x in ranks if x["round"] == 0]
    data = prepare(cfg)
    for skill, n in data.train.rows_per_skill.items():
        a, b = set(keys[0][skill]), set(keys[1][skill])
        assert not a & b  # disjoint rows
        assert len(a) + len(b) == n  # and together every row of the skill

    # Sharded, all-reduced evaluation equals a one-process evaluation of the final model.
    model = AutoModelForCausalLM.from_pretrained(str(out / "model"), local_files_only=True)
    loss, acc = evaluate(model, data.local_store("eval"), 64, torch.device("cpu"), True)
    assert np.allclose([rows[-1]["eval_loss"][s] for s in loss], list(loss.values()), atol=1e-5)
    assert [rows[-1]["eval_acc"][s] for s in acc] == list(acc.values())
