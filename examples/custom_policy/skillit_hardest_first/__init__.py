"""An example skillit-ray policy in one file: sample skills in proportion to their loss^power."""

from dataclasses import dataclass, field

import numpy as np

from skillit_ray.mixture import Mixture, Observation, PolicyContext
from skillit_ray.policy import Policy


class HardestFirst(Policy):
    """Hardest first: p_i ∝ (eval loss of skill i) ** power, uniform before any eval."""

    needs = frozenset({"eval_loss"})  # the core evaluates only what a policy declares

    @dataclass
    class Config:
        power: float = field(default=2.0, metadata={"doc": "Exponent on each skill's loss."})

    def init(self, ctx: PolicyContext) -> Mixture:
        self.skills = ctx.train_skills
        return Mixture.uniform(self.skills)

    def update(self, obs: Observation) -> Mixture:
        loss = np.array([obs.eval_loss.get(s, 0.0) for s in self.skills])
        if loss.sum() <= 0:
            return Mixture.uniform(self.skills)
        return Mixture.from_weights(self.skills, loss**self.config.power)
