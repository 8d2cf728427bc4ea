"""``manual``: a hand-written mixture per round."""

from __future__ import annotations

from dataclasses import dataclass

from skillit_policies._common import param

from skillit_ray.errors import PolicyError
from skillit_ray.mixture import Mixture, Observation, PolicyContext
from skillit_ray.policy import Policy


class ManualPolicy(Policy):
    """Manual schedule: round r uses schedule[r] (the last entry repeats).

    Follows HazyResearch/skill-it trainer/manual_trainer.py (--proportions_schedule).
    """

    needs = frozenset()

    @dataclass
    class Config:
        schedule: list = param([], "One mapping skill -> weight per round (unlisted skills: 0).")

    @classmethod
    def example_params(cls, ctx: PolicyContext) -> dict:
        first = {s: 1.0 for s in ctx.train_skills}
        return {"schedule": [first, {ctx.train_skills[0]: 3.0, ctx.train_skills[-1]: 1.0}]}

    def _at(self, r: int) -> Mixture:
        entry = self.config.schedule[min(r, len(self.config.schedule) - 1)]
        unknown = [s for s in entry if s not in self.skills]
        if unknown:
            raise PolicyError(
                f"policy '{self.name}': schedule[{r}] names unknown skill(s) "
                f"{unknown}; train skills: {list(self.skills)}"
            )
        return Mixture.from_weights(self.skills, [float(entry.get(s, 0.0)) for s in self.skills])

    def init(self, ctx: PolicyContext) -> Mixture:
        if not self.config.schedule:
            raise PolicyError(f"policy '{self.name}': schedule is empty; give one mixture a round")
        self.skills = ctx.train_skills
        return self._at(0)

    def update(self, obs: Observation) -> Mixture:
        return self._at(obs.round + 1)
