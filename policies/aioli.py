"""``aioli``: Aioli (Chen et al. 2025), the skills graph estimated online, exponentiated gradient.

A round-level rendering of Aioli's LearnParams: the first K rounds are probes, each a smoothed
one-hot mixture (``one_hot_factor`` on one skill, the rest spread evenly). After every round the
policy records (mixture p, loss decrease d = L_before - L_after over the eval skills) and fits
the linear mixing law d ≈ p·A by ridge least squares over the latest ``fit_window`` rounds,
smoothed by an EMA; then w <- w ⊙ exp(eta · A·1) (A's rows normalised by max |A| when
``normalize``). Aioli itself probes inside a round with short blocks; here a probe is a round.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skillit_policies._common import losses_for, param

from skillit_ray.mixture import Mixture, Observation, PolicyContext
from skillit_ray.policy import Policy


def fit_graph(P: np.ndarray, D: np.ndarray, ridge: float) -> np.ndarray:
    """argmin_A ||P A - D||^2 + ridge ||A||^2, A of shape [k, m]."""
    k = P.shape[1]
    return np.linalg.solve(P.T @ P + ridge * np.eye(k), P.T @ D)


class AioliPolicy(Policy):
    """Aioli: estimate the graph from probe rounds online; exponentiated-gradient updates."""

    needs = frozenset({"eval_loss", "initial_loss"})

    @dataclass
    class Config:
        eta: float = param(0.5, "Step size of the exponentiated update.")
        one_hot_factor: float = param(0.75, "Probe mixture weight on the probed skill.")
        fit_window: int | None = param(None, "Rounds used in each fit; None: K (skills).")
        ema: float = param(0.5, "EMA weight of the previous graph estimate.")
        ridge: float = param(1e-3, "Ridge regulariser of the fit.")
        normalize: bool = param(True, "Scale the estimate so that max |A| = 1.")

    def init(self, ctx: PolicyContext) -> Mixture:
        self.skills, self.eval = ctx.train_skills, ctx.eval_skills
        self.prev = losses_for(self.name, ctx.initial_loss or {}, self.eval, "initial loss")
        self.P: list[list[float]] = []
        self.D: list[list[float]] = []
        self.A: np.ndarray | None = None
        self.w = np.full(len(self.skills), 1 / len(self.skills))
        self.round = 0
        return self._mixture(0)

    def _probe(self, i: int) -> np.ndarray:
        k = len(self.skills)
        if k == 1:
            return np.ones(1)
        p = np.full(k, (1 - self.config.one_hot_factor) / (k - 1))
        p[i] = self.config.one_hot_factor
        return p

    def _mixture(self, r: int) -> Mixture:
        p = self._probe(r) if r < len(self.skills) else self.w
        self.current = p
        return Mixture(self.skills, p)

    def update(self, obs: Observation) -> Mixture:
        loss = losses_for(self.name, obs.eval_loss, self.eval, "eval loss")
        self.P.append(self.current.tolist())
        self.D.append((self.prev - loss).tolist())
        self.prev = loss
        self.round = obs.round + 1
        if self.round >= len(self.skills):
            n = self.config.fit_window or len(self.skills)
            A = fit_graph(np.array(self.P[-n:]), np.array(self.D[-n:]), self.config.ridge)
            if self.config.normalize and np.abs(A).max() > 0:
                A = A / np.abs(A).max()
            self.A = A if self.A is None else self.config.ema * self.A + (1 - self.config.ema) * A
            score = self.config.eta * self.A.sum(1)
            w = self.w * np.exp(score - score.max())
            self.w = w / w.sum()
        return self._mixture(self.round)

    def state_dict(self) -> dict:
        return {
            "prev": self.prev.tolist(),
            "P": self.P,
            "D": self.D,
            "w": self.w.tolist(),
            "A": None if self.A is None else self.A.tolist(),
            "round": self.round,
            "current": self.current.tolist(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.prev = np.array(state["prev"])
        self.P, self.D = state["P"], state["D"]
        self.w = np.array(state["w"])
        self.A = None if state["A"] is None else np.array(state["A"])
        self.round = state["round"]
        self.current = np.array(state["current"])
