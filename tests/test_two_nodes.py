"""Two Ray nodes on this machine - a head and a worker node, each its own raylet and object
store, joined as the README's cluster section says - with one shared folder as the cluster's
storage: a run through `ray job submit` with one DDP worker per node, the loss of the worker
node in the middle of that run, and a sweep whose trials land on both nodes. Each result is
compared with the same run on one node (golden runs recorded there)."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests import nodes
from tests.conftest import tiny_lego
from tests.golden import check_golden, run_numbers

ROUNDS = 4


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    with nodes.two_nodes(tmp_path_factory.mktemp("two_nodes")) as cluster:
        yield cluster


def _recipe(two_nodes: nodes.TwoNodes, name: str, raw: dict) -> Path:
    """A job folder holding the recipe: shared storage, one worker slot per worker."""
    raw["run"]["storage_path"] = str(two_nodes.folder / "storage")
    raw["train"]["worker_resources"] = {nodes.SLOT: 1}
    job = two_nodes.folder / f"job-{name}"
    job.mkdir(parents=True, exist_ok=True)
    (job / "recipe.yaml").write_text(yaml.safe_dump(raw))
    return job


def two_worker_recipe(cache_dir: str) -> dict:
    """Two DDP workers, a checkpoint every round, one restart allowed (golden: two_nodes,
    recorded with the same recipe on one node)."""
    return tiny_lego(
        cache_dir, rounds=ROUNDS, steps_per_round=20, eval_every=None, num_workers=2,
        max_failures=1,
    )  # fmt: skip


def registered(storage: Path, run: str) -> bool:
    """Ray Train has committed a checkpoint of the run (a checkpoint folder appears before it
    is registered: a node lost in between restarts the run from scratch)."""
    for snap in storage.glob(f"{run}/checkpoint_manager_snapshot.json"):
        try:
            return bool(json.loads(snap.read_text())["checkpoint_results"])
        except (ValueError, KeyError):  # being written
            return False
    return False


def cluster_state(two_nodes: nodes.TwoNodes, name: str) -> None:
    """What holds the nodes' resources now (kept in the test folder, for a failure's report)."""
    text = ""
    for what in (["placement-groups", "--detail"], ["actors", "--filter", "state=ALIVE"]):
        got = subprocess.run(
            [nodes.RAY, "list", *what, "--address", two_nodes.address],
            env=two_nodes.env, capture_output=True, text=True,
        )  # fmt: skip
        text += got.stdout + got.stderr
    got = subprocess.run(
        [nodes.RAY, "status", "--address", two_nodes.gcs],
        env=two_nodes.env, capture_output=True, text=True,
    )  # fmt: skip
    (two_nodes.folder / f"state_{name}.txt").write_text(text + got.stdout + got.stderr)


@pytest.fixture(scope="module")
def clean_run(two_nodes, cache_dir) -> tuple[Path, subprocess.CompletedProcess]:
    job = _recipe(two_nodes, "clean", two_worker_recipe(cache_dir))
    # A relative --out inside a job goes under run.storage_path.
    sub = two_nodes.submit(job, "skillit-ray", "run", "recipe.yaml", "--out", "runs/clean")
    return two_nodes.folder / "storage" / "runs" / "clean", sub


# First: the sweep needs both nodes' worker slots free. Run after another job, its second trial
# waited for the head's slot instead of taking the worker node's (twice in three runs; not
# understood yet: cluster_state keeps what the nodes held after each run).
def test_sweep_across_two_nodes_equals_one_node(two_nodes, cache_dir):
    raw = tiny_lego(cache_dir)  # 3 rounds x 8 steps, one worker per trial
    job = _recipe(two_nodes, "sweep", raw)
    sub = two_nodes.submit(
        job, "skillit-ray", "sweep", "recipe.yaml", "--param", "policy.params.eta=2.0,0.5",
        "--out", "runs/sweep",
    )  # fmt: skip
    assert sub.returncode == 0, sub.stdout[-4000:] + sub.stderr[-2000:]
    out = two_nodes.folder / "storage" / "runs" / "sweep"
    assert json.loads((out / "sweep_summary.json").read_text())["finished"] == 2
    placed = set()
    for trial in (out / "trials").iterdir():
        eta = yaml.safe_load((trial / "config.yaml").read_text())["policy"]["params"]["eta"]
        # one-node goldens: tiny_lego_cli (test_run) and tiny_lego_eta_0.5
        check_golden("tiny_lego_cli" if eta == 2.0 else "tiny_lego_eta_0.5", trial)
        ranks = [json.loads(x) for x in (trial / "ranks.jsonl").read_text().splitlines()]
        placed |= {x["node"] for x in ranks}
    assert len(placed) == 2, "both trials trained on one node"
    assert re.search(r"sweep: trial 2/2 done", sub.stdout)


def test_two_node_run_one_worker_per_node(two_nodes, clean_run):
    out, sub = clean_run
    assert sub.returncode == 0, sub.stdout[-4000:] + sub.stderr[-2000:]
    check_golden("two_nodes", out)  # every number and the final model, as on one node
    storage = two_nodes.folder / "storage"
    ranks = [json.loads(x) for x in (out / "ranks.jsonl").read_text().splitlines()]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == ROUNDS
    for r, row in enumerate(rows):
        mine = sorted((x for x in ranks if x["round"] == r), key=lambda x: x["rank"])
        assert [x["rank"] for x in mine] == [0, 1]
        assert mine[0]["mixture"] == mine[1]["mixture"] == list(row["mixture"].values())
        assert mine[0]["node"] != mine[1]["node"]  # one worker on each node
    # checkpoints, the run's outputs and the token cache: all in the shared storage
    run_dir = next(storage.glob("tiny-clean-*"))
    assert list(run_dir.glob("checkpoint_*"))
    mirrored = (run_dir / "outputs" / "metrics.jsonl").read_text()
    assert mirrored == (out / "metrics.jsonl").read_text()
    assert (out / "model" / "model.safetensors").exists()
    assert list((storage / "tokens").glob("*/manifest.json"))
    cluster_state(two_nodes, "after_clean_run")


def test_node_loss_recovers_from_checkpoint_bit_identical(two_nodes, clean_run, cache_dir):
    job = _recipe(two_nodes, "lost", two_worker_recipe(cache_dir))
    log = two_nodes.folder / "lost.log"  # what the submitter printed
    sub = two_nodes.submit(job, "skillit-ray", "run", "recipe.yaml", "--out", "runs/lost", log=log)
    storage = two_nodes.folder / "storage"
    end = time.time() + 300
    while not registered(storage, "tiny-lost-*"):  # round 1's checkpoint, committed
        assert sub.poll() is None, log.read_text()[-4000:]
        assert time.time() < end, "no checkpoint within 300 s"
        time.sleep(0.2)
    t_kill = time.time()
    killed = two_nodes.lose_worker_node()
    rc = sub.wait(timeout=420)
    t_done = time.time()
    printed = log.read_text()
    assert rc == 0, printed[-6000:]
    out = storage / "runs" / "lost"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["start_round"] >= 1, "the last worker group did not restore a checkpoint"
    assert run_numbers(out) == run_numbers(clean_run[0])  # bit for bit, the final model too
    check_golden("two_nodes", out)
    print(f"node loss: {killed} processes killed; job done {t_done - t_kill:.1f}s after")
    nodes.wait_for_nodes(two_nodes.address, two_nodes.env, 2)
    cluster_state(two_nodes, "after_node_loss")
