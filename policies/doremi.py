"""``doremi``: online DoReMi (Xie et al. 2023): Group DRO on per-skill excess loss.

    excess_i = max(L_i - L_ref_i, 0)
    log w_i <- log w_i + eta * excess_i ;  p = (1 - smoothing) * softmax(log w) + smoothing / K

L is the per-skill training loss (DoReMi's own signal, no extra evaluation) or eval loss; L_ref
comes from a reference run (its metrics.jsonl, matched round by round) or a file / mapping of
per-skill losses.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
from skillit_policies._common import losses_for, one_of, param, softmax

from skillit_ray.errors import PolicyError
from skillit_ray.mixture import Mixture, Observation, PolicyContext
from skillit_ray.policy import Policy


class DoremiPolicy(Policy):
    """DoReMi: up-weight skills whose loss exceeds a reference run's the most."""

    @dataclass
    class Config:
        reference: str | dict | None = param(
            None,
            "Reference losses: a run directory (its metrics.jsonl), a JSON file of "
            "skill -> loss, or that mapping inline (required).",
        )
        signal: str = param("train", "'train' (training loss, as DoReMi) or 'eval' loss.")
        eta: float = param(1.0, "Step size of the exponentiated update.")
        smoothing: float = param(1e-3, "Uniform mix-in (DoReMi's reweight_eps).")

    @classmethod
    def example_params(cls, ctx: PolicyContext) -> dict:
        return {"reference": {s: 0.5 for s in ctx.train_skills}}

    def signals(self) -> frozenset[str]:
        return frozenset({f"{self.config.signal}_loss"})

    def _load_reference(self) -> list[dict]:
        ref = self.config.reference
        if ref is None:
            raise PolicyError(f"policy '{self.name}': set reference (run dir, file or mapping)")
        if isinstance(ref, dict):
            return [ref]
        path = os.path.join(ref, "metrics.jsonl") if os.path.isdir(ref) else ref
        try:
            with open(path) as fh:
                if path.endswith(".jsonl"):
                    key = f"{self.config.signal}_loss"
                    return [json.loads(line)[key] for line in fh if line.strip()]
                return [json.load(fh)]
        except (OSError, ValueError, KeyError) as exc:
            raise PolicyError(
                f"policy '{self.name}': cannot read reference '{path}': {exc}"
            ) from None

    def init(self, ctx: PolicyContext) -> Mixture:
        one_of(self.name, "signal", self.config.signal, ("train", "eval"))
        self.skills = ctx.train_skills
        self.ref = self._load_reference()
        for r in self.ref:
            losses_for(self.name, r, self.skills, "reference loss")
        self.logw = np.zeros(len(self.skills))
        return Mixture(self.skills, self._probs())

    def _probs(self) -> np.ndarray:
        eps = self.config.smoothing
        return (1 - eps) * softmax(self.logw) + eps / len(self.skills)

    def update(self, obs: Observation) -> Mixture:
        values = obs.train_loss if self.config.signal == "train" else obs.eval_loss
        seen = [s for s in self.skills if s in values]
        idx = [self.skills.index(s) for s in seen]
        ref = self.ref[min(obs.round, len(self.ref) - 1)]
        excess = losses_for(self.name, values, seen, f"{self.config.signal} loss") - losses_for(
            self.name, ref, seen, "reference loss"
        )
        self.logw[idx] += self.config.eta * np.maximum(excess, 0.0)
        return Mixture(self.skills, self._probs())

    def state_dict(self) -> dict:
        return {"logw": self.logw.tolist()}

    def load_state_dict(self, state: dict) -> None:
        self.logw = np.array(state["logw"])
