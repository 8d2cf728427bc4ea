"""``curriculum`` / ``anticurriculum``: sample-level curricula paced over rounds.

Difficulty of a row = the initial model's loss on it (the core computes it by a Ray Data
batch-inference pass before training). Rows are ranked easiest first (curriculum) or hardest
first (anti-curriculum); round r (1-based) draws uniformly, without replacement, from the first
``pool(r)`` rows of that ranking, as the paper's CurriculumTrainer does:
    linear: pool(r) = min(n, rows_per_round * r)
    log:    pool(r) = min(n, n*b + (1 - b) * n * (1 + 0.1 * log(r / (a * T) + e^-10)))
with n the train rows and T the rounds. The mixture is the pool's skill composition, and the
row filter (a difficulty bound) tells workers which rows of each skill are in the pool.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from skillit_policies._common import one_of, param

from skillit_ray.errors import PolicyError
from skillit_ray.mixture import Mixture, Observation, PolicyContext
from skillit_ray.policy import Policy


def pool_size(pacing: str, r: int, n: int, per_round: int, rounds: int, a: float, b: float) -> int:
    if pacing == "linear":
        size = per_round * r
    else:
        size = n * b + (1 - b) * n * (1 + 0.1 * math.log(r / (a * rounds) + math.exp(-10)))
    return int(min(n, max(1, size)))


class CurriculumPolicy(Policy):
    """Curriculum: rows easiest first (initial-model loss), in a pool that grows each round.

    Follows HazyResearch/skill-it trainer/curriculum_trainer.py, CurriculumTrainer.train and
    _get_pacing, with n = the train rows (the source's pool is n_updates·update_size rows).
    """

    needs = frozenset({"difficulty"})
    hardest_first = False

    @dataclass
    class Config:
        pacing: str = param("linear", "'linear' or 'log' pool growth (see the module doc).")
        a: float = param(0.8, "Log pacing: fraction of the run at which the pool is full.")
        b: float = param(0.2, "Log pacing: initial pool fraction.")

    def init(self, ctx: PolicyContext) -> Mixture:
        one_of(self.name, "pacing", self.config.pacing, ("linear", "log"))
        if not ctx.difficulty:
            raise PolicyError(f"policy '{self.name}': needs per-row difficulty")
        self.skills = ctx.train_skills
        vals = [np.asarray(ctx.difficulty.get(s, []), dtype=float) for s in self.skills]
        self.values = vals
        everything = np.sort(np.concatenate(vals))
        self.ranked = everything[::-1] if self.hardest_first else everything
        self.per_round = ctx.steps_per_round * ctx.batch_size
        self.rounds = ctx.rounds
        return self._round(1)

    def _round(self, r: int) -> Mixture:
        c = self.config
        n = len(self.ranked)
        size = pool_size(c.pacing, r, n, self.per_round, self.rounds, c.a, c.b)
        bound = float(self.ranked[size - 1])
        if self.hardest_first:
            counts = [int((v >= bound).sum()) for v in self.values]
            return Mixture.from_weights(self.skills, counts).with_filter(("min", bound))
        counts = [int((v <= bound).sum()) for v in self.values]
        return Mixture.from_weights(self.skills, counts).with_filter(("max", bound))

    def update(self, obs: Observation) -> Mixture:
        return self._round(obs.round + 2)


class AnticurriculumPolicy(CurriculumPolicy):
    """Anti-curriculum: rows hardest first (initial-model loss), in a pool that grows."""

    hardest_first = True
