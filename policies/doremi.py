"""``doremi``: online DoReMi (Xie et al. 2023): Group DRO on per-skill excess loss.

Follows sangmichaelxie/doremi, ``doremi/trainer.py``: ``DoReMiTrainer.update_domain_weights``
(``doremi_optimizer == 'doremiv1'``), called once per training step from
``DoReMiTrainer.training_step``; initial state from ``doremi/train.py`` (``train_domain_weights``
from the domain config, ``perdomain_scores = log(len(tokenizer))``). Per update:

    lambda_i = mean over skill i's tokens in the batch of max(l_tok - l_ref_tok, 0)
               (a skill absent from the batch keeps its previous lambda_i)
    w <- (1 - smoothing)·softmax(log w + eta·lambda) + smoothing / K

Departures that remain, each forced by what a round observes:
- **Clipping per skill mean, not per token.** DoReMi clips each token's excess loss at 0, then
  averages; an Observation carries only per-skill mean losses, and the reference is a run's
  per-round means (or a fixed mapping), so here ``lambda_i = max(L_i - L_ref_i, 0)``. By Jensen
  this is <= DoReMi's value whenever tokens disagree in sign. Per-token clipping needs a new
  signal: the worker would run the reference model's forward on each training batch and report,
  per skill, the sum and count of ``max(l_tok - l_ref_tok, 0)`` (as ``train_loss`` is reported).
- **Rounds.** DoReMi updates every step; ``clock: steps`` (default) applies the round's lambda
  once per step of the round, ``clock: rounds`` once per round.
- **Sampling.** DoReMi samples from the reference weights and reweights the loss by
  ``w / sampling_w``; here the mixture itself is ``w`` (the core controls sampling only). And
  DoReMi hands the run's *average* weights to a second, larger run; here ``w`` is used online.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

import numpy as np
from skillit_policies._common import losses_for, one_of, param, softmax

from skillit_ray.errors import PolicyError
from skillit_ray.mixture import Mixture, Observation, PolicyContext
from skillit_ray.policy import Policy


class DoremiPolicy(Policy):
    """DoReMi: up-weight skills whose loss exceeds a reference run's the most.

    Follows sangmichaelxie/doremi doremi/trainer.py, DoReMiTrainer.update_domain_weights
    (doremiv1), once per training step. Departures: the excess loss is clipped per skill mean,
    not per token (a round reports per-skill means); the mixture is resampled rather than the
    loss reweighted. The module doc (skillit_policies.doremi) has the update and the details.
    """

    @dataclass
    class Config:
        reference: str | dict | None = param(
            None,
            "Reference losses: a run directory (its metrics.jsonl, matched round by round), a "
            "JSON file of skill -> loss, or that mapping inline (required).",
        )
        signal: str = param("train", "'train' (training loss, as DoReMi) or 'eval' loss.")
        eta: float = param(1.0, "Step size of the exponentiated update (reweight_eta).")
        smoothing: float = param(
            1e-3, "Uniform mix-in (reweight_eps; the released Pile script's value)."
        )
        clock: str = param(
            "steps",
            "'steps' (DoReMi updates every step: the round's excess loss is applied once per "
            "step of the round) or 'rounds' (once per round).",
        )
        initial_score: float = param(
            math.log(50257),
            "Excess loss of a skill not yet drawn (DoReMi: ln of the vocabulary size; here "
            "GPT-2's 50257).",
        )

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
        one_of(self.name, "clock", self.config.clock, ("steps", "rounds"))
        if not 0 <= self.config.smoothing <= 1:
            raise PolicyError(
                f"policy '{self.name}': smoothing must be in [0, 1], got {self.config.smoothing}"
            )
        self.skills = ctx.train_skills
        self.ref = self._load_reference()
        for r in self.ref:
            losses_for(self.name, r, self.skills, "reference loss")
        k = len(self.skills)
        self.w = np.full(k, 1.0 / k)  # the released script's domain config: pile_uniform.json
        self.scores = np.full(k, float(self.config.initial_score))
        self.t = 0
        return Mixture(self.skills, self.w)

    def update(self, obs: Observation) -> Mixture:
        values = obs.train_loss if self.config.signal == "train" else obs.eval_loss
        seen = [i for i, s in enumerate(self.skills) if s in values]
        names = [self.skills[i] for i in seen]
        ref = self.ref[min(obs.round, len(self.ref) - 1)]
        loss = losses_for(self.name, values, names, f"{self.config.signal} loss")
        self.scores[seen] = np.maximum(loss - losses_for(self.name, ref, names, "reference"), 0)
        n = max(int(obs.step) - self.t, 1) if self.config.clock == "steps" else 1
        self.t += n
        eps, k = float(self.config.smoothing), len(self.skills)
        step = float(self.config.eta) * self.scores
        with np.errstate(divide="ignore"):  # w_i = 0 (smoothing 0) is log w_i = -inf: fine
            for _ in range(n):  # the smoothing feeds back into log w, so no closed form
                self.w = (1 - eps) * softmax(np.log(self.w) + step) + eps / k
        return Mixture(self.skills, self.w)

    def state_dict(self) -> dict:
        return {"w": self.w.tolist(), "scores": self.scores.tolist(), "t": self.t}

    def load_state_dict(self, state: dict) -> None:
        self.w = np.array(state["w"], dtype=float)
        self.scores = np.array(state["scores"], dtype=float)
        self.t = int(state["t"])
