"""End to end on a real local Ray: generator -> Ray Data -> TorchTrainer -> coordinator."""

import json
import math
from dataclasses import dataclass

import numpy as np
import pytest
import yaml

from skillit_ray import cli, config, launch, policy
from skillit_ray.errors import PolicyError
from skillit_ray.mixture import Mixture, largest_remainder
from skillit_ray.policy import Policy, register_policy
from tests.conftest import tiny_lego
from tests.golden import check_golden
from tests.logs import check_mlflow_run, check_tensorboard, mlflow_runs


def test_tiny_lego_skillit_three_rounds(ray_session, cache_dir, tmp_path, capsys):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_lego(cache_dir)))
    out = tmp_path / "run"
    sets = ["--set", "policy.params.eta=2.0", "--set", "run.loggers=[tensorboard,mlflow]"]
    assert cli.main(["run", str(recipe), "--out", str(out), *sets]) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("round ")]
    assert len(printed) == 3

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [0, 1, 2]
    assert [r["step"] for r in rows] == [8, 16, 24]
    skills = ["lego/depth1", "lego/depth2", "lego/depth3"]
    for r in rows:
        probs = np.array([r["mixture"][s] for s in skills])
        assert math.isclose(probs.sum(), 1.0)
        # exact counts: the largest-remainder split of 8 steps x 16 rows, not a noisy draw
        want = largest_remainder(probs, 8 * 16).tolist()
        assert [r["samples"][s] for s in skills] == want
        assert set(r["eval_loss"]) == set(skills) and set(r["eval_acc"]) == set(skills)
        assert all(0.0 <= v <= 1.0 for v in r["eval_acc"].values())
        assert len(r["eval_checkpoints"]) == 2  # eval_every 4 within 8-step rounds
        assert all(math.isfinite(v) for v in r["train_loss"].values())
        for key in ("train_loss", "wall_s", "eval_acc"):
            assert key in r
    for prev, nxt in zip(rows, rows[1:], strict=False):
        assert nxt["mixture"] == pytest.approx(prev["next_mixture"])
        assert not np.allclose(list(prev["mixture"].values()), list(nxt["mixture"].values()))

    summary = json.loads((out / "summary.json").read_text())
    assert summary["rounds"] == 3 and summary["steps"] == 24
    assert summary["samples"] == {s: sum(r["samples"][s] for r in rows) for s in skills}
    # VmHWM only grows, up to the kernel's per-thread RSS counter batching (well under 1 MiB)
    peaks = summary["worker_peak_rss_by_phase_mb"]
    assert list(peaks)[:5] == ["model", "open_train", "open_eval", "first_step", "first_eval"]
    assert list(peaks)[-2:] == ["round3_trained", "round3_reported"]
    v = list(peaks.values())
    assert all(b > a - 1.0 for a, b in zip(v, v[1:], strict=False)), peaks
    assert max(peaks.values()) <= summary["worker_peak_rss_mb"] + 1.0
    assert (summary["device"], summary["process_group"]) == ("cpu", "gloo")
    # tokens: LEGO rows fit max_length, so none dropped; the loss tokens trained on are the
    # trained rows' loss-mask tokens
    tok = summary["tokens"]
    assert tok["dropped"] == 0 and tok["read"] == tok["kept"] > 0
    assert 24 * 16 <= tok["trained_on"] <= 24 * 16 * 20
    resolved = config.load(str(out / "config.yaml"))
    assert resolved.policy.params["eta"] == 2.0
    check_golden("tiny_lego_cli", out)  # the loggers only watch: the numbers are the golden's

    # run.loggers: every round's per-skill eval loss and accuracy, mixture and train loss, at
    # its optimizer step, in TensorBoard event files and one finished MLflow run
    check_tensorboard(out / "tensorboard", out)
    (run,) = mlflow_runs(out / "mlruns")
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert run.data.params["policy.params.eta"] == "2.0"
    check_mlflow_run(out / "mlruns", run, out)


class BreaksInRound1(Policy):
    """Returns a negative probability after round 1 (to test the run's guard)."""

    @dataclass
    class Config:
        pass

    def init(self, ctx):
        self.skills = ctx.train_skills
        return Mixture.uniform(ctx.train_skills)

    def update(self, obs):
        if obs.round == 0:
            return Mixture.uniform(self.skills)
        return Mixture(self.skills, np.array([1.5, -0.5] + [0.0] * (len(self.skills) - 2)))


@pytest.fixture
def breaks_in_round_1():
    """Registered only for its test, so the plugin contract tests never collect it."""
    register_policy("test_breaks_in_round_1")(BreaksInRound1)
    yield
    policy._REGISTERED.pop("test_breaks_in_round_1")


def test_invalid_mixture_stops_run_naming_policy(
    ray_session, cache_dir, tmp_path, breaks_in_round_1
):
    raw = tiny_lego(cache_dir, rounds=3, steps_per_round=2, eval_every=None)
    raw["policy"] = {"name": "test_breaks_in_round_1"}
    cfg = config.from_dict(raw)
    with pytest.raises(PolicyError) as err:
        launch.run(cfg, out=str(tmp_path / "bad"), echo=False)
    msg = str(err.value)
    assert "test_breaks_in_round_1" in msg and "-0.5" in msg
    # the round the mixture was for, 1-based as the console prints rounds
    assert msg.startswith("the mixture for round 3 (chosen after round 2 trained)")
    assert "Traceback" not in msg and "ray::" not in msg  # our message, not Ray's wrapper
    rows = (tmp_path / "bad" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 2  # both rounds trained before the policy failed are recorded
