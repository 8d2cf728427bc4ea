"""``stratified``: uniform over the relevant skills, fixed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skillit_policies._common import param, require_skills

from skillit_ray.graph import SkillsGraph
from skillit_ray.mixture import Mixture, Observation, PolicyContext
from skillit_ray.policy import Policy


class StratifiedPolicy(Policy):
    """Skill-stratified sampling: uniform over the relevant skills for the whole run.

    Follows HazyResearch/skill-it trainer/static_trainer.py (--sample_rule stratified).

    Relevant skills: all train skills in pre-training; ``skills`` if given; else, with a
    ``target``, the target plus its prerequisites (train skills with a positive edge into a
    target in ``graph``; all train skills when no graph is given, as the paper's fine-tuning runs
    restrict the train skills to the target and its prerequisites).
    """

    needs = frozenset()

    @dataclass
    class Config:
        skills: list | None = param(None, "Skills to sample uniformly; None: see the doc.")
        target: list | None = param(None, "Target skill(s) when fine-tuning.")
        graph: str | None = param(None, "Graph file giving the target's prerequisites.")

    def relevant(self, ctx: PolicyContext) -> list[str]:
        c = self.config
        if c.skills:
            return require_skills(self.name, "skills", c.skills, ctx.train_skills)
        if c.target and c.graph:
            g = SkillsGraph.load(c.graph)
            cols = [g.eval_skills.index(t) for t in c.target if t in g.eval_skills]
            pre = [
                s
                for s in ctx.train_skills
                if s in g.train_skills and np.any(g.matrix[g.train_skills.index(s), cols] > 0)
            ]
            return [s for s in ctx.train_skills if s in pre or s in c.target]
        return list(ctx.train_skills)

    def init(self, ctx: PolicyContext) -> Mixture:
        keep = set(self.relevant(ctx))
        self.mixture = Mixture.from_weights(
            ctx.train_skills, [1.0 if s in keep else 0.0 for s in ctx.train_skills]
        )
        return self.mixture

    def update(self, obs: Observation) -> Mixture:
        return self.mixture
