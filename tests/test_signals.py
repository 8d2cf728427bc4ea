"""The core computes what a policy declares: difficulty, initial loss, or no evaluation at all."""

import json

import numpy as np

from skillit_ray import config, launch
from skillit_ray.mixture import largest_remainder
from tests.conftest import tiny_lego
from tests.golden import check_golden


def run(cache_dir, tmp_path, policy, params=None, **train):
    raw = tiny_lego(cache_dir, **{"rounds": 2, "steps_per_round": 3, "eval_every": None, **train})
    raw["policy"] = {"name": policy, "params": params or {}}
    out = tmp_path / policy
    launch.run(config.from_dict(raw), out=str(out), echo=False)
    check_golden(f"signals_{policy}", out)
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def test_curriculum_gets_difficulty_from_batch_inference(ray_session, cache_dir, tmp_path):
    rows = run(cache_dir, tmp_path, "curriculum")
    kinds, bounds = zip(*[r["row_filter"] for r in rows], strict=True)
    assert kinds == ("max", "max") and bounds[0] < bounds[1]  # the pool of easy rows grows
    for r in rows:
        probs = list(r["mixture"].values())
        assert list(r["samples"].values()) == largest_remainder(np.array(probs), 48).tolist()


def test_skill_curriculum_gets_per_row_difficulty(ray_session, cache_dir, tmp_path):
    # Skill-It's difficulty: the mean initial loss over each skill's train rows (order_by train)
    rows = run(cache_dir, tmp_path, "skill_curriculum", rounds=3, steps_per_round=2)
    mixes = np.array([[r["mixture"][s] for s in sorted(r["mixture"])] for r in rows])
    # 6 steps of 16 rows, pool 1:1:3: phases of 9, 9 and 28 rows take 1 + 1 + 2 steps, so round
    # 0 is inside the one-skill phases and round 2 samples the whole pool
    assert (mixes[0] == 0).any()
    assert np.allclose(mixes[2], [0.2, 0.2, 0.6])


def test_random_without_log_eval_evaluates_nothing(ray_session, cache_dir, tmp_path):
    rows = run(cache_dir, tmp_path, "random", log_eval=False)
    assert all(r["eval_loss"] == {} and r["eval_checkpoints"] == [] for r in rows)
    assert all(r["eval_s"] == 0.0 for r in rows)
