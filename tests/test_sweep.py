"""A 2x2 sweep (eta x T) on Ray Tune, each trial a full TorchTrainer run."""

import csv
import os
import re

import pytest
import yaml

from skillit_ray import cli, config
from skillit_ray.data.prepare import prepare
from skillit_ray.errors import ConfigError
from skillit_ray.tune import SweepSpec, parse_param, search_space, sweep, trial_config
from tests.conftest import tiny_lego
from tests.logs import check_mlflow_run, check_tensorboard, mlflow_runs


def test_parse_and_budget():
    assert parse_param("policy.params.eta=0.1,0.5") == ("policy.params.eta", [0.1, 0.5])
    base = tiny_lego("/tmp/unused")
    cfg = trial_config(base, {"train.rounds": 4}, budget_steps=24)
    assert (cfg.train.rounds, cfg.train.steps_per_round) == (4, 6)  # T changes, budget fixed
    with pytest.raises(ConfigError, match="unknown config key 'train.rouns'"):
        search_space(SweepSpec(base, {"train.rouns": [1, 2]}))


def test_more_rounds_than_budget_steps_is_refused_before_any_trial(tmp_path):
    base = tiny_lego("/tmp/unused")
    spec = SweepSpec(base, {"train.rounds": [4, 30]}, budget_steps=24)
    with pytest.raises(ConfigError, match="budget_steps=24 is fewer steps than train.rounds=30"):
        sweep(spec, str(tmp_path / "sweep"), echo=False)  # before Tune or Ray is touched
    assert not (tmp_path / "sweep").exists()
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({**base, "sweep": {"budget_steps": 2}}))
    with pytest.raises(ConfigError, match=r"sweep.budget_steps=2 is fewer steps than train.rounds"):
        config.load(str(p))


def test_two_by_two_sweep(ray_session, cache_dir, tmp_path):
    base = tiny_lego(cache_dir, rounds=2, steps_per_round=4, eval_every=None)
    base["run"]["loggers"] = ["tensorboard", "mlflow"]
    spec = SweepSpec(
        base, {"policy.params.eta": [0.2, 2.0], "train.rounds": [1, 2]}, budget_steps=8
    )
    out = tmp_path / "sweep"
    summary = sweep(spec, str(out), echo=False)
    assert summary["trials"] == 4 and summary["finished"] == 4
    with open(out / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4
    assert {(r["policy.params.eta"], r["train.rounds"]) for r in rows} == {
        ("0.2", "1"),
        ("0.2", "2"),
        ("2.0", "1"),
        ("2.0", "2"),
    }
    assert all(float(r["mean_eval_loss"]) > 0 for r in rows)
    assert all(r["rounds_done"] == r["train.rounds"] for r in rows)  # each ran its own T
    assert "eval_loss/lego/depth1" in rows[0]
    # one token cache for the sweep, made before the trials (none of them rebuilt it)
    data = prepare(config.from_dict(base))
    made = os.stat(os.path.join(data.cache_root, "manifest.json")).st_mtime_ns
    trials = list((out / "trials").iterdir())
    assert len(trials) == 4
    assert all(made < os.stat(t / "config.yaml").st_mtime_ns for t in trials)
    # folders named by the swept values and the trial's index, Tune's own folders alike
    assert {t.name.rsplit("_", 1)[0] for t in trials} == {
        "eta=0.2,rounds=1",
        "eta=0.2,rounds=2",
        "eta=2,rounds=1",
        "eta=2,rounds=2",
    }
    assert all(re.fullmatch(r"[a-z0-9.,=]+_\d{5}", t.name) for t in trials)
    # run.loggers through Tune's callbacks: TensorBoard files in each trial's Tune folder and
    # one MLflow run per trial, each holding its trial's metrics.jsonl at the optimizer steps
    for t in trials:
        check_tensorboard(out / "ray" / "tune" / t.name, t, prefix="ray/tune/")
        assert not (t / "tensorboard").exists() and not (t / "mlruns").exists()  # logged once
    runs = mlflow_runs(out / "mlruns")
    assert sorted(r.info.run_name for r in runs) == sorted(t.name for t in trials)
    for run in runs:
        check_mlflow_run(out / "mlruns", run, out / "trials" / run.info.run_name)
    assert (out / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    best = config.load(str(out / "best_config.yaml"))
    assert best.train.rounds * best.train.steps_per_round == 8
    assert best.policy.params["eta"] == summary["best_params"]["policy.params.eta"]
    run_out = tmp_path / "best_run"
    assert cli.main(["run", str(out / "best_config.yaml"), "--out", str(run_out), "--quiet"]) == 0
    assert len((run_out / "metrics.jsonl").read_text().splitlines()) == best.train.rounds


def test_sweep_section_in_config(tmp_path):
    raw = tiny_lego("/tmp/unused")
    raw["sweep"] = {
        "params": {"policy.params.eta": {"loguniform": [0.01, 1.0]}},
        "num_samples": 3,
        "scheduler": "asha",
    }
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(raw))
    cfg = config.load(str(p))
    assert cfg.sweep.scheduler == "asha" and cfg.sweep.num_samples == 3
    space = search_space(SweepSpec(raw, cfg.sweep.params))
    assert "policy.params.eta" in space
