"""Nothing lost: the clean run's checkpoints, the fault pass (scripts/faults.py: killed
workers, coordinator and driver, Ctrl-C, each resumed to the golden run), a diverged run
stopping with its round and skill named, checkpoint checks."""

import json
import os
import shutil

import pytest

from skillit_ray import launch, rundir
from skillit_ray.errors import CheckpointError, TrainingError
from skillit_ray.train import checkpoint
from tests.conftest import ROUNDS, recipe
from tests.golden import check_golden


def rows(out) -> list[dict]:
    with open(os.path.join(out, "metrics.jsonl")) as fh:
        return [json.loads(line) for line in fh]


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


@pytest.mark.ray
def test_fault_pass(tmp_path):
    """scripts/faults.py: a killed worker (1 and 2 workers), a killed coordinator, Ctrl-C and a
    killed driver, each resumed; every run ends equal to its golden run, no Ray process of it
    is left behind. It replaces the kill/resume tests that compared with a fresh clean run."""
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(os.path.dirname(__file__)), "scripts", "faults.py")
    # Another job's Train worker on the same machine (what its command line says): the kills
    # must stay inside the fault pass's own cluster.
    bystander = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(3600)", "ray::RayTrainWorker"]
    )
    try:
        proc = subprocess.run(
            [sys.executable, script, "--work", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=1500,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
        assert proc.stdout.count("ok    ") == 3, proc.stdout
        assert bystander.poll() is None, "the fault pass killed a process outside its cluster"
    finally:
        bystander.kill()
        bystander.wait()


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


def test_finished_checkpoint_completes_missing_metrics(clean, tmp_path):
    """A driver killed while its worker committed the last checkpoint leaves a finished run
    whose metrics.jsonl lacks the last rounds: the refused resume writes them from the
    checkpoint's history, the same rows a clean run wrote (all but the wall clock)."""
    out, want = clean
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    ident = json.loads((copy / rundir.RUN_FILE).read_text())
    ident["storage"] = str(copy / "ray")
    (copy / rundir.RUN_FILE).write_text(json.dumps(ident))
    lines = (copy / "metrics.jsonl").read_text().splitlines()
    (copy / "metrics.jsonl").write_text("\n".join(lines[:2]) + "\n")
    shutil.rmtree(copy / "model")
    with pytest.raises(
        CheckpointError, match="missing from metrics.jsonl: written, with the final model, from"
    ):
        launch.run(rundir.resume_config(str(copy)), out=str(copy), echo=False, resume=True)
    got = rows(copy)
    assert [{k: v for k, v in r.items() if k != "wall_s"} for r in got] == [
        {k: v for k, v in r.items() if k != "wall_s"} for r in want
    ]
    check_golden("skillit_5_rounds", copy)  # every number and the final model
