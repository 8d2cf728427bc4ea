"""The coordinator: one async Ray actor per run that holds the policy and the round history.

Rank 0 reports each round's observation; the policy turns it into the next mixture, which every
rank fetches by round number (``get_mixture`` blocks until it exists, so it is also the barrier
that keeps all ranks on the same versioned mixture). The driver streams the history from here.
"""

from __future__ import annotations

import asyncio
import pickle
import time

import numpy as np
import ray

from skillit_ray.errors import PolicyError, TrainingError
from skillit_ray.mixture import Mixture, Observation, PolicyContext, validate_mixture
from skillit_ray.policy import build_policy

OBS_FIELDS = (
    "round",
    "step",
    "mixture",
    "samples",
    "eval_loss",
    "eval_acc",
    "train_loss",
    "eval_checkpoints",
)


def pack(record: dict) -> bytes:
    """A rank's record as it travels to the actor. Ray takes ~19 ms to pass a dict of 10,000
    entries as an argument but ~4 ms to pass the same dict pickled to bytes
    (docs/decisions.md), and a round's record holds several such dicts."""
    return pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)


def wire(mix) -> dict:
    """A mixture as workers receive it."""
    return {"probs": mix.probs.tolist(), "row_filter": mix.row_filter}


def unwire(skills: tuple, w: dict) -> Mixture:
    row_filter = tuple(w["row_filter"]) if w["row_filter"] is not None else None
    return Mixture(tuple(skills), np.asarray(w["probs"], dtype=np.float64), row_filter)


class CoordinatorImpl:
    """Plain-Python core of the actor, testable without Ray."""

    def __init__(self, policy: str | tuple, params: dict, ctx: PolicyContext):
        self.policy_ref, self.params = policy, params
        self.policy_name = policy[0] if isinstance(policy, tuple) else policy
        self.ctx = ctx
        self.reset()

    def reset(self) -> None:
        """Back to before round 0 (a run restarting without a checkpoint)."""
        self.policy = build_policy(self.policy_ref, self.params)
        self.needs = self.policy.signals()
        self.mixtures = {}
        self.history: list[dict] = []
        self._maybe_init()

    def snapshot(self) -> dict:
        """Everything needed to continue after the last reported round (JSON-able)."""
        return {
            "policy": self.policy.state_dict(),
            "mixtures": {str(r): wire(m) for r, m in self.mixtures.items()},
            "history": self.history,
            "initial_loss": self.ctx.initial_loss,
            "difficulty": self.ctx.difficulty,
        }

    def restore(self, snap: dict | None) -> None:
        if snap is None:
            self.ctx.initial_loss = None  # rank 0 measures and sends it again
            self.reset()
            return
        self.ctx.initial_loss = snap["initial_loss"]
        if snap["difficulty"] is not None:
            self.ctx.difficulty = snap["difficulty"]
        self.policy = build_policy(self.policy_ref, self.params)
        self._call("init", self.policy.init, self.ctx)  # derived structures (graphs, pools)
        try:
            self.policy.load_state_dict(snap["policy"])
        except Exception as exc:
            raise PolicyError(
                f"policy '{self.policy_name}' could not load its checkpointed state: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        skills = self.ctx.train_skills
        self.mixtures = {int(r): unwire(skills, w) for r, w in snap["mixtures"].items()}
        self.history = list(snap["history"])

    def _maybe_init(self) -> None:
        """Round 0 is chosen once every signal the policy needs before training is here."""
        if "initial_loss" in self.needs and self.ctx.initial_loss is None:
            return
        if "difficulty" in self.needs and self.ctx.difficulty is None:
            return
        self.mixtures[0] = self._call("init", self.policy.init, self.ctx)

    def set_initial(self, loss: dict[str, float]) -> None:
        self.ctx.initial_loss = dict(loss)
        self._maybe_init()

    def set_difficulty(self, difficulty: dict[str, list[float]]) -> None:
        self.ctx.difficulty = difficulty
        self._maybe_init()

    def _call(self, what: str, fn, arg):
        try:
            mix = fn(arg)
        except PolicyError:
            raise
        except Exception as exc:
            raise PolicyError(
                f"policy '{self.policy_name}' raised in {what}(): {type(exc).__name__}: {exc}"
            ) from exc
        return validate_mixture(mix, self.ctx.train_skills, self.policy_name)

    def report(self, record: dict) -> list[float]:
        r = record["round"]
        obs = Observation(**{k: record[k] for k in OBS_FIELDS})
        nxt = self._call("update", self.policy.update, obs)
        self.mixtures[r + 1] = nxt
        self.history.append({**record, "next_mixture": nxt.to_dict(), "t_report": time.time()})
        return wire(nxt)


LOST = (
    "the coordinator actor was restarted after a failure; its state comes back when the "
    "workers restore the last checkpoint"
)


@ray.remote(num_cpus=0, max_restarts=-1)
class Coordinator:
    """Ray actor wrapper; num_cpus=0 so it never competes with training for CPUs.

    If its process dies, Ray restarts it empty and ``lost`` is set: reports are refused (the
    workers fail, Ray Train restarts them from the last checkpoint) and mixtures wait until
    rank 0 calls ``restore``. ``generation`` counts restores so readers of the history know
    when it was rolled back.
    """

    def __init__(self, policy: str | tuple, params: dict, ctx: PolicyContext):
        self.error: str | None = None
        try:
            self.impl = CoordinatorImpl(policy, params, ctx)
        except PolicyError as exc:
            self.impl, self.error = None, str(exc)
        self.cond = asyncio.Condition()
        self.rank_log: list[dict] = []
        self.lost = ray.get_runtime_context().was_current_actor_reconstructed
        self.generation = 1 if self.lost else 0

    async def check(self) -> None:
        if self.error:
            raise PolicyError(self.error)
        if self.lost:
            raise TrainingError(LOST)

    async def needs(self) -> list[str]:
        await self.check()
        return sorted(self.impl.needs)

    async def set_initial(self, loss: dict[str, float]) -> None:
        await self._locked(self.impl.set_initial, loss, "round 0")

    async def set_difficulty(self, difficulty: dict[str, list[float]]) -> None:
        await self._locked(self.impl.set_difficulty, difficulty, "round 0")

    async def _locked(self, fn, value, where: str):
        async with self.cond:
            try:
                return fn(value)
            except PolicyError as exc:
                self.error = f"{where}: {exc}"
                raise PolicyError(self.error) from None
            finally:
                self.cond.notify_all()

    async def restore(self, snap: dict | None) -> None:
        """Roll back to a checkpoint's state (None: to before round 0)."""
        async with self.cond:
            untouched = not (self.lost or self.error or self.rank_log or self.impl.history)
            if snap is None and untouched:
                return  # a first start: nothing to roll back
            self.error, self.lost = None, False
            self.generation += 1
            self.rank_log = list(snap["rank_log"]) if snap else []
            try:
                self.impl.restore(snap["coordinator"] if snap else None)
            except PolicyError as exc:
                self.error = f"restore: {exc}"
                raise PolicyError(self.error) from None
            finally:
                self.cond.notify_all()

    async def snapshot(self) -> dict:
        await self.check()
        return {"coordinator": self.impl.snapshot(), "rank_log": list(self.rank_log)}

    async def rank_round(self, packed: bytes) -> None:
        await self.check()
        self.rank_log.append(pickle.loads(packed))

    async def ranks(self) -> list[dict]:
        return sorted(self.rank_log, key=lambda r: (r["round"], r["rank"]))

    async def get_mixture(self, r: int) -> dict:
        async with self.cond:
            await self.cond.wait_for(
                lambda: self.error or (not self.lost and r in self.impl.mixtures)
            )
        await self.check()
        return wire(self.impl.mixtures[r])

    async def report(self, packed: bytes) -> None:
        """Rank 0's round record (``pack``ed); the policy's next mixture is then ready for
        ``get_mixture``."""
        await self.check()
        record = pickle.loads(packed)
        await self._locked(self.impl.report, record, f"round {record['round']}")

    async def stopped(self, packed: bytes, reason: str) -> None:
        """Rank 0 ends the run without a policy update (e.g. a non-finite eval loss); its
        round record comes ``pack``ed, as in ``report``."""
        record = pickle.loads(packed)
        async with self.cond:
            self.impl.history.append({**record, "stopped": reason, "t_report": time.time()})
            self.cond.notify_all()

    async def records(self, start: int, timeout: float, generation: int = 0) -> dict:
        """History from ``start`` on (from 0 if the reader's generation is stale); waits up
        to ``timeout`` s for something new."""

        def ready() -> bool:
            n = len(self.impl.history) if self.impl else 0
            return bool(self.error) or n > start or generation != self.generation

        async with self.cond:
            try:
                await asyncio.wait_for(self.cond.wait_for(ready), timeout)
            except asyncio.TimeoutError:
                pass
        if generation != self.generation:
            start = 0
        hist = self.impl.history[start:] if self.impl else []
        return {"records": hist, "error": self.error, "generation": self.generation}

    async def state(self) -> dict:
        return {"policy": self.impl.policy.state_dict() if self.impl else None}
