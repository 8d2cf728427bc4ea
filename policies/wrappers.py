"""Wrappers that compose with any policy: a uniform floor and EMA smoothing."""

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

    def _inner(self, mix) -> np.ndarray:
        return validate_mixture(mix, self.skills, self.config.policy).probs

    def init(self, ctx: PolicyContext) -> Mixture:
        self.skills = ctx.train_skills
        return Mixture(self.skills, self.transform(self._inner(self.inner.init(ctx)), True))

    def update(self, obs: Observation) -> Mixture:
        return Mixture(self.skills, self.transform(self._inner(self.inner.update(obs)), False))

    def transform(self, p: np.ndarray, first: bool) -> np.ndarray:
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
        epsilon: float = param(0.05, "Share spread uniformly over all train skills.")

    def __init__(self, config):
        super().__init__(config)
        if not 0 <= config.epsilon <= 1:
            raise PolicyError(f"policy 'floor': epsilon must be in [0, 1], got {config.epsilon}")
        self._build()

    def transform(self, p: np.ndarray, first: bool) -> np.ndarray:
        return (1 - self.config.epsilon) * p + self.config.epsilon / len(p)


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

    def transform(self, p: np.ndarray, first: bool) -> np.ndarray:
        self.prev = p if first else self.config.beta * self.prev + (1 - self.config.beta) * p
        return self.prev

    def state_dict(self) -> dict:
        return {**super().state_dict(), "prev": self.prev.tolist()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.prev = np.array(state["prev"])
