"""Nothing lost: exact resume after an interruption, surviving killed workers and a killed
coordinator, a diverged run stopping with its round and skill named, checkpoint checks."""

import json
import os
import shutil
import signal
import threading
import time

import psutil
import pytest

from skillit_ray import launch, rundir
from skillit_ray.data.prepare import prepare
from skillit_ray.errors import CheckpointError, TrainingError
from skillit_ray.train import checkpoint
from tests.conftest import ROUNDS, recipe
from tests.golden import check_golden


def rows(out) -> list[dict]:
    with open(os.path.join(out, "metrics.jsonl")) as fh:
        return [json.loads(line) for line in fh]


class Killer(threading.Thread):
    """Waits until the run in ``out`` has a checkpoint of round index >= ``after``, then
    kills every Ray Train worker process (SIGKILL: no clean-up runs) or the coordinator."""

    def __init__(self, out: str, after: int, target: str = "worker"):
        super().__init__(daemon=True)
        self.out, self.after, self.target = out, after, target
        self.killed: list[int] = []
        self.at_round: int | None = None

    def _latest(self):
        try:
            with open(os.path.join(self.out, rundir.RUN_FILE)) as fh:
                ident = json.load(fh)
            found = checkpoint.latest(ident["storage"], ident["run_name"])
        except (OSError, ValueError, CheckpointError):
            return None, None
        return ident, found[1]["round"] if found else None

    def run(self) -> None:
        deadline = time.time() + 240
        while time.time() < deadline:
            ident, r = self._latest()
            if r is not None and r >= self.after:
                self.at_round = r
                if self.target == "worker":
                    self._kill_workers()
                else:
                    import ray

                    coord = ray.get_actor(f"skillit-coordinator-{ident['run_name']}")
                    ray.kill(coord, no_restart=False)
                    self.killed.append(-1)
                return
            time.sleep(0.05)

    def _kill_workers(self) -> None:
        for p in psutil.process_iter(["cmdline"]):
            if "RayTrainWorker" in " ".join(p.info["cmdline"] or []):
                os.kill(p.pid, signal.SIGKILL)
                self.killed.append(p.pid)


def assert_same_trajectory(got: list[dict], want: list[dict]) -> None:
    assert [r["round"] for r in got] == list(range(ROUNDS))  # no round twice, none missing
    for g, w in zip(got, want, strict=True):
        assert g["samples"] == w["samples"]
        assert g["consumed"] == w["consumed"]  # the same rows, skill by skill
        assert g["mixture"] == pytest.approx(w["mixture"], rel=1e-6, abs=1e-9)
        assert g["eval_loss"] == pytest.approx(w["eval_loss"], rel=1e-5)
        assert g["train_loss"] == pytest.approx(w["train_loss"], rel=1e-5)


def assert_rows_drawn_once_per_epoch(got: list[dict], sizes: dict) -> None:
    """Rows drawn per skill grow by exactly the round's samples, and epoch/cursor agree with
    them: no row skipped or drawn twice within a skill's epoch."""
    drawn = dict.fromkeys(sizes, 0)
    for r in got:
        c = r["consumed"]
        for s, n in sizes.items():
            drawn[s] += r["samples"][s]
            assert c["drawn"][s] == drawn[s]
            assert c["epoch"][s] * n + c["cursor"][s] == drawn[s]


@pytest.fixture
def clean(checkpointed_run):
    return checkpointed_run, rows(checkpointed_run)


def test_clean_run_checkpoints_every_round(clean):
    out, want = clean
    with open(os.path.join(out, rundir.RUN_FILE)) as fh:
        ident = json.load(fh)
    path, meta = checkpoint.latest(ident["storage"], ident["run_name"])
    assert meta["round"] == ROUNDS - 1 and meta["step"] == ROUNDS * 40
    restored = checkpoint.read(path)
    assert restored.round == ROUNDS - 1
    assert set(restored.state) == {"model", "optimizer", "scheduler", "step", "rng"}
    assert restored.ranks[0]["cursor"] == want[-1]["consumed"]["cursor"]
    history = restored.coordinator["coordinator"]["history"]
    assert [h["round"] for h in history] == list(range(ROUNDS))
    assert os.path.isdir(os.path.join(out, "model"))


def test_clean_run_is_the_golden_run(clean):
    """Every number and the final model equal the same seeded run recorded before the
    refactor of the round record, the mixture and the launch path (tests/golden.py)."""
    check_golden("skillit_5_rounds", clean[0])


def test_interrupted_run_resumes_exactly(clean, cache_dir, tmp_path):
    out = str(tmp_path / "run")
    killer = Killer(out, after=1)
    killer.start()
    with pytest.raises(Exception):  # noqa: B017 - whatever Ray raises for a dead worker group
        launch.run(recipe(cache_dir), out=out, echo=False)
    killer.join()
    assert killer.killed and killer.at_round >= 1
    assert len(rows(out)) < ROUNDS

    summary = launch.run(rundir.resume_config(out), out=out, echo=False, resume=True)
    assert summary["start_round"] >= 2
    assert_same_trajectory(rows(out), clean[1])


def test_killed_worker_and_coordinator_are_restored(clean, cache_dir, tmp_path):
    out = str(tmp_path / "run")
    cfg = recipe(cache_dir, max_failures=2)
    worker, coord = Killer(out, after=1), Killer(out, after=3, target="coordinator")
    worker.start()
    coord.start()
    summary = launch.run(cfg, out=out, echo=False)
    worker.join()
    coord.join()
    assert worker.killed and coord.killed
    assert summary["start_round"] >= 4  # the last worker group started from a checkpoint
    got = rows(out)
    assert_same_trajectory(got, clean[1])
    assert_rows_drawn_once_per_epoch(got, prepare(cfg).train.rows_per_skill)


def test_diverged_run_stops_naming_round_and_skill(ray_session, cache_dir, tmp_path):
    out = str(tmp_path / "run")
    cfg = recipe(cache_dir, rounds=2, steps_per_round=4, eval_every=None, lr=1e30, grad_clip=0)
    with pytest.raises(TrainingError, match=r"round 1 \(step 4\): eval loss of skill 'lego/"):
        launch.run(cfg, out=out, echo=False)
    got = rows(out)
    assert len(got) == 1 and "training diverged" in got[0]["stopped"]
    with pytest.raises(CheckpointError, match="holds a diverged state"):
        launch.run(rundir.resume_config(out), out=out, echo=False, resume=True)


def test_mismatched_or_unreadable_checkpoint_is_refused(clean, tmp_path):
    out, want = clean
    changed = rundir.resume_config(out, ["train.batch_size=8", "model.overrides={n_layer: 1}"])
    with pytest.raises(CheckpointError) as err:
        launch.run(changed, out=out, echo=False, resume=True)
    assert "train.batch_size: checkpoint has 16, this run has 8" in str(err.value)
    assert "model: checkpoint has" in str(err.value)
    with pytest.raises(CheckpointError, match=f"already finished all {ROUNDS} rounds"):
        launch.run(rundir.resume_config(out), out=out, echo=False, resume=True)
    assert rows(out) == want  # refused resumes leave the run directory as it was

    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    ident = json.loads((copy / rundir.RUN_FILE).read_text())
    ident["storage"] = str(copy / "ray")
    (copy / rundir.RUN_FILE).write_text(json.dumps(ident))
    path, _ = checkpoint.latest(ident["storage"], ident["run_name"])
    state = os.path.join(path, "state.pt")
    with open(state, "r+b") as fh:
        fh.truncate(100)
    with pytest.raises(CheckpointError, match=r"state.pt: unreadable checkpoint file"):
        launch.run(rundir.resume_config(str(copy)), out=str(copy), echo=False, resume=True)
    with pytest.raises(CheckpointError, match="not a skillit-ray run directory"):
        rundir.resume_config(str(tmp_path))
