"""``skill_curriculum`` / ``skill_anticurriculum``: train on one skill at a time.

Skill difficulty = the initial model's eval loss on the skill (the paper: the mean initial loss
of its examples). The first half of the run visits the skills one by one, easiest first
(curriculum) or hardest first (anti-curriculum), each for an equal share of the steps; a phase
gives ``mixing_frac`` of its data to the skills already visited. The second half samples the
data's natural proportions ("the whole pool at random"). A round's mixture is the average of
this per-step schedule over the round's steps, so budgets are exact at round granularity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skillit_policies._common import losses_for, param

from skillit_ray.errors import PolicyError
from skillit_ray.mixture import Mixture, Observation, PolicyContext
from skillit_ray.policy import Policy


class SkillCurriculumPolicy(Policy):
    """Skill curriculum: one skill at a time, easiest (lowest initial loss) first."""

    needs = frozenset({"initial_loss"})
    hardest_first = False

    @dataclass
    class Config:
        mixing_frac: float = param(0.0, "Share of each phase given to earlier skills.")
        phase_frac: float = param(0.5, "Share of the run spent in skill phases (paper: 0.5).")

    def init(self, ctx: PolicyContext) -> Mixture:
        c = self.config
        if not (0 <= c.mixing_frac <= 1 and 0 < c.phase_frac <= 1):
            raise PolicyError(
                f"policy '{self.name}': need 0 <= mixing_frac <= 1 and "
                f"0 < phase_frac <= 1, got {c.mixing_frac}, {c.phase_frac}"
            )
        if ctx.initial_loss is None:
            raise PolicyError(f"policy '{self.name}': needs the initial model's losses")
        self.skills = ctx.train_skills
        loss = losses_for(self.name, ctx.initial_loss, self.skills, "initial eval loss")
        order = np.argsort(-loss if self.hardest_first else loss, kind="stable")
        self.order = order.tolist()
        self.natural = np.array([ctx.natural_proportions[s] for s in self.skills])
        self.steps, self.total = ctx.steps_per_round, ctx.rounds * ctx.steps_per_round
        return self._round(0)

    def _step_mix(self, step: int) -> np.ndarray:
        k = len(self.skills)
        phase_len = max(1, int(self.total * self.config.phase_frac) // k)
        phase = step // phase_len
        if phase >= k:
            return self.natural / self.natural.sum()
        p = np.zeros(k)
        earlier = self.order[:phase]
        m = self.config.mixing_frac if earlier else 0.0
        p[self.order[phase]] = 1 - m
        p[earlier] += m / max(1, len(earlier))
        return p

    def _round(self, r: int) -> Mixture:
        steps = range(r * self.steps, (r + 1) * self.steps)
        return Mixture.from_weights(self.skills, np.mean([self._step_mix(s) for s in steps], 0))

    def update(self, obs: Observation) -> Mixture:
        return self._round(obs.round + 1)

    def state_dict(self) -> dict:
        return {"order": self.order}

    def load_state_dict(self, state: dict) -> None:
        self.order = list(state["order"])


class SkillAnticurriculumPolicy(SkillCurriculumPolicy):
    """Skill anti-curriculum: one skill at a time, hardest (highest initial loss) first."""

    hardest_first = True
