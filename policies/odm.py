"""``odm``: Online Data Mixing (Albalak et al. 2023), EXP3 on per-skill training loss.

Each skill is a bandit arm; its reward is its training loss this round (no extra evaluation),
importance-weighted by the probability it had and smoothed:
    R_i <- alpha * R_i + (1 - alpha) * L_i / p_i          (skills drawn this round)
    eps_t = min(1/K, sqrt(ln K / (K * t)))     (t = training steps so far; clock: rounds = updates)
    p_i = (1 - K * eps_t) * softmax(eps_{t-1} * R)_i + eps_t
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from skillit_policies._common import losses_for, one_of, param, softmax

from skillit_ray.mixture import Mixture, Observation, PolicyContext
from skillit_ray.policy import Policy


def exploration(k: int, t: int) -> float:
    return min(1.0 / k, math.sqrt(math.log(k) / (k * t))) if k > 1 else 0.0


def exp3_probs(rewards: np.ndarray, eps_prev: float, eps_now: float) -> np.ndarray:
    k = len(rewards)
    return (1 - k * eps_now) * softmax(eps_prev * rewards) + eps_now


class OdmPolicy(Policy):
    """ODM: EXP3 bandit over skills, rewarded by per-skill training loss."""

    needs = frozenset({"train_loss"})

    @dataclass
    class Config:
        alpha: float = param(0.9, "Smoothing of the rewards (0: the last round only).")
        clock: str = param(
            "steps",
            "What t counts in the exploration rate: 'steps' (ODM updates every step, so its t is "
            "the training step; the default) or 'rounds' (updates seen). With 'rounds' and few "
            "rounds, eps_t = 1/K for the first K ln K rounds: the mixture stays uniform.",
        )

    def init(self, ctx: PolicyContext) -> Mixture:
        one_of(self.name, "clock", self.config.clock, ("steps", "rounds"))
        self.skills = ctx.train_skills
        self.rewards = np.zeros(len(self.skills))
        self.t = 0
        self.probs = np.full(len(self.skills), 1 / len(self.skills))
        return Mixture(self.skills, self.probs)

    def update(self, obs: Observation) -> Mixture:
        drawn = [s for s in self.skills if obs.samples.get(s, 0) > 0]
        idx = [self.skills.index(s) for s in drawn]
        loss = losses_for(self.name, obs.train_loss, drawn, "train loss")
        a = self.config.alpha
        self.rewards[idx] = a * self.rewards[idx] + (1 - a) * loss / self.probs[idx]
        prev = self.t
        self.t = max(int(obs.step), prev + 1) if self.config.clock == "steps" else prev + 1
        k = len(self.skills)
        eps_prev = exploration(k, max(prev, 1))
        self.probs = exp3_probs(self.rewards, eps_prev, exploration(k, self.t))
        return Mixture(self.skills, self.probs)

    def state_dict(self) -> dict:
        return {"rewards": self.rewards.tolist(), "t": self.t, "probs": self.probs.tolist()}

    def load_state_dict(self, state: dict) -> None:
        self.rewards = np.array(state["rewards"])
        self.t = int(state["t"])
        self.probs = np.array(state["probs"])
