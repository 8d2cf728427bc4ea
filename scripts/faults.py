"""Fault pass: a run survives what a cluster does to it, and ends bit-identical to the golden
run of the same config (tests/golden/*.json), with no Ray process of it left behind.

  worker + coordinator  1 worker, train.max_failures=3: the worker process is SIGKILLed after
                        the checkpoint of round 2, the coordinator actor after round 4
  two workers           2 DDP workers: one of them SIGKILLed after round 1's checkpoint
  Ctrl-C + resume       `skillit-ray run` in its own process group gets SIGINT (as a terminal's
                        Ctrl-C sends it) after round 2: it stops at the round boundary, exits
                        130 and prints the --resume command; no Ray process is left
  driver kill + resume  the resumed run's driver is SIGKILLed after round 4; its cluster is
                        gone within seconds; a second --resume finishes the run

    python scripts/faults.py [--only NAME ...] [--work DIR]

Exits 0 when every scenario passes; prints one line per scenario."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from skillit_ray import config, rundir  # noqa: E402
from skillit_ray.cluster import session_dir  # noqa: E402
from skillit_ray.errors import CheckpointError  # noqa: E402
from skillit_ray.reaper import process_table, session_processes  # noqa: E402
from skillit_ray.train import checkpoint  # noqa: E402
from tests.conftest import recipe, tiny_lego  # noqa: E402
from tests.golden import check_golden  # noqa: E402

SKILLIT_RAY = os.path.join(os.path.dirname(sys.executable), "skillit-ray")


def latest_round(out: str) -> int | None:
    """The round of the newest checkpoint of the run in ``out`` (None: none yet)."""
    try:
        with open(os.path.join(out, rundir.RUN_FILE)) as fh:
            ident = json.load(fh)
        found = checkpoint.latest(ident["storage"], ident["run_name"])
    except (OSError, ValueError, KeyError, CheckpointError):
        return None
    return found[1]["round"] if found else None


def train_workers() -> list[int]:
    """The Ray Train worker processes of this driver's cluster. Only its own: a search over
    the whole machine also SIGKILLed the workers of a training job that ran beside the test
    suite (measured 2026-12-07: an experiment's run died with "worker health check failed")."""
    session = session_dir()
    if session is None:  # without it the kills could reach other clusters' workers
        raise RuntimeError("this Ray version hides its session directory: cannot tell our workers")
    table = process_table()
    return sorted(
        pid for pid in session_processes(session, table) if "RayTrainWorker" in table[pid][1]
    )


class Killer(threading.Thread):
    """Once the run in ``out`` has a checkpoint of round index >= ``after``: SIGKILL the Ray
    Train worker processes (``count`` of them, None: all), or the coordinator actor."""

    def __init__(self, out: str, after: int, target: str = "worker", count: int | None = None):
        super().__init__(daemon=True)
        self.out, self.after, self.target, self.count = out, after, target, count
        self.killed: list[int] = []

    def run(self) -> None:
        deadline = time.time() + 600
        while time.time() < deadline:
            r = latest_round(self.out)
            if r is not None and r >= self.after:
                if self.target == "worker":
                    pids = train_workers()[-self.count :] if self.count else train_workers()
                    for pid in pids:
                        os.kill(pid, signal.SIGKILL)
                        self.killed.append(pid)
                else:
                    import ray

                    ident = rundir.RunIdentity.load(self.out)
                    ray.kill(
                        ray.get_actor(f"skillit-coordinator-{ident.run_name}"), no_restart=False
                    )
                    self.killed.append(-1)
                return
            time.sleep(0.02)


def in_process(cfg, out: str, killers: list[Killer]) -> dict:
    from skillit_ray import launch

    for k in killers:
        k.start()
    summary = launch.run(cfg, out=out, echo=False)
    for k in killers:
        k.join(timeout=5)
        assert k.killed, f"{k.target} kill after round {k.after} never happened (run too fast?)"
    return summary


def worker_and_coordinator(cache: str, work: str) -> str:
    out = os.path.join(work, "worker_coordinator")
    cfg = recipe(cache, max_failures=3)
    summary = in_process(cfg, out, [Killer(out, 1), Killer(out, 3, "coordinator")])
    assert summary["start_round"] >= 4, summary["start_round"]
    check_golden("skillit_5_rounds", out)
    return f"restored twice, last from round {summary['start_round']}"


def two_workers(cache: str, work: str) -> str:
    out = os.path.join(work, "two_workers")
    raw = tiny_lego(cache, rounds=2, steps_per_round=4, eval_every=None, num_workers=2)
    raw["train"]["max_failures"] = 2
    summary = in_process(config.from_dict(raw), out, [Killer(out, 0, count=1)])
    # 0: the kill landed while round 1's checkpoint was still being committed (Ray Train then
    # restarts from scratch); 1: restored from it. Either way the run must equal the golden.
    assert summary["start_round"] in (0, 1), summary["start_round"]
    check_golden("two_workers", out)
    return (
        f"one of two ranks killed after round 1; the new group started at round index "
        f"{summary['start_round']}"
    )


def _session_of(pid: int) -> str | None:
    import glob

    found = glob.glob(f"/tmp/ray/session_*_{pid}")
    return found[0] if found else None


def _gone(session: str | None, within: float) -> list[int]:
    """Processes of the Ray session still alive after ``within`` seconds (want: none)."""
    if session is None:
        return []
    end = time.time() + within
    while True:
        left = session_processes(os.path.basename(session))
        if not left or time.time() > end:
            return left
        time.sleep(0.5)


def _cli(args: list[str], log: str) -> subprocess.Popen:
    with open(log, "w") as fh:
        return subprocess.Popen(
            [SKILLIT_RAY, *args], stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )


def _wait_for_round(proc: subprocess.Popen, out: str, after: int, log: str) -> None:
    end = time.time() + 600
    while True:
        r = latest_round(out)  # once: the newest checkpoint can change between two reads
        if r is not None and r >= after:
            return
        if proc.poll() is not None:
            raise AssertionError(
                f"run ended (rc {proc.returncode}) before round {after + 1}: {log}"
            )
        if time.time() > end:
            raise AssertionError(f"no checkpoint of round {after + 1} after 600 s: {log}")
        time.sleep(0.05)


def _console_ok(text: str) -> None:
    """One line per start-up phase, each round once, no line of Ray's own."""
    lines = text.splitlines()
    for phase in ("Ray: ", "workers: ", "model: ", "data: "):
        assert any(x.startswith(phase) for x in lines), f"no '{phase}' line:\n{text[-2000:]}"
    rounds = [x.split()[1] for x in lines if x.startswith("round ")]
    assert len(rounds) == len(set(rounds)), f"a round printed twice: {rounds}"
    leaked = [x for x in lines if "(raylet)" in x or x.startswith(("INFO", "WARNING", "(pid="))]
    assert not leaked, f"Ray's own lines on the console: {leaked[:3]}"


def ctrl_c_and_driver_kill(cache: str, work: str) -> str:
    out = os.path.join(work, "signals")
    recipe_path = os.path.join(work, "signals.yaml")
    with open(recipe_path, "w") as fh:
        fh.write(config.to_yaml(recipe(cache)))
    log = os.path.join(work, "ctrl_c.log")
    proc = _cli(["run", recipe_path, "--out", out], log)
    _wait_for_round(proc, out, 0, log)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
    rc = proc.wait(timeout=300)
    text = open(log).read()
    assert rc == 130, f"Ctrl-C: exit {rc}, want 130: {text[-2000:]}"
    assert f"skillit-ray run --resume {out}" in text, text[-2000:]
    assert "Traceback" not in text, text[-3000:]
    stopped = latest_round(out)
    _console_ok(text)
    left = _gone(_session_of(proc.pid), 30)
    assert not left, f"Ctrl-C left Ray processes {left}"

    log = os.path.join(work, "driver_kill.log")
    proc = _cli(["run", "--resume", out], log)
    _wait_for_round(proc, out, stopped + 1, log)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    session = _session_of(proc.pid)
    t_kill = time.time()
    left = _gone(session, 30)
    assert not left, f"killed driver left Ray processes {left} ({session})"
    gone_s = time.time() - t_kill

    killed_at = latest_round(out)  # before the second resume adds its own checkpoints
    log = os.path.join(work, "resume.log")
    rc = _cli(["run", "--resume", out], log).wait(timeout=600)
    text = open(log).read()
    # The killed driver's workers may still commit the last checkpoint before its cluster is
    # gone: then nothing is left to resume, whatever the checkpoint read at the kill said.
    if killed_at == 4 or (rc == 2 and "already finished all 5 rounds" in text):
        assert rc == 2 and "already finished all 5 rounds" in text, text[-2000:]
    else:
        assert rc == 0, f"second resume: exit {rc}: {text[-2000:]}"
        _console_ok(text)
        shown = [
            int(x.split()[1].split("/")[0]) for x in text.splitlines() if x.startswith("round")
        ]
        assert min(shown) > killed_at + 1, f"the resume printed rounds it did not train: {shown}"
    check_golden("skillit_5_rounds", out)
    return f"stopped after round {stopped + 1}; killed driver's cluster gone in {gone_s:.1f}s"


SCENARIOS = {
    "worker_and_coordinator": worker_and_coordinator,
    "two_workers": two_workers,
    "ctrl_c_and_driver_kill": ctrl_c_and_driver_kill,
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", choices=sorted(SCENARIOS), help="run only these")
    ap.add_argument("--work", default=None, help="folder for the runs (default: a temp dir)")
    args = ap.parse_args(argv)
    work = args.work or tempfile.mkdtemp(prefix="skillit-faults-")
    cache = os.path.join(work, "cache")
    failed = 0
    started = False
    for name in args.only or list(SCENARIOS):
        fn = SCENARIOS[name]
        if fn is not ctrl_c_and_driver_kill and not started:
            from skillit_ray.cluster import start_quiet_local

            start_quiet_local(num_cpus=4)
            started = True
        t0 = time.time()
        try:
            what = fn(cache, work)
            print(f"ok    {name} ({time.time() - t0:.0f}s): {what}", flush=True)
        except AssertionError as exc:
            failed += 1
            print(f"FAIL  {name} ({time.time() - t0:.0f}s): {exc}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
