"""Wrappers that compose with any policy: a uniform floor and EMA smoothing.

Both keep the wrapped policy's ``row_filter`` (a sample-level curriculum's difficulty bound), so
``floor(curriculum)`` still trains only on the curriculum's pool. Under a filter, a skill with
no row inside the bound cannot be drawn: the floor's uniform share goes to the skills that have
such rows, and the EMA's mass on other skills is dropped before renormalising.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skillit_policies._common import param

from skillit_ray.errors import PolicyError
from skillit_ray.mixture import Mixture, Observation, PolicyContext, validate_mixture
from skillit_ray.policy import Policy, build_policy


class _Wrapper(Policy):
    @classmethod
    def example_params(cls, ctx: PolicyContext) -> dict:
        return {"policy": "skillit"}

    def signals(self) -> frozenset[str]:
        return self.inner.signals()

    def _build(self) -> None:
        if self.config.policy is None:
            raise PolicyError(f"policy '{self.name}': set policy (the policy to wrap)")
        self.inner = build_policy(self.config.policy, self.config.params)

    def _wrap(self, mix, first: bool) -> Mixture:
        mix = validate_mixture(mix, self.skills, self.config.policy)
        rf = mix.row_filter
        allowed = np.ones(len(self.skills), dtype=bool) if rf is None else self._inside(rf)
        if not allowed.any():  # no per-row difficulty to tell: every skill counts
            allowed[:] = True
        return Mixture(self.skills, self.transform(mix.probs, allowed, first), rf)

    def _inside(self, row_filter: tuple[str, float]) -> np.ndarray:
        """Which skills have at least one row inside the filter (difficulty comes with it)."""
        kind, bound = row_filter
        rows = self.ctx.difficulty or {}
        out = []
        for s in self.skills:
            d = np.asarray(rows.get(s, []), dtype=float)
            out.append(bool(np.any(d <= bound if kind == "max" else d >= bound)))
        return np.array(out)

    def init(self, ctx: PolicyContext) -> Mixture:
        self.skills, self.ctx = ctx.train_skills, ctx
        return self._wrap(self.inner.init(ctx), True)

    def update(self, obs: Observation) -> Mixture:
        return self._wrap(self.inner.update(obs), False)

    def transform(self, p: np.ndarray, allowed: np.ndarray, first: bool) -> np.ndarray:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {"inner": self.inner.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.inner.load_state_dict(state["inner"])


class FloorPolicy(_Wrapper):
    """Uniform floor: (1 - epsilon) * the wrapped policy's mixture + epsilon / K."""

    @dataclass
    class Config:
        policy: str | None = param(None, "Name of the wrapped policy (required).")
        params: dict = param({}, "The wrapped policy's parameters.")
        epsilon: float = param(
            0.05,
            "Share spread uniformly over the train skills (under a row filter: over the skills "
            "with rows inside it).",
        )

    def __init__(self, config):
        super().__init__(config)
        if not 0 <= config.epsilon <= 1:
            raise PolicyError(f"policy 'floor': epsilon must be in [0, 1], got {config.epsilon}")
        self._build()

    def transform(self, p: np.ndarray, allowed: np.ndarray, first: bool) -> np.ndarray:
        eps = self.config.epsilon
        return (1 - eps) * p + eps * allowed / allowed.sum()


class EmaPolicy(_Wrapper):
    """EMA smoothing: p_t = beta * p_(t-1) + (1 - beta) * the wrapped policy's mixture."""

    @dataclass
    class Config:
        policy: str | None = param(None, "Name of the wrapped policy (required).")
        params: dict = param({}, "The wrapped policy's parameters.")
        beta: float = param(0.5, "Weight of the previous mixture.")

    def __init__(self, config):
        super().__init__(config)
        if not 0 <= config.beta < 1:
            raise PolicyError(f"policy 'ema': beta must be in [0, 1), got {config.beta}")
        self._build()

    def transform(self, p: np.ndarray, allowed: np.ndarray, first: bool) -> np.ndarray:
        mixed = p if first else self.config.beta * self.prev + (1 - self.config.beta) * p
        mixed = np.where(allowed, mixed, 0.0)
        self.prev = mixed / mixed.sum()
        return self.prev

    def state_dict(self) -> dict:
        return {**super().state_dict(), "prev": self.prev.tolist()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.prev = np.array(state["prev"])
