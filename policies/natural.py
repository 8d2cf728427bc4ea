"""``random`` and ``target``: fixed mixtures."""

from __future__ import annotations

from dataclasses import dataclass

from skillit_policies._common import param, require_skills

from skillit_ray.errors import PolicyError
from skillit_ray.mixture import Mixture, Observation, PolicyContext
from skillit_ray.policy import Policy


class RandomPolicy(Policy):
    """Random sampling: the data's natural skill proportions (paper: LEGO 1:1:1:3:5), fixed.

    Follows HazyResearch/skill-it trainer/static_trainer.py (StaticTrainer with --proportions).
    """

    needs = frozenset()

    @dataclass
    class Config:
        proportions: dict | None = param(
            None, "Skill -> weight; None: the data's natural proportions."
        )

    def init(self, ctx: PolicyContext) -> Mixture:
        weights = self.config.proportions or ctx.natural_proportions
        missing = [s for s in ctx.train_skills if s not in weights]
        if missing:
            raise PolicyError(f"policy '{self.name}': proportions lack train skill(s) {missing}")
        self.mixture = Mixture.from_weights(
            ctx.train_skills, [weights[s] for s in ctx.train_skills]
        )
        return self.mixture

    def update(self, obs: Observation) -> Mixture:
        return self.mixture


class TargetPolicy(Policy):
    """Skill only: all data from the target skill(s), uniform among them, fixed.

    Follows HazyResearch/skill-it trainer/static_trainer.py (one-hot --proportions).
    """

    needs = frozenset()

    @dataclass
    class Config:
        target: list | None = param(None, "Target train skill(s) (required).")

    @classmethod
    def example_params(cls, ctx: PolicyContext) -> dict:
        return {"target": [ctx.train_skills[-1]]}

    def init(self, ctx: PolicyContext) -> Mixture:
        if not self.config.target:
            raise PolicyError(f"policy '{self.name}': set target, e.g. [{ctx.train_skills[0]}]")
        keep = set(require_skills(self.name, "target", self.config.target, ctx.train_skills))
        self.mixture = Mixture.from_weights(
            ctx.train_skills, [1.0 if s in keep else 0.0 for s in ctx.train_skills]
        )
        return self.mixture

    def update(self, obs: Observation) -> Mixture:
        return self.mixture
