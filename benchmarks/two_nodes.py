"""Two Ray nodes on one machine: 2-worker DDP with one worker per node against both workers on
one node, and what the loss of a node costs a run.

    python benchmarks/two_nodes.py [--rounds 3 --steps 60 --repeats 2]

Starts a head and a worker node with `ray start` exactly as tests/test_two_nodes.py does (each
node 2 CPUs and one `worker_slot`; shared storage is a local folder), then submits
experiments/lego_pt.yaml with 2 workers through `ray job submit`:

- placement: one worker per node (`train.worker_resources={worker_slot: 1}`) and both workers on
  the head (`={node_a: 0.5}`), alternated ``--repeats`` times; steady-state training samples/s
  (optimizer steps only) from each run's summary.json. Both nodes share this machine's cores
  and its loopback, so the comparison measures the topology (two raylets and object stores,
  gloo between nodes), not a network.
- node loss: the one-worker-per-node run again, with every process of the worker node killed
  (SIGKILL) once the first checkpoint is in storage and the node started again 2 s later: time
  from the kill to our `recovered:` line and to the job's end, against the undisturbed run.

The machine is shared with other work: the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import nodes  # noqa: E402

PLACEMENTS = {"one_per_node": "{worker_slot: 1}", "both_on_head": "{node_a: 0.5}"}


def job_args(name: str, sets: list[str]) -> list[str]:
    args = ["skillit-ray", "run", "lego_pt.yaml", "--out", f"runs/{name}"]
    for s in sets:
        args += ["--set", s]
    return args


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    report: dict = {"load_before": os.getloadavg(), "rounds": args.rounds, "steps": args.steps}
    with (
        tempfile.TemporaryDirectory(prefix="2nbench", dir="/tmp") as d,
        nodes.two_nodes(Path(d)) as cluster,
    ):
        storage = Path(d) / "storage"
        # the job's working dir holds the recipe alone: Ray uploads it whole (100 MiB at most),
        # and experiments/ also holds the experiments' run folders
        job = Path(d) / "job"
        job.mkdir()
        shutil.copy(ROOT / "experiments" / "lego_pt.yaml", job / "lego_pt.yaml")
        shutil.copytree(ROOT / "experiments" / "graphs", job / "graphs")  # the recipe's graph
        base = [
            f"train.rounds={args.rounds}",
            f"train.steps_per_round={args.steps}",
            "train.num_workers=2",
            "train.max_failures=1",
            f"run.storage_path={storage}",
            f"data.cache_dir={Path(d) / 'cache'}",
        ]
        rates: dict[str, list[float]] = {p: [] for p in PLACEMENTS}
        walls: dict[str, list[float]] = {p: [] for p in PLACEMENTS}
        for i in range(args.repeats):
            for where, res in PLACEMENTS.items():
                name = f"{where}-{i}"
                t0 = time.time()
                sub = cluster.submit(job, *job_args(name, [*base, f"train.worker_resources={res}"]))
                assert sub.returncode == 0, sub.stdout[-3000:] + sub.stderr[-2000:]
                walls[where].append(time.time() - t0)
                summary = json.loads((storage / "runs" / name / "summary.json").read_text())
                rates[where].append(summary["train_samples_per_s"])
                print(f"{name}: {rates[where][-1]:.1f} samples/s", flush=True)
        report["samples_per_s"] = rates
        report["job_wall_s"] = walls
        one, both = (sum(rates[p]) / len(rates[p]) for p in PLACEMENTS)
        report["one_per_node_vs_both_on_head"] = one / both

        log = Path(d) / "lost.log"
        sets = [*base, f"train.worker_resources={PLACEMENTS['one_per_node']}"]
        t0 = time.time()
        sub = cluster.submit(job, *job_args("lost", sets), log=log)
        # a committed checkpoint (Ray Train's snapshot names it), not only its folder
        while not list(storage.glob("lego_pt-lost-*/checkpoint_manager_snapshot.json")):
            assert sub.poll() is None, log.read_text()[-3000:]
            time.sleep(0.2)
        t_kill = time.time()
        killed = cluster.lose_worker_node()
        t_recovered = None
        while sub.poll() is None:
            if t_recovered is None and "recovered:" in log.read_text():
                t_recovered = time.time()
            time.sleep(0.2)
        t_end = time.time()
        assert sub.returncode == 0, log.read_text()[-3000:]
        lines = [x for x in log.read_text().splitlines() if x.startswith(("round", "recovered"))]
        report["node_loss"] = {
            "processes_killed": killed,
            "kill_after_submit_s": t_kill - t0,
            "kill_to_recovered_line_s": None if t_recovered is None else t_recovered - t_kill,
            "kill_to_job_end_s": t_end - t_kill,
            "job_wall_s": t_end - t0,
            "undisturbed_job_wall_s": walls["one_per_node"],
            "console": lines,
        }
    report["load_after"] = os.getloadavg()
    print(json.dumps(report, indent=1))
    n = report["node_loss"]
    print(
        f"one worker per node {one:.1f} samples/s, both on the head {both:.1f} -> "
        f"{one / both:.2f}x; node loss: recovered {n['kill_to_recovered_line_s']:.1f} s after "
        f"the kill, job {n['job_wall_s']:.0f} s vs {min(walls['one_per_node']):.0f} s "
        f"undisturbed; load {report['load_before'][0]:.1f} -> {report['load_after'][0]:.1f}"
    )


if __name__ == "__main__":
    main()
