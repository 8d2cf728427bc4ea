"""``skillit``: online SKILL-IT (Chen et al. 2023, Algorithm 1); ``static_skillit``.

Follows HazyResearch/skill-it, ``trainer/mw_trainer.py``: ``MWTrainer.train``:
p_i ∝ exp(eta * sum_j A[i, j] * L_j), where L is the sum (pre-training, out-of-domain) or mean
(fine-tuning, ``--target_mask``) of the last ``window`` eval-loss vectors, one per eval
checkpoint (``ckpt_steps``, here ``train.eval_every``); round 0 is exp(eta·A·1); binary graphs'
off-diagonal 1s weigh 0.5. Every choice the code leaves implicit is a field below with the
code's value as default (shared/reference/skillit.md, sections 1.2 and 6). A graph that gives
every train skill a zero score (out of domain without a graph, or a target no train skill
reaches) is an error naming what to set, not a uniform mixture forever.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skillit_policies._common import one_of, param, softmax

from skillit_ray.errors import PolicyError
from skillit_ray.graph import SkillsGraph
from skillit_ray.mixture import Mixture, Observation, PolicyContext
from skillit_ray.policy import Policy


def skillit_weights(A, losses: np.ndarray, eta: float) -> np.ndarray:
    """Normalised exp(eta * A @ losses), computed stably (shift by the max score)."""
    return softmax(eta * (A @ losses))


class SparseGraph:
    """A mostly-zero graph as coordinate lists: ``A @ x`` costs O(edges), not O(K^2).

    Thousands of skills usually have few edges each (the identity graph has K); a dense
    10,000 x 10,000 product alone takes ~50 ms on a CPU core.
    """

    def __init__(self, A: np.ndarray):
        rows, cols = np.nonzero(A)
        self.rows, self.cols, self.vals = rows, cols, A[rows, cols]
        self.shape = A.shape

    def __matmul__(self, x: np.ndarray) -> np.ndarray:
        w = self.vals * np.asarray(x, dtype=float)[self.cols]
        return np.bincount(self.rows, weights=w, minlength=self.shape[0])

    @staticmethod
    def maybe(A: np.ndarray, density: float = 0.1):
        """``A`` itself, or its sparse form when at most ``density`` of it is nonzero."""
        return SparseGraph(A) if np.count_nonzero(A) <= density * A.size else A


@dataclass
class GraphConfig:
    """The fields that shape the graph and the exponent: shared by online and static SKILL-IT."""

    graph: str | None = param(
        None,
        "Graph JSON file (rows = train skills, columns = eval skills, by name); 'learn': "
        "learned before round 0 with the run's `graph` config section; None: the identity "
        "graph (the paper's no-graph ablation; needs eval skills that are train skills).",
    )
    eta: float = param(
        0.5,
        "Learning rate of the exponentiated update (paper: LEGO 0.5, addition 0.1, NI 0.2-0.8).",
    )
    setting: str = param(
        "auto",
        "'pretrain' (eval skills = train skills), 'finetune' (graph sliced to the "
        "target column(s)), 'ood' (rectangular graph onto eval skills); 'auto' infers it "
        "from target and the skills.",
    )
    target: list | None = param(None, "Target eval skill(s) when fine-tuning.")
    diagonal: str = param(
        "keep",
        "'keep' the graph's self-edges as stored (the online code), or force them "
        "to 'one' (the static code path). Self-edges are where train and eval names match.",
    )
    binary_edge_weight: float | None = param(
        0.5,
        "Off-diagonal entries exactly 1 become this (the paper's code: binary edges "
        "weigh 0.5); None keeps them.",
    )
    negative: str = param("keep", "'keep' negative graph entries or 'clip' them to 0.")


class SkillItPolicy(Policy):
    """Online SKILL-IT: up-weight skills whose graph successors have high eval loss.

    Follows HazyResearch/skill-it trainer/mw_trainer.py, MWTrainer.train:
    p_i ∝ exp(eta · Σ_j A[i, j] · L_j), L the sum (mean when fine-tuning) of the last `window`
    eval checkpoints; round 0 is exp(eta·A·1). A graph that gives every skill a zero score (out
    of domain without a graph) is an error saying what to set.
    """

    needs = frozenset({"eval_loss"})

    @dataclass
    class Config(GraphConfig):
        window: int = param(3, "w: how many of the latest loss observations enter the update.")
        window_unit: str = param(
            "checkpoints",
            "'checkpoints' (every eval of train.eval_every, as the paper's code) "
            "or 'rounds' (only the eval at each round's end).",
        )
        reduction: str = param(
            "auto",
            "'sum' or 'mean' over the window; 'auto' = mean when fine-tuning toward a "
            "target, else sum (as the paper's scripts).",
        )
        initial: str = param(
            "graph", "Round-0 mixture: 'graph' = p ∝ exp(eta·A·1) (the paper), or 'uniform'."
        )
        normalize_loss: bool = param(
            False, "Divide losses by the first observed loss vector (paper default: off)."
        )
        eta_schedule: str = param(
            "constant", "'constant', or 'loss_ratio': eta / (sum(L_latest) / sum(L_first))."
        )

    def _check(self) -> None:
        c = self.config
        choices = {
            "window_unit": ("checkpoints", "rounds"),
            "reduction": ("auto", "sum", "mean"),
            "setting": ("auto", "pretrain", "finetune", "ood"),
            "initial": ("graph", "uniform"),
            "diagonal": ("keep", "one"),
            "negative": ("keep", "clip"),
            "eta_schedule": ("constant", "loss_ratio"),
        }
        for name, allowed in choices.items():
            if hasattr(c, name):  # static SKILL-IT has only the graph's fields
                one_of(self.name, name, getattr(c, name), allowed)
        if not float(c.eta) >= 0:
            raise PolicyError(f"policy '{self.name}': eta must be >= 0, got {c.eta}")
        if hasattr(c, "window") and not (isinstance(c.window, int) and c.window >= 1):
            raise PolicyError(
                f"policy '{self.name}': window must be an integer >= 1, got {c.window}"
            )

    def _setting(self, ctx: PolicyContext) -> str:
        c = self.config
        if c.setting != "auto":
            return c.setting
        if c.target:
            return "finetune"
        return "pretrain" if set(ctx.train_skills) == set(ctx.eval_skills) else "ood"

    def _columns(self, ctx: PolicyContext, setting: str, graph: SkillsGraph | None) -> tuple:
        if setting == "finetune":
            if not self.config.target:
                raise PolicyError(f"policy '{self.name}': setting 'finetune' needs target skill(s)")
            cols = tuple(self.config.target)
        elif setting == "pretrain":
            cols = tuple(ctx.train_skills)
        else:
            cols = tuple(graph.eval_skills) if graph else tuple(ctx.eval_skills)
        missing = [s for s in cols if s not in ctx.eval_skills]
        if missing:
            raise PolicyError(
                f"policy '{self.name}': eval skill(s) {missing} are not evaluated in "
                f"this run (eval skills: {list(ctx.eval_skills)})"
            )
        return cols

    def signals(self) -> frozenset[str]:
        learned = {"graph"} if self.config.graph == "learn" else set()
        return frozenset(self.needs) | learned

    def _load(self, ctx: PolicyContext) -> SkillsGraph:
        """The configured graph: from its file, or the one learned before round 0."""
        if self.config.graph != "learn":
            return SkillsGraph.load(self.config.graph)
        if ctx.graph is None:
            raise PolicyError(f"policy '{self.name}': graph 'learn' but no graph was learned")
        return ctx.graph

    def _graph(self, ctx: PolicyContext, cols: tuple) -> np.ndarray:
        c = self.config
        col = {e: j for j, e in enumerate(cols)}
        diag = np.zeros((len(ctx.train_skills), len(cols)), dtype=bool)
        for i, t in enumerate(ctx.train_skills):
            if t in col:
                diag[i, col[t]] = True
        if c.graph is None:
            A = diag.astype(float)
        else:
            A = self._load(ctx).select(ctx.train_skills, cols, c.graph).matrix.copy()
        if c.binary_edge_weight is not None:
            A[(A == 1.0) & ~diag] = c.binary_edge_weight
        if c.diagonal == "one":
            A[diag] = 1.0
        if c.negative == "clip":
            A = np.maximum(A, 0.0)
        if not A.any():  # every score would be 0 forever: a uniform mixture, silently
            where = f"graph '{c.graph}'" if c.graph else "the identity graph (no graph given)"
            raise PolicyError(
                f"policy '{self.name}' ({self.setting}): {where} has no nonzero entry from the "
                f"train skills {list(ctx.train_skills)} to the eval skill(s) {list(cols)}, so "
                "the mixture would stay uniform; set policy.params.graph to a graph whose rows "
                "are the train skills and whose columns are those eval skills (skillit-ray "
                "graph learn)"
            )
        return A

    def _setup(self, ctx: PolicyContext) -> None:
        """Setting, graph columns and the graph: what online and static SKILL-IT share."""
        self._check()
        self.ctx = ctx
        self.setting = self._setting(ctx)
        graph = None
        if self.config.graph is not None and self.setting == "ood":
            graph = self._load(ctx)
        self.columns = self._columns(ctx, self.setting, graph)
        self.A = SparseGraph.maybe(self._graph(ctx, self.columns))

    def init(self, ctx: PolicyContext) -> Mixture:
        self._setup(ctx)
        red = self.config.reduction
        self.reduce = ("mean" if self.setting == "finetune" else "sum") if red == "auto" else red
        self.history: list[list[float]] = []
        self.first: list[float] | None = None
        if self.config.initial == "uniform":
            return Mixture.uniform(ctx.train_skills)
        ones = np.ones(len(self.columns))
        return Mixture(ctx.train_skills, skillit_weights(self.A, ones, float(self.config.eta)))

    def _observed(self, obs: Observation) -> list[list[float]]:
        points = obs.eval_checkpoints or [{"loss": obs.eval_loss}]
        if self.config.window_unit == "rounds":
            points = points[-1:]
        try:
            return [[float(p["loss"][s]) for s in self.columns] for p in points]
        except KeyError as exc:
            raise PolicyError(f"policy '{self.name}': no eval loss for skill {exc}") from None

    def update(self, obs: Observation) -> Mixture:
        self.history.extend(self._observed(obs))
        if self.first is None:
            self.first = self.history[0]
        window = np.asarray(self.history[-self.config.window :])
        losses = window.sum(0) if self.reduce == "sum" else window.mean(0)
        if self.config.normalize_loss:
            losses = losses / np.asarray(self.first)
        eta = float(self.config.eta)
        if self.config.eta_schedule == "loss_ratio":
            eta = eta / (sum(self.history[-1]) / sum(self.first))
        return Mixture(self.ctx.train_skills, skillit_weights(self.A, losses, eta))

    def state_dict(self) -> dict:
        return {"history": self.history, "first": self.first}

    def load_state_dict(self, state: dict) -> None:
        self.history = [list(map(float, h)) for h in state["history"]]
        self.first = state["first"]


class StaticSkillItPolicy(SkillItPolicy):
    """Static SKILL-IT: p ∝ exp(eta·A·1) from the graph, fixed for the whole run.

    Follows HazyResearch/skill-it ``dataset/utils.py``: ``get_weights_from_graph`` (the released
    NI pre-training configuration), which forces the graph's diagonal to 1. Only the graph's
    fields act here: no loss is ever observed.
    """

    needs = frozenset()

    @dataclass
    class Config(GraphConfig):
        eta: float = param(0.2, "Temperature of exp(eta·A·1) (the paper's NI runs: 0.2).")
        diagonal: str = param(
            "one", "Self-edges forced to 'one' (the paper's static code path) or 'keep'."
        )

    def init(self, ctx: PolicyContext) -> Mixture:
        self._setup(ctx)
        ones = np.ones(len(self.columns))
        self.mixture = Mixture(
            ctx.train_skills, skillit_weights(self.A, ones, float(self.config.eta))
        )
        return self.mixture

    def update(self, obs: Observation) -> Mixture:
        return self.mixture

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
