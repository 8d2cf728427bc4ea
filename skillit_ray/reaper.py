"""Stops an embedded Ray cluster whose driver died without shutting it down (SIGKILL, OOM).

Ray's agents outlive a killed driver for minutes (measured: two agent processes, ~218 MiB).
``cluster.ensure_ray`` starts this as a small detached process when it starts an embedded
cluster; it waits for the driver to exit, then ends every process of that cluster's session
(named by its session directory) and their children. After a clean ``ray.shutdown()`` it finds
nothing left. Linux only (it reads /proc); elsewhere it exits at once."""

from __future__ import annotations

import os
import signal
import sys
import time


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of an init that has not reaped it yet counts as gone
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process we can read."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        out[int(name)] = (ppid, cmd)
    return out


def session_processes(session_dir: str, table: dict | None = None) -> list[int]:
    """Processes whose command line names the session directory, and all their descendants
    (Ray's workers rename themselves ``ray::...`` and lose the name). ``table``: a
    process_table() the caller already read."""
    table = process_table() if table is None else table
    found = {pid for pid, (_, cmd) in table.items() if session_dir in cmd}
    found.discard(os.getpid())
    grew = True
    while grew:
        more = {pid for pid, (ppid, _) in table.items() if ppid in found} - found
        more.discard(os.getpid())
        found |= more
        grew = bool(more)
    return sorted(found)


def reap(session_dir: str, grace_s: float = 3.0) -> list[int]:
    pids = session_processes(session_dir)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        end = time.time() + grace_s
        while time.time() < end and any(_alive(p) for p in pids):
            time.sleep(0.1)
        pids = [p for p in pids if _alive(p)]
        if not pids:
            break
    return pids


def main(argv: list[str]) -> int:
    driver, session_dir = int(argv[0]), argv[1]
    if not os.path.isdir("/proc"):
        return 0
    while _alive(driver):
        time.sleep(0.5)
    time.sleep(1.0)  # a clean shutdown finishes on its own
    reap(session_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
