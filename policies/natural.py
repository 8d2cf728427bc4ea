"""``random``: sample from the data's natural skill proportions (or given ones), fixed."""

from __future__ import annotations

from dataclasses import dataclass, field

from skillit_ray.errors import PolicyError
from skillit_ray.mixture import Mixture, Observation, PolicyContext
from skillit_ray.policy import Policy


class RandomPolicy(Policy):
    """Random sampling: the data's natural skill proportions (paper: LEGO 1:1:1:3:5), fixed."""

    @dataclass
    class Config:
        proportions: dict | None = field(
            default=None,
            metadata={"doc": "Skill -> weight; None: the data's natural proportions."},
        )

    def init(self, ctx: PolicyContext) -> Mixture:
        weights = self.config.proportions or ctx.natural_proportions
        missing = [s for s in ctx.train_skills if s not in weights]
        if missing:
            raise PolicyError(f"policy 'random': proportions lack train skill(s) {missing}")
        self.mixture = Mixture.from_weights(
            ctx.train_skills, [weights[s] for s in ctx.train_skills]
        )
        return self.mixture

    def update(self, obs: Observation) -> Mixture:
        return self.mixture
