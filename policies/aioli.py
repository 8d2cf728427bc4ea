"""``aioli``: Aioli (Chen, Hu, Lourie, Cho, Ré; ICLR 2025): LearnParams, exponentiated gradient.

Follows HazyResearch/aioli, ``trainer/aioli_trainer.py``: ``AioliTrainer.train`` (the dynamic
loop) and ``AioliTrainer.learn_params_subroutine`` (LearnParams), with the released scripts'
options (``scripts/*/aioli/run.sh``: ``--aioli_normalize_A``, ``--ema``, ``--one_hot_factor``).

One Aioli round = LearnParams, then training on the updated mixture:

1. LearnParams: ``lp_rounds`` sweeps over the k train skills, each a random permutation; a probe
   trains on the smoothed one-hot mixture (``one_hot_factor`` on skill i, the rest split evenly)
   and adds the loss decrease it caused to column i: ``G[:, i] += L_before - L_after`` (rows =
   eval skills). Then ``G /= lp_rounds`` and each row is solved through the probe matrix W
   (``A[j] = solve(W, G[j])``), or with ``diagonal`` only ``A[i, i] = G[i, i] / one_hot_factor``.
2. ``normalize``: ``A -= min(A)`` when the minimum is negative, then ``A /= sum(A)``.
3. With ``ema``: ``Ā = (1 - ema)·A + ema·Ā`` (``Ā = A`` the first time) and
   ``w = exp(eta · Σ_j Ā[j, :])`` from uniform; without: ``w <- w ⊙ exp(eta · Σ_j A[j, :])``.

What rounds force, and the closest faithful version (the default):
- Aioli changes the mixture inside its round (k·lp_rounds probe blocks of ``lp_steps`` steps,
  then ``update_steps - lp_duration`` steps on w). Here a round holds one mixture, so **each probe
  block is one round**: an Aioli round is ``lp_rounds·k`` probe rounds followed by
  ``exploit_rounds`` rounds on w, and LearnParams runs again at the start of every Aioli round.
  With ``train.steps_per_round = lp_steps`` and ``exploit_rounds = (update_steps - lp_rounds·k·
  lp_steps) / lp_steps`` the schedule is Aioli's step for step; with longer rounds each probe
  block is longer than Aioli's. Eval checkpoints inside a round cannot serve as probe blocks:
  they all see the same mixture, so they carry no information to separate A's columns.
- ``L_before`` of a probe is the eval loss at the end of the previous round (the initial loss
  before round 0): the model state Aioli evaluates ``loss_0`` on. The loss vector is over the
  run's eval skills (Aioli's code evaluates the train skills; in pre-training they coincide).
- The probe order is a permutation per sweep from ``numpy.random.default_rng((seed, cycle))``
  (Aioli draws ``np.random.permutation`` from the global RNG), so a resumed run replays it.
- Not implemented: the "restricted" setting (``--aioli_prior``/``--prior_steps``) and the
  Skill-It warm start from ``--graph_path``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skillit_policies._common import losses_for, param

from skillit_ray.errors import PolicyError
from skillit_ray.mixture import Mixture, Observation, PolicyContext
from skillit_ray.policy import Policy


def probe_matrix(k: int, one_hot_factor: float) -> np.ndarray:
    """Row i: the smoothed one-hot mixture of probe i."""
    W = np.full((k, k), (1 - one_hot_factor) / (k - 1))
    np.fill_diagonal(W, one_hot_factor)
    return W


class AioliPolicy(Policy):
    """Aioli: re-estimate the graph by probe rounds every Aioli round; exponentiated gradient.

    Follows HazyResearch/aioli trainer/aioli_trainer.py, AioliTrainer.train and
    AioliTrainer.learn_params_subroutine. A round holds one mixture, so each LearnParams probe
    block is one round: an Aioli round is lp_rounds·k probe rounds, then exploit_rounds rounds
    on the updated mixture (Aioli's schedule step for step when train.steps_per_round equals its
    lp_steps). The module doc (skillit_policies.aioli) has the update and every departure.
    """

    needs = frozenset({"eval_loss", "initial_loss"})

    @dataclass
    class Config:
        eta: float = param(
            0.2, "Step size of exp(eta·colsum(A)) (scripts: 0.2 for 2 skills, 0.1 for 3, 1 for 7)."
        )
        lp_rounds: int = param(
            4, "LearnParams sweeps over the k skills; each probe is one round (README: 4 or 6)."
        )
        one_hot_factor: float = param(
            0.625,
            "Probe mixture weight on the probed skill, the rest split evenly (README example: "
            "0.625; 1 = pure one-hot, no linear solve).",
        )
        exploit_rounds: int = param(
            1,
            "Rounds trained on the updated mixture after each LearnParams (Aioli: update_steps "
            "minus the probe steps, here counted in rounds).",
        )
        ema: float | None = param(
            0.1,
            "EMA weight of the previous graph; the mixture is then recomputed from uniform. "
            "None: no EMA, the weights accumulate (w <- w·exp(eta·colsum A)).",
        )
        normalize: bool = param(
            True,
            "Shift A by its minimum when negative, then divide by its sum (aioli_normalize_A).",
        )
        diagonal: bool = param(
            False, "Keep only A's diagonal, G[i, i] / one_hot_factor (aioli_diagonal)."
        )

    @classmethod
    def example_params(cls, ctx: PolicyContext) -> dict:
        return {"lp_rounds": 1}  # short Aioli rounds: a contract run sees several LearnParams

    def _check(self, k: int) -> None:
        c = self.config
        ok = (
            isinstance(c.lp_rounds, int)
            and c.lp_rounds >= 1
            and isinstance(c.exploit_rounds, int)
            and c.exploit_rounds >= 1
            and 0 < c.one_hot_factor <= 1
            and float(c.eta) >= 0
            and (c.ema is None or 0 <= c.ema < 1)
        )
        if not ok:
            raise PolicyError(
                f"policy '{self.name}': need integers lp_rounds >= 1 and exploit_rounds >= 1, "
                f"0 < one_hot_factor <= 1, eta >= 0 and ema None or in [0, 1); got {c}"
            )
        if k > 1 and abs(c.one_hot_factor - 1 / k) < 1e-12:
            raise PolicyError(
                f"policy '{self.name}': one_hot_factor = 1/k = {1 / k} makes every probe uniform, "
                "so the graph cannot be solved; choose another value"
            )

    def init(self, ctx: PolicyContext) -> Mixture:
        self.skills, self.eval = ctx.train_skills, ctx.eval_skills
        k = len(self.skills)
        self._check(k)
        self.seed = ctx.seed
        self.probes = self.config.lp_rounds * k
        self.cycle = self.probes + self.config.exploit_rounds
        self.prev = losses_for(self.name, ctx.initial_loss or {}, self.eval, "initial loss")
        self.G = np.zeros((len(self.eval), k))
        self.w = np.full(k, 1.0 / k)
        self.ema_graph: np.ndarray | None = None  # None until the first LearnParams ends
        return self._mixture(0)

    def _order(self, cycle: int) -> list[int]:
        k = len(self.skills)
        rng = np.random.default_rng([self.seed, cycle, 0xA101])
        return np.concatenate([rng.permutation(k) for _ in range(self.config.lp_rounds)]).tolist()

    def _mixture(self, r: int) -> Mixture:
        k = len(self.skills)
        q = r % self.cycle
        if k == 1:
            return Mixture(self.skills, np.ones(1))
        if q < self.probes:
            i = self._order(r // self.cycle)[q]
            return Mixture(self.skills, probe_matrix(k, self.config.one_hot_factor)[i])
        return Mixture(self.skills, self.w / self.w.sum())

    def _learned_graph(self) -> np.ndarray:
        """LearnParams' end: average the sweeps, then undo the probe smoothing."""
        c, k = self.config, len(self.skills)
        G = self.G / c.lp_rounds
        if c.one_hot_factor == 1:
            return G
        if c.diagonal:  # self-effects only: where the eval skill is the probed train skill
            A = np.zeros_like(G)
            for j, e in enumerate(self.eval):
                if e in self.skills:
                    i = self.skills.index(e)
                    A[j, i] = G[j, i] / c.one_hot_factor
            return A
        # A[j] = solve(W, G[j]) for every eval row j, as one solve against G's transpose
        return np.linalg.solve(probe_matrix(k, c.one_hot_factor), G.T).T

    def _update_weights(self, A: np.ndarray) -> None:
        c = self.config
        if c.normalize:
            low = A.min()
            if low < 0:
                A = A - low
            total = A.sum()
            if total != 0:  # all entries equal and zero: Aioli would divide by zero
                A = A / total
        if c.ema is not None:
            self.ema_graph = (
                A if self.ema_graph is None else (1 - c.ema) * A + c.ema * self.ema_graph
            )
            score = float(c.eta) * self.ema_graph.sum(0)
            w = np.exp(score - score.max())
        else:
            score = float(c.eta) * A.sum(0)
            w = self.w * np.exp(score - score.max())
        self.w = w / w.sum()  # the scale of w never reaches the mixture; keeps exp in range

    def update(self, obs: Observation) -> Mixture:
        loss = losses_for(self.name, obs.eval_loss, self.eval, "eval loss")
        q = obs.round % self.cycle
        if len(self.skills) > 1 and q < self.probes:
            i = self._order(obs.round // self.cycle)[q]
            self.G[:, i] += self.prev - loss
            if q == self.probes - 1:
                self._update_weights(self._learned_graph())
                self.G = np.zeros_like(self.G)
        self.prev = loss
        return self._mixture(obs.round + 1)

    def state_dict(self) -> dict:
        return {
            "prev": self.prev.tolist(),
            "G": self.G.tolist(),
            "w": self.w.tolist(),
            "ema_graph": None if self.ema_graph is None else self.ema_graph.tolist(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.prev = np.array(state["prev"], dtype=float)
        self.G = np.array(state["G"], dtype=float).reshape(len(self.eval), len(self.skills))
        self.w = np.array(state["w"], dtype=float)
        g = state["ema_graph"]
        self.ema_graph = None if g is None else np.array(g, dtype=float)
