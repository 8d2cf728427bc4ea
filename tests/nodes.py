"""Ray nodes started on this machine as a cluster user starts them (`ray start --block`), with
free ports, so they run beside any other Ray here (the suite's own, other users'). Each node is
one process tree: a test stops a node - all its processes, by PID - without touching another."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from skillit_ray.reaper import process_table

BIN = os.path.dirname(sys.executable)
RAY = os.path.join(BIN, "ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client_env() -> dict:
    """Token auth as the README's cluster section sets it up: one generated token in the
    environment of every node and every client."""
    env = dict(
        os.environ,
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=secrets.token_hex(32),
        RAY_USAGE_STATS_ENABLED="0",
        PATH=BIN + os.pathsep + os.environ.get("PATH", ""),
    )
    env.pop("RAY_ADDRESS", None)
    return env


def _children() -> dict[int, list[int]]:
    """parent pid -> its children's pids, from the reaper's reading of /proc."""
    kids: dict[int, list[int]] = {}
    for pid, (ppid, _) in process_table().items():
        kids.setdefault(ppid, []).append(pid)
    return kids


@dataclass
class Node:
    """One `ray start --block` process and what it started (raylet, agents, workers)."""

    proc: subprocess.Popen
    log: Path
    args: list[str]

    def tree(self) -> list[int]:
        """The node's processes, parents before children."""
        kids, out, todo = _children(), [], [self.proc.pid]
        while todo:
            pid = todo.pop(0)
            out.append(pid)
            todo.extend(kids.get(pid, []))
        return out

    def kill(self) -> int:
        """The node is lost: SIGKILL to each of its processes at once (no drain, no goodbye
        to the head). Returns how many there were."""
        pids = self.tree()
        for _ in range(3):  # a process forked while the first pass ran is caught by the next
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)
            more = [p for p in self.tree() if p not in pids and p != self.proc.pid]
            if not more:
                break
            pids += more
        self.proc.wait(timeout=30)
        return len(pids)

    def stop(self) -> None:
        """`ray start --block` stops the node it started when terminated."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.kill()


def start(args: list[str], env: dict, log: Path) -> Node:
    with open(log, "a") as fh:
        proc = subprocess.Popen(
            [RAY, "start", "--block", "--disable-usage-stats", *args],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the test's terminal does not reach it
        )
    return Node(proc, log, args)


def restart(node: Node, env: dict) -> Node:
    """The same node (same options) started again, e.g. after ``kill``: in a new temp folder,
    as a replacement machine would be (the lost node's sockets are still on disk)."""
    args = [a + "r" if a.startswith("--temp-dir=") else a for a in node.args]
    return start(args, env, node.log)


def resources(pairs: dict) -> str:
    return "--resources=" + json.dumps(pairs)


def start_head(folder: Path, env: dict, *extra: str) -> tuple[Node, str, str]:
    """A head node on loopback; returns (node, job API address, GCS address for other
    nodes). The default dashboard agent port may be held by another Ray on this machine: a
    taken port leaves the head without a job agent, so it gets a free one too."""
    dash, gcs = free_port(), free_port()
    address = f"http://127.0.0.1:{dash}"
    node = start(
        [
            "--head",
            f"--port={gcs}",
            f"--dashboard-port={dash}",
            f"--dashboard-agent-listen-port={free_port()}",
            "--dashboard-host=127.0.0.1",
            *extra,
        ],
        env,
        folder / "head.log",
    )
    end = time.time() + 120
    listed = [RAY, "job", "list", "--address", address]
    while subprocess.run(listed, env=env, capture_output=True).returncode:
        if time.time() > end or node.proc.poll() is not None:
            node.stop()
            raise TimeoutError(f"the head node did not come up; see {node.log}")
        time.sleep(1)
    return node, address, f"127.0.0.1:{gcs}"


AGENT_NOT_READY = "No available agent to submit job"


def submit_job(args: list[str], env: dict, patience_s: float = 120):
    """Run the `ray job submit` command ``args``, again while the head's job agent is still
    starting: under load the agent registers after the dashboard answers `ray job list`, and
    the head refuses a job for its 10 s agent wait (Ray's WAIT_AVAILABLE_AGENT_TIMEOUT) with
    "please try again later" - before creating any job, so a retry submits it once."""
    end = time.time() + patience_s
    while True:
        sub = subprocess.run(args, env=env, capture_output=True, text=True, timeout=480)
        if sub.returncode == 0 or AGENT_NOT_READY not in sub.stdout + sub.stderr:
            return sub
        if time.time() > end:
            return sub
        time.sleep(2)


def start_worker(gcs: str, folder: Path, env: dict, *extra: str) -> Node:
    """A worker node joining the head at ``gcs``: its own raylet and object store."""
    return start(
        [f"--address={gcs}", f"--dashboard-agent-listen-port={free_port()}", *extra],
        env,
        folder / "worker.log",
    )


def alive_nodes(address: str, env: dict) -> list[dict]:
    """The cluster's live nodes, from the State API (`ray list nodes`)."""
    got = subprocess.run(
        [RAY, "list", "nodes", "--address", address, "--format", "json", "--filter",
         "state=ALIVE"],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    try:  # a head still starting its State API may answer rc 0 with no JSON yet
        return json.loads(got.stdout) if got.returncode == 0 else []
    except ValueError:
        return []


def wait_for_nodes(address: str, env: dict, n: int, timeout: float = 120) -> list[dict]:
    end = time.time() + timeout
    while len(nodes := alive_nodes(address, env)) != n:
        if time.time() > end:
            raise TimeoutError(f"expected {n} live nodes, the cluster lists {len(nodes)}")
        time.sleep(1)
    return nodes


SLOT = "worker_slot"  # one per node: a worker reserving one lands on a node of its own


@dataclass
class TwoNodes:
    """A head and one worker node, each with 2 CPUs (one for its training worker, one for Ray
    Data tasks), one ``worker_slot`` and a resource naming it (node_a, node_b)."""

    address: str  # the job API (dashboard) on the head
    gcs: str  # what `ray start --address` joins
    env: dict
    folder: Path
    head: Node
    worker: Node | None = None

    def submit(self, job: Path, *command: str, log: Path | None = None):
        """`ray job submit` of ``command`` with ``job`` as its working dir: waits and returns
        the CompletedProcess, or with ``log`` returns the Popen writing there."""
        args = [
            RAY, "job", "submit", "--address", self.address, "--working-dir", str(job),
            "--entrypoint-num-cpus", "0", "--", *command,
        ]  # fmt: skip
        if log is None:
            return submit_job(args, self.env)
        with open(log, "w") as fh:
            return subprocess.Popen(args, env=self.env, stdout=fh, stderr=subprocess.STDOUT)

    def lose_worker_node(self, down_s: float = 2.0) -> int:
        """Kill every process of the worker node, wait ``down_s``, start it again; returns
        how many processes were killed."""
        killed = self.worker.kill()
        time.sleep(down_s)
        self.worker = restart(self.worker, self.env)
        return killed


@contextlib.contextmanager
def two_nodes(folder: Path):
    # Each node's own Ray temp folder (not /tmp/ray, which other Ray users here share);
    # Unix socket paths live under it and must stay under 108 characters.
    temp = tempfile.mkdtemp(prefix="ray2n-", dir="/tmp")
    env = client_env()
    head, address, gcs = start_head(
        folder, env, "--num-cpus=2", resources({"node_a": 1, SLOT: 1}), f"--temp-dir={temp}/a"
    )
    cluster = TwoNodes(address, gcs, env, folder, head)
    try:
        cluster.worker = start_worker(
            gcs, folder, env, "--num-cpus=2", resources({"node_b": 1, SLOT: 1}),
            f"--temp-dir={temp}/b",
        )  # fmt: skip
        wait_for_nodes(address, env, 2)
        yield cluster
    finally:
        # Every process of both nodes, at once: a graceful `ray stop` of the two took 35 s,
        # and nothing of this cluster outlives the test (its temp folder goes too).
        if cluster.worker is not None:  # the node running now (a lost one was replaced)
            cluster.worker.kill()
        head.kill()
        shutil.rmtree(temp, ignore_errors=True)
