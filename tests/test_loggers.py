"""run.loggers before Ray: names checked, a missing package is one line saying what to install;
what a round logs; sweep trial names. The loggers' files are read back from real runs: a run
(test_run.py), a sweep (test_sweep.py), and here a run stopped by SIGTERM and resumed."""

import math
import os
import re
import signal
import sys
import threading
import time

import pytest
import yaml

from skillit_ray import cli, config, launch, rundir
from skillit_ray.errors import ConfigError, Interrupted
from skillit_ray.loggers import scalars
from skillit_ray.tune import trial_name
from tests.conftest import ROUNDS, recipe, tiny_lego
from tests.golden import check_golden
from tests.logs import check_mlflow_run, check_tensorboard, metrics_rows, mlflow_runs


@pytest.fixture
def recipe_file(tmp_path):
    p = tmp_path / "tiny.yaml"
    p.write_text(yaml.safe_dump(tiny_lego(str(tmp_path / "cache"))))
    return str(p)


@pytest.mark.parametrize(
    "command", [["run"], ["sweep", "--param", "policy.params.eta=0.1,0.5"]], ids=["run", "sweep"]
)
def test_missing_mlflow_is_one_line_before_ray(recipe_file, tmp_path, capsys, monkeypatch, command):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # how Python blocks an import
    args = [*command, recipe_file, "--set", "run.loggers=[tensorboard,mlflow]"]
    assert cli.main([*args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "skillit-ray: error: run.loggers: 'mlflow' needs the mlflow package, which is not "
        "installed: pip install 'skillit-ray[loggers]' (or mlflow-skinny)"
    )
    # before the data was made and Ray started (the fast tier fails a test that starts Ray)
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


def test_logger_names_are_checked():
    raw = tiny_lego("/tmp/unused")
    raw["run"]["loggers"] = ["tensorboard", "wandb"]
    with pytest.raises(ConfigError, match=r"run.loggers: unknown 'wandb'; expected some of"):
        config.validate(config.from_dict(raw))
    raw["run"]["loggers"] = "tensorboard"
    with pytest.raises(ConfigError, match=r"run.loggers must be a list, got 'tensorboard'"):
        config.validate(config.from_dict(raw))


def test_a_round_logs_every_finite_number_but_its_position():
    row = {
        "round": 2,
        "step": 24,
        "timesteps_total": 24,
        "mean_eval_loss": 0.5,
        "mean_eval_acc": None,  # a task without accuracy
        "eval_loss/lego/depth1": 0.25,
        "eval_loss/lego/depth2": math.nan,  # a diverged round: nothing to plot
        "mixture/lego/depth1": 1,
        "flag": True,
    }
    assert scalars(row) == {
        "mean_eval_loss": 0.5,
        "eval_loss/lego/depth1": 0.25,
        "mixture/lego/depth1": 1.0,
    }


def test_trial_names_say_the_swept_values_and_are_folder_names():
    params = {"policy.params.eta": 0.5, "train.rounds": 4}
    assert trial_name(params, "5fbac_00001") == "eta=0.5,rounds=4_00001"
    # a last part shared by two keys keeps the whole key; floats short
    both = {"train.lr": 0.001, "graph.lr": 1 / 3, "train.seed": 2}
    assert trial_name(both, "a_00012") == "train.lr=0.001,graph.lr=0.3333,seed=2_00012"
    odd = {"data.generator_params.tasks": ["copy", "sort"], "run.name": "a/b c:*" * 40}
    name = trial_name(odd, "a_00003")
    assert re.fullmatch(r"[A-Za-z0-9._,=+-]+", name) and len(name) <= 126
    assert name.startswith("tasks=__copy_,__sort__,name=a_b_c__") and name.endswith("_00003")


def _stop_after_first_round(metrics) -> None:
    """SIGTERM to this process (as `kill` or a scheduler sends it) once a round is recorded:
    the run is training then, under its own handler (interrupt.StopOnSignal)."""
    end = time.time() + 300
    while time.time() < end:
        if metrics.exists() and metrics.read_text().count("\n") >= 1:
            os.kill(os.getpid(), signal.SIGTERM)
            return
        time.sleep(0.05)


def test_stopped_and_resumed_run_continues_its_logs_and_counts_running_time(
    ray_session, cache_dir, tmp_path, capsys
):
    cfg = recipe(cache_dir)  # the golden run skillit_5_rounds
    cfg.run.loggers = ["tensorboard", "mlflow"]
    out = tmp_path / "run"
    stopper = threading.Thread(target=_stop_after_first_round, args=(out / "metrics.jsonl",))
    stopper.start()
    with pytest.raises(Interrupted) as stop:
        launch.run(cfg, out=str(out), echo=True)
    stopper.join()
    assert stop.value.signum == signal.SIGTERM
    kept = metrics_rows(out)
    assert 1 <= len(kept) < ROUNDS
    (run,) = mlflow_runs(out / "mlruns")
    assert run.info.status == "KILLED"
    time.sleep(3)  # the run is stopped: this must not count in elapsed time, ETA or wall_s
    capsys.readouterr()

    t0 = time.time()
    summary = launch.run(rundir.resume_config(str(out)), out=str(out), echo=True, resume=True)
    took = time.time() - t0
    printed = [x.split()[1] for x in capsys.readouterr().out.splitlines() if x.startswith("round ")]
    assert printed == [f"{r + 1}/{ROUNDS}" for r in range(len(kept), ROUNDS)]  # each round once
    got = metrics_rows(out)
    assert [r["wall_s"] for r in got[: len(kept)]] == [r["wall_s"] for r in kept]
    assert kept[-1]["wall_s"] < got[len(kept)]["wall_s"]
    assert summary["wall_s"] <= kept[-1]["wall_s"] + took  # running time: the stop left out
    check_golden("skillit_5_rounds", out)
    # the logs: every step once in TensorBoard, one MLflow run continued to its end
    check_tensorboard(out / "tensorboard", out)
    (run,) = mlflow_runs(out / "mlruns")
    assert run.info.status == "FINISHED"
    check_mlflow_run(out / "mlruns", run, out)
