"""The coordinator: one async Ray actor per run that holds the policy and the round history.

Rank 0 reports each round's observation; the policy turns it into the next mixture, which every
rank fetches by round number (``get_mixture`` blocks until it exists, so it is also the barrier
that keeps all ranks on the same versioned mixture). The driver streams the history from here.
"""

from __future__ import annotations

import asyncio
import time

import ray

from skillit_ray.errors import PolicyError
from skillit_ray.mixture import Observation, PolicyContext, validate_mixture
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


def wire(mix) -> dict:
    """A mixture as workers receive it."""
    return {"probs": mix.probs.tolist(), "row_filter": mix.row_filter}


class CoordinatorImpl:
    """Plain-Python core of the actor, testable without Ray."""

    def __init__(self, policy: str | tuple, params: dict, ctx: PolicyContext):
        self.policy_name = policy[0] if isinstance(policy, tuple) else policy
        self.ctx = ctx
        self.policy = build_policy(policy, params)
        self.needs = self.policy.signals()
        self.mixtures = {}
        self.history: list[dict] = []
        self._maybe_init()

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


@ray.remote(num_cpus=0)
class Coordinator:
    """Ray actor wrapper; num_cpus=0 so it never competes with training for CPUs."""

    def __init__(self, policy: str | tuple, params: dict, ctx: PolicyContext):
        self.error: str | None = None
        try:
            self.impl = CoordinatorImpl(policy, params, ctx)
        except PolicyError as exc:
            self.impl, self.error = None, str(exc)
        self.cond = asyncio.Condition()
        self.rank_log: list[dict] = []

    async def check(self) -> None:
        if self.error:
            raise PolicyError(self.error)

    async def needs(self) -> list[str]:
        await self.check()
        return sorted(self.impl.needs)

    async def set_initial(self, loss: dict[str, float]) -> None:
        await self._pre_init(self.impl.set_initial, loss)

    async def set_difficulty(self, difficulty: dict[str, list[float]]) -> None:
        await self._pre_init(self.impl.set_difficulty, difficulty)

    async def _pre_init(self, fn, value) -> None:
        async with self.cond:
            try:
                fn(value)
            except PolicyError as exc:
                self.error = f"round 0: {exc}"
                raise PolicyError(self.error) from None
            finally:
                self.cond.notify_all()

    async def rank_round(self, record: dict) -> None:
        self.rank_log.append(record)

    async def ranks(self) -> list[dict]:
        return sorted(self.rank_log, key=lambda r: (r["round"], r["rank"]))

    async def get_mixture(self, r: int) -> dict:
        async with self.cond:
            await self.cond.wait_for(lambda: self.error or r in self.impl.mixtures)
        await self.check()
        return wire(self.impl.mixtures[r])

    async def report(self, record: dict) -> list[float]:
        async with self.cond:
            try:
                return self.impl.report(record)
            except PolicyError as exc:
                self.error = f"round {record['round']}: {exc}"
                raise PolicyError(self.error) from None
            finally:
                self.cond.notify_all()

    async def records(self, start: int, timeout: float) -> tuple[list[dict], str | None]:
        """History from ``start`` on; waits up to ``timeout`` s for something new."""
        async with self.cond:
            try:
                await asyncio.wait_for(
                    self.cond.wait_for(lambda: self.error or len(self.impl.history) > start),
                    timeout,
                )
            except asyncio.TimeoutError:
                pass
        hist = self.impl.history[start:] if self.impl else []
        return hist, self.error

    async def state(self) -> dict:
        return {"policy": self.impl.policy.state_dict() if self.impl else None}
