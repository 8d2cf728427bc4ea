"""The round plan: a mixture -> exact per-skill counts -> which skill fills each batch slot.

Every rank computes the same plan from (seed, round), so all ranks agree on the counts without
talking, and each rank takes its own slice of every step's global batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skillit_ray.mixture import largest_remainder


@dataclass(frozen=True)
class RoundPlan:
    round: int
    counts: np.ndarray  # [k] rows per skill over the round (all ranks)
    slots: np.ndarray  # [steps, global_batch] skill index of each batch slot

    def rank_slots(self, rank: int, world: int) -> np.ndarray:
        """[steps, global_batch / world] the skill indices this rank trains on."""
        per = self.slots.shape[1] // world
        return self.slots[:, rank * per : (rank + 1) * per]


def make_plan(
    probs: np.ndarray, steps: int, global_batch: int, seed: int, round_: int
) -> RoundPlan:
    counts = largest_remainder(probs, steps * global_batch)
    slots = np.repeat(np.arange(len(counts)), counts)
    np.random.default_rng([seed, round_, 7919]).shuffle(slots)
    return RoundPlan(round_, counts, slots.reshape(steps, global_batch))
