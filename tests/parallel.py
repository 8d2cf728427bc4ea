"""Independent runs at once on the session cluster.

A test's Ray Train run is mostly fixed start-up (worker processes, imports, the controller),
which overlaps well with other runs' start-ups even on 2 cores. Tests that only read a run's
outputs get them from a module fixture that starts every run of the module at once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Outcome:
    """What one call returned, or the exception it raised (raised again by ``get``, in the test
    that reads this call, so one failed run fails only its own tests)."""

    value: object

    def get(self):
        if isinstance(self.value, BaseException):
            raise self.value
        return self.value


def at_once(fn: Callable, jobs: dict, limit: int = 2) -> dict[str, Outcome]:
    """``fn(*args)`` for every ``name: args`` of ``jobs``, each a Ray task, ``limit`` at a time.

    ``fn`` must be importable by the workers (a module-level function). The tasks take no CPU
    of their own. ``limit`` keeps CPUs free for Ray Data: on the suite's 4-CPU cluster, more
    than two one-worker runs at once hold every CPU while their workers wait for data that
    no read task can be scheduled to produce (a deadlock, seen with seven)."""
    import ray

    task = ray.remote(num_cpus=0)(fn)
    todo, running, out = list(jobs), {}, {}
    while todo or running:
        while todo and len(running) < limit:
            name = todo.pop(0)
            running[task.remote(*jobs[name])] = name
        (ref,), _ = ray.wait(list(running), num_returns=1)
        name = running.pop(ref)
        try:
            out[name] = Outcome(ray.get(ref))
        except Exception as exc:  # noqa: BLE001 - kept for the test that reads this run
            out[name] = Outcome(exc)
    return {name: out[name] for name in jobs}
