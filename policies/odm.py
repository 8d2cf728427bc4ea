"""``odm``: Online Data Mixing (Albalak et al. 2023), a bandit over skills rewarded by train loss.

Follows the authors' released updater for mixed minibatches, alon-albalak/online-data-mixing,
``megatron/data/data_sampling_utils.py``: ``SmoothedMeanWeightUpdater.group_update`` (the class
the README names as the paper's implementation), called once per training step from
``megatron/training.py`` (``train_mixed_minibatch``: ``data_sampling_weights.group_update(...)``)
with every skill present in the step's batch and its mean loss. Per update, at clock t:

    eps_t = min(1/K, sqrt(ln K / (K·t)))
    R_i <- alpha·R_i + (1 - alpha)·exp(L_i)        (each skill in the batch; others unchanged)
    p_i = (1 - K·eps_t)·R_i / Σ_j R_j + eps_t

The paper's formula (``updater: paper``) differs: ``R_i <- alpha·R_i + (1 - alpha)·L_i/p_i`` and
``p = (1 - K·eps_t)·softmax(eps_(t-1)·R) + eps_t``. Its ``1/p_i`` is an importance weight for a
bandit that observes one arm a step; here every skill drawn in a round is observed for certain
(exact per-skill counts), so it is left out: dividing by p_i would inflate rare skills' rewards.

Rounds: ODM updates every step; a round reports one mean train loss per skill. With ``clock:
steps`` (default) a round of n steps counts as n updates: each drawn skill's reward is smoothed
n times with the round's loss (``R <- alpha^n·R + (1 - alpha^n)·f(L)``) and t is the training
step, so reward memory and exploration run on the same clock as ODM's. A skill drawn in a round
counts as present at each of its steps (exact with at least one row per step). ``clock: rounds``
counts one update per round for both. Initial mixture: uniform.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from skillit_policies._common import losses_for, one_of, param, softmax

from skillit_ray.errors import PolicyError
from skillit_ray.mixture import Mixture, Observation, PolicyContext
from skillit_ray.policy import Policy


def exploration(k: int, t: int) -> float:
    """ODM's eps_t = min(1/K, sqrt(ln K / (K t)))."""
    return min(1.0 / k, math.sqrt(math.log(k) / (k * t)))


class OdmPolicy(Policy):
    """ODM: bandit over skills rewarded by per-skill training loss (released smoothed mean).

    Follows alon-albalak/online-data-mixing megatron/data/data_sampling_utils.py,
    SmoothedMeanWeightUpdater.group_update (the mixed-minibatch updater the README names as the
    paper's), once per training step; 'paper' is the paper's EXP3 formula without 1/p_i (every
    drawn skill is observed). The module doc (skillit_policies.odm) has both updates.
    """

    needs = frozenset({"train_loss"})

    @dataclass
    class Config:
        alpha: float = param(
            0.9, "Reward smoothing per update (data_sampling_smoothing_factor; 0: the last only)."
        )
        updater: str = param(
            "released",
            "'released' (SmoothedMeanWeightUpdater.group_update: smoothed exp(loss), linear "
            "normalisation) or 'paper' (smoothed loss, softmax(eps_(t-1)·R)); see the doc.",
        )
        clock: str = param(
            "steps",
            "What one update is: 'steps' (ODM updates every step: a round of n steps is n "
            "updates of smoothing and t is the training step) or 'rounds' (one per round).",
        )

    def init(self, ctx: PolicyContext) -> Mixture:
        one_of(self.name, "clock", self.config.clock, ("steps", "rounds"))
        one_of(self.name, "updater", self.config.updater, ("released", "paper"))
        if not 0 <= self.config.alpha < 1:
            raise PolicyError(
                f"policy '{self.name}': alpha must be in [0, 1), got {self.config.alpha}"
            )
        self.skills = ctx.train_skills
        k = len(self.skills)
        self.rewards = np.zeros(k)
        self.t = 0
        self.eps = 1.0 / k  # ODM's initial eps; eps_(t-1) of the first update
        self.probs = np.full(k, 1.0 / k)
        return Mixture(self.skills, self.probs)

    def update(self, obs: Observation) -> Mixture:
        k = len(self.skills)
        drawn = [i for i, s in enumerate(self.skills) if obs.samples.get(s, 0) > 0]
        loss = losses_for(self.name, obs.train_loss, [self.skills[i] for i in drawn], "train loss")
        n = max(int(obs.step) - self.t, 1) if self.config.clock == "steps" else 1
        keep = self.config.alpha**n  # n smoothing updates with the same reward
        reward = np.exp(loss) if self.config.updater == "released" else loss
        self.rewards[drawn] = keep * self.rewards[drawn] + (1 - keep) * reward
        self.t += n
        # eps of the round's last two updates: eps_(t-1) (1/K before ODM's first update) and eps_t
        eps_prev = self.eps if n == 1 else exploration(k, self.t - 1)
        self.eps = exploration(k, self.t)
        if self.config.updater == "released":
            total = self.rewards.sum()
            if total > 0:  # nothing drawn yet: keep the mixture
                self.probs = (1 - k * self.eps) * self.rewards / total + self.eps
        else:
            self.probs = (1 - k * self.eps) * softmax(eps_prev * self.rewards) + self.eps
        return Mixture(self.skills, self.probs)

    def state_dict(self) -> dict:
        return {
            "rewards": self.rewards.tolist(),
            "t": self.t,
            "eps": self.eps,
            "probs": self.probs.tolist(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.rewards = np.array(state["rewards"], dtype=float)
        self.t = int(state["t"])
        self.eps = float(state["eps"])
        self.probs = np.array(state["probs"], dtype=float)
