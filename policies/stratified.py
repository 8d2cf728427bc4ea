"""``stratified``: uniform over the train skills, fixed."""

from __future__ import annotations

from dataclasses import dataclass

from skillit_ray.mixture import Mixture, Observation, PolicyContext
from skillit_ray.policy import Policy


class StratifiedPolicy(Policy):
    """Skill-stratified sampling: uniform over the train skills for the whole run."""

    @dataclass
    class Config:
        pass

    def init(self, ctx: PolicyContext) -> Mixture:
        self.mixture = Mixture.uniform(ctx.train_skills)
        return self.mixture

    def update(self, obs: Observation) -> Mixture:
        return self.mixture
