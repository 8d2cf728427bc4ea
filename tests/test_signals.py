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


def test_logged_evals_follow_eval_every_and_leave_training_unchanged(
    ray_session, cache_dir, tmp_path
):
    """With log_eval (the default) a policy that reads no eval loss is evaluated on the same
    grid as one that does (every eval_every steps and at round ends), so arms of a comparison
    share their steps; evaluating changes nothing of training: every trained number and the
    final model equal the run that evaluated nothing (golden signals_random)."""
    from tests.golden import GOLDEN_DIR, run_numbers

    raw = tiny_lego(cache_dir, rounds=2, steps_per_round=3, eval_every=1)
    raw["policy"] = {"name": "random", "params": {}}
    out = tmp_path / "random_logged"
    launch.run(config.from_dict(raw), out=str(out), echo=False)
    got = run_numbers(out)
    silent = json.loads((GOLDEN_DIR / "signals_random.json").read_text())
    assert [[c["step"] for c in r["eval_checkpoints"]] for r in got["metrics"]] == [
        [1, 2, 3],
        [4, 5, 6],
    ]
    assert all(
        set(c["acc"]) == set(r["eval_acc"]) for r in got["metrics"] for c in r["eval_checkpoints"]
    )
    trained = ("samples", "train_loss", "lr", "consumed", "mixture", "next_mixture")
    for mine, ref in zip(got["metrics"], silent["metrics"], strict=True):
        assert {k: mine[k] for k in trained} == {k: ref[k] for k in trained}
    assert got["model_sha256"] == silent["model_sha256"]
