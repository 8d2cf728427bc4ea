"""The coordinator: one async Ray actor per run that holds the policy and the round history.

Rank 0 reports each round's observation; the policy turns it into the next mixture, which every
rank fetches by round number (``get_mixture`` blocks until it exists, so it is also the barrier
that keeps all ranks on the same versioned mixture). The driver streams the history from here.
"""

from __future__ import annotations

import asyncio
import pickle
import time

import ray

from skillit_ray.errors import PolicyError, TrainingError
from skillit_ray.mixture import Mixture, PolicyContext, validate_mixture
from skillit_ray.policy import build_policy
from skillit_ray.records import RankRecord, RoundRecord


def pack(record: RoundRecord | RankRecord) -> bytes:
    """A rank's record as it travels to the actor. Ray takes ~19 ms to pass a dict of 10,000
    entries as an argument but ~4 ms to pass the same dict pickled to bytes
    (docs/decisions.md), and a round's record holds several such dicts."""
    return pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)


class CoordinatorImpl:
    """Plain-Python core of the actor, testable without Ray. ``ctx`` is complete: everything
    the policy needs before round 0 was computed on the driver."""

    def __init__(self, policy: str | tuple, params: dict, ctx: PolicyContext):
        self.policy_ref, self.params = policy, params
        self.policy_name = policy[0] if isinstance(policy, tuple) else policy
        self.ctx = ctx
        self.reset()

    def reset(self) -> None:
        """Back to before round 0 (a run restarting without a checkpoint)."""
        self.policy = build_policy(self.policy_ref, self.params)
        self.mixtures: dict[int, Mixture] = {0: self._call("init", self.policy.init, self.ctx)}
        self.history: list[RoundRecord] = []

    def snapshot(self) -> dict:
        """Everything needed to continue after the last reported round (JSON-able)."""
        return {
            "policy": self.policy.state_dict(),
            "mixtures": {str(r): m.to_json() for r, m in self.mixtures.items()},
            "history": [rec.to_json() for rec in self.history],
        }

    def restore(self, snap: dict | None) -> None:
        if snap is None:
            self.reset()
            return
        self.policy = build_policy(self.policy_ref, self.params)
        self._call("init", self.policy.init, self.ctx)  # derived structures (graphs, pools)
        try:
            self.policy.load_state_dict(snap["policy"])
        except Exception as exc:
            raise PolicyError(
                f"policy '{self.policy_name}' could not load its checkpointed state: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        self.mixtures = {int(r): Mixture.from_json(j) for r, j in snap["mixtures"].items()}
        self.history = [RoundRecord.from_json(j) for j in snap["history"]]

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

    def report(self, record: RoundRecord) -> None:
        """Record the round, then ask the policy for the next one's mixture. The round trained
        whatever the policy answers, so it stays in the history even when the answer is bad;
        the error names the round the mixture was for (1-based, as the console prints)."""
        record.t_report = time.time()
        self.history.append(record)
        try:
            nxt = self._call("update", self.policy.update, record.observation())
        except PolicyError as exc:
            raise PolicyError(
                f"the mixture for round {record.round + 2} (chosen after round "
                f"{record.round + 1} trained): {exc}"
            ) from None
        self.mixtures[record.round + 1] = nxt
        record.next_mixture = nxt


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
        self.notes: list[str] = []  # start-up phases rank 0 announces, for the console
        self.stop_requested = False  # the driver got SIGINT/SIGTERM
        self.stop_at: dict[int, bool] = {}  # per round: stop after it (one answer for all ranks)
        self.lost = ray.get_runtime_context().was_current_actor_reconstructed
        self.generation = 1 if self.lost else 0

    async def check(self) -> None:
        if self.error:
            raise PolicyError(self.error)
        if self.lost:
            raise TrainingError(LOST)

    async def ready(self) -> None:
        """Raises the policy's error from building it or choosing round 0's mixture."""
        await self.check()

    async def _locked(self, fn, value):
        async with self.cond:
            try:
                return fn(value)
            except PolicyError as exc:
                self.error = str(exc)
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
            self.rank_log = [RankRecord(**r) for r in snap["rank_log"]] if snap else []
            try:
                self.impl.restore(snap["coordinator"] if snap else None)
            except PolicyError as exc:
                self.error = f"restore: {exc}"
                raise PolicyError(self.error) from None
            finally:
                self.cond.notify_all()

    async def snapshot(self) -> dict:
        await self.check()
        ranks = [r.to_json() for r in self.rank_log]
        return {"coordinator": self.impl.snapshot(), "rank_log": ranks}

    async def rank_round(self, packed: bytes) -> None:
        await self.check()
        self.rank_log.append(pickle.loads(packed))

    async def ranks(self) -> list[RankRecord]:
        return sorted(self.rank_log, key=lambda r: (r.round, r.rank))

    async def get_mixture(self, r: int) -> Mixture:
        async with self.cond:
            await self.cond.wait_for(
                lambda: self.error or (not self.lost and r in self.impl.mixtures)
            )
        await self.check()
        return self.impl.mixtures[r]

    async def report(self, packed: bytes) -> None:
        """Rank 0's round record (``pack``ed); the policy's next mixture is then ready for
        ``get_mixture``."""
        await self.check()
        record: RoundRecord = pickle.loads(packed)
        await self._locked(self.impl.report, record)

    async def stopped(self, packed: bytes, reason: str) -> None:
        """Rank 0 ends the run without a policy update (e.g. a non-finite eval loss); its
        round record comes ``pack``ed, as in ``report``."""
        record: RoundRecord = pickle.loads(packed)
        record.stopped, record.t_report = reason, time.time()
        async with self.cond:
            self.impl.history.append(record)
            self.cond.notify_all()

    async def note(self, text: str) -> None:
        """A start-up phase done on the workers (one console line on the driver)."""
        async with self.cond:
            self.notes.append(text)
            self.cond.notify_all()

    async def request_stop(self) -> None:
        """Stop at the next round boundary (the driver got SIGINT or SIGTERM)."""
        self.stop_requested = True

    async def stop_after(self, r: int) -> bool:
        """Whether the run stops after round ``r``. The first rank to ask fixes the answer for
        that round, so every rank stops after the same one, with one checkpoint."""
        return self.stop_at.setdefault(r, self.stop_requested)

    async def records(
        self, start: int, timeout: float, generation: int = 0, note_start: int = 0
    ) -> dict:
        """History from ``start`` on (from 0 if the reader's generation is stale); waits up
        to ``timeout`` s for something new."""

        def ready() -> bool:
            n = len(self.impl.history) if self.impl else 0
            fresh = n > start or len(self.notes) > note_start
            return bool(self.error) or fresh or generation != self.generation

        async with self.cond:
            try:
                await asyncio.wait_for(self.cond.wait_for(ready), timeout)
            except asyncio.TimeoutError:
                pass
        if generation != self.generation:
            start = 0
        hist = self.impl.history[start:] if self.impl else []
        return {
            "records": hist,
            "error": self.error,
            "generation": self.generation,
            "notes": self.notes[note_start:],
        }
