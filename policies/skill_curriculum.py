"""``skill_curriculum`` / ``skill_anticurriculum``: train on one skill at a time.

Follows HazyResearch/skill-it, ``trainer/group_curriculum_trainer.py``:
``GroupCurriculumTrainer.train`` (after arXiv 2205.09898). With S skills ordered by difficulty
(ascending for the curriculum, descending for the anti-curriculum; ties keep name order) and
n_i the pool's rows of skill i:

    scale   = total_steps·batch_size / Σ_i n_(o_i)·(2 + (S - (i + 1))·mixing_frac)
    phase p = int(scale·n_(o_p)) rows of skill o_p, plus for p >= 1 int(scale·mixing_frac·n_(o_j))
              rows of every earlier skill o_j (j < p), shuffled; ceil(rows / batch_size) steps
    then    = the remaining steps sample the whole pool at random (composition ∝ n)

So a skill's phase lasts in proportion to its pool (LEGO 1:1:1:3:5: depth 5 gets 5/11 of the
phases), the phases fill half the run when ``mixing_frac`` is 0, and ``mixing_frac`` *adds*
earlier skills' rows to a phase (lengthening it) rather than taking from the current skill.

Rounds: the schedule is a per-step sequence; a round's mixture is the composition of the rows
its steps draw (a phase's last, partial batch counts its rows), so the rows drawn over the run
follow Skill-It's schedule to within the round plan's rounding. Where a phase boundary falls
inside a round, that round mixes the two phases' skills instead of switching mid-round.

Pool: Skill-It's pool is the ``n_select`` rows drawn up front with the random mixture, so n is
``ctx.natural_proportions`` (the ``random`` policy's mixture). Difficulty (``order_by``):
Skill-It's is the mean over a skill's train rows of the initial model's loss (``train``, the
default, reads the per-row ``difficulty`` signal); ``eval`` uses the initial model's eval loss
on the skill's held-out rows instead, which skips the pass over every train row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from skillit_policies._common import losses_for, one_of, param

from skillit_ray.errors import PolicyError
from skillit_ray.mixture import Mixture, Observation, PolicyContext
from skillit_ray.policy import Policy


class SkillCurriculumPolicy(Policy):
    """Skill curriculum: one skill at a time, easiest (lowest initial loss) first.

    Follows HazyResearch/skill-it trainer/group_curriculum_trainer.py,
    GroupCurriculumTrainer.train: a skill's phase lasts in proportion to its pool (the natural
    proportions), mixing_frac adds earlier skills' rows to a phase, and the rest of the run
    samples the whole pool. A round's mixture is the rows its steps draw in that schedule.
    """

    needs = frozenset({"difficulty"})
    hardest_first = False

    @dataclass
    class Config:
        mixing_frac: float = param(
            0.0,
            "Rows of every earlier skill added to a phase, as a fraction of that skill's "
            "phase (the released scripts: 0).",
        )
        order_by: str = param(
            "train",
            "Skill difficulty: 'train' (mean initial loss over the skill's train rows, as "
            "Skill-It; reads the per-row difficulty) or 'eval' (initial eval loss).",
        )

    def signals(self) -> frozenset[str]:
        return frozenset({"difficulty" if self.config.order_by == "train" else "initial_loss"})

    def _difficulty(self, ctx: PolicyContext) -> dict[str, float]:
        if self.config.order_by == "eval":
            loss = losses_for(self.name, ctx.initial_loss or {}, self.skills, "initial eval loss")
            return dict(zip(self.skills, loss.tolist()))
        rows = ctx.difficulty or {}
        empty = [s for s in self.skills if not len(rows.get(s, []))]
        if empty:
            raise PolicyError(f"policy '{self.name}': no per-row difficulty for skill(s) {empty}")
        return {s: float(np.mean(rows[s])) for s in self.skills}

    def init(self, ctx: PolicyContext) -> Mixture:
        c = self.config
        one_of(self.name, "order_by", c.order_by, ("train", "eval"))
        if not 0 <= c.mixing_frac <= 1:
            raise PolicyError(
                f"policy '{self.name}': need 0 <= mixing_frac <= 1, got {c.mixing_frac}"
            )
        self.skills = ctx.train_skills
        loss = self._difficulty(ctx)
        # Skill-It sorts the sorted skill names by loss; Python's sort is stable either way
        order = sorted(sorted(self.skills), key=loss.__getitem__, reverse=self.hardest_first)
        self.order = [self.skills.index(s) for s in order]
        self.pool = losses_for(
            self.name, ctx.natural_proportions, self.skills, "natural proportion"
        )
        self.steps, self.batch = ctx.steps_per_round, ctx.batch_size
        self.phases = self._phases(ctx.rounds * ctx.steps_per_round)
        return self._round(0)

    def _phases(self, total_steps: int) -> list[tuple[int, int, np.ndarray]]:
        """(steps, rows of the last step, rows per skill) of each phase, the final one included."""
        k, mf, n, B = len(self.skills), self.config.mixing_frac, self.pool, self.batch
        unscaled = sum(n[o] * (2 + (k - (i + 1)) * mf) for i, o in enumerate(self.order))
        if not unscaled > 0:
            raise PolicyError(f"policy '{self.name}': natural proportions {n.tolist()} sum to 0")
        scale = total_steps * B / unscaled
        phases, used = [], 0
        for p, o in enumerate(self.order):
            rows = np.zeros(k)
            rows[o] = int(scale * n[o])
            for j in self.order[:p]:
                rows[j] += int(scale * mf * n[j])
            steps = min(math.ceil(rows.sum() / B), total_steps - used)
            if steps:
                phases.append((steps, int(rows.sum()) - (steps - 1) * B, rows))
                used += steps
        if total_steps > used:
            phases.append((total_steps - used, B, n))
        return phases

    def _round(self, r: int) -> Mixture:
        """Rows each skill gets in steps [r·steps, (r + 1)·steps) of the schedule."""
        lo, hi = r * self.steps, (r + 1) * self.steps
        rows, start = np.zeros(len(self.skills)), 0
        for steps, last, comp in self.phases:
            a, b = max(lo, start), min(hi, start + steps)
            if a < b:
                full = b - a - (b == start + steps)  # the phase's last step holds `last` rows
                share = (full * self.batch + (last if b == start + steps else 0)) / comp.sum()
                rows += share * comp
            start += steps
        if rows.sum() <= 0:  # past the schedule (more rounds than planned): the whole pool
            rows = self.pool
        return Mixture.from_weights(self.skills, rows)

    def update(self, obs: Observation) -> Mixture:
        return self._round(obs.round + 1)

    def state_dict(self) -> dict:
        return {}


class SkillAnticurriculumPolicy(SkillCurriculumPolicy):
    """Skill anti-curriculum: one skill at a time, hardest (highest initial loss) first."""

    hardest_first = True
