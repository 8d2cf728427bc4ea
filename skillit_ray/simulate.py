"""A training-free sandbox: run a policy against a ground-truth skills graph and loss law.

No model, no data, no Ray: eval losses follow a law of the mixture, so a policy's behaviour is
visible in well under a second. Two laws (``rate`` per step, ``A`` = the ground-truth graph,
rows = train skills, columns = eval skills, ``p`` = the round's mixture as drawn):

- ``linear``: the paper's analysis. Each step ``L_j <- L_j·(1 - rate·(Aᵀp)_j)``: training on
  skill i lowers eval skill j's loss in proportion to ``A[i, j]`` and the mass on i.
- ``gated``: the same, but eval skill j moves only once every prerequisite of j (a train skill
  i ≠ j with ``A[i, j] > 0``) has a loss at or below ``threshold`` times its initial loss.

A train skill that is also an eval skill shares its loss; one that is not has its own, which
falls as ``L_i·(1 - rate·p_i)``. Observations carry what the real loop reports: eval checkpoints
every ``eval_every`` steps (the last at the round's end), per-skill train loss of the drawn
skills (the mean over the round's steps), exact per-skill counts, accuracy ``exp(-L)``. Row
filters are accepted and do not change the law. ``noise`` multiplies each observed value by
``exp(noise·N(0, 1))`` (seeded) without touching the state.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

from skillit_ray.errors import ConfigError
from skillit_ray.graph import SkillsGraph
from skillit_ray.mixture import (
    Mixture,
    PolicyContext,
    largest_remainder,
    validate_mixture,
)
from skillit_ray.records import RoundRecord

LAWS = ("linear", "gated")

# The paper's LEGO pre-training graph (reference section 2.3; experiments/graphs/lego_paper.json):
# only depth 2 has out-edges, to depths 1, 3 and 4.
LEGO_SKILLS = tuple(f"lego/depth{i}" for i in range(1, 6))
LEGO_MATRIX = [
    [1, 0, 0, 0, 0],
    [1, 1, 1, 1, 0],
    [0, 0, 1, 0, 0],
    [0, 0, 0, 1, 0],
    [0, 0, 0, 0, 1],
]


def lego_graph() -> SkillsGraph:
    return SkillsGraph(
        LEGO_SKILLS, LEGO_SKILLS, np.array(LEGO_MATRIX, float), None, {"method": "paper (LEGO)"}
    )


@dataclass
class Law:
    """The ground truth: a graph and how losses respond to a mixture."""

    graph: SkillsGraph
    kind: str = field(default="linear", metadata={"doc": "'linear' or 'gated' (module doc)."})
    rate: float = field(default=0.005, metadata={"doc": "Loss decrease per step per unit mass."})
    threshold: float = field(
        default=0.7,
        metadata={
            "doc": "Gated law: a prerequisite counts as learned at this share of its initial loss."
        },
    )
    initial_loss: float = field(
        default=math.log(2),
        metadata={"doc": "Every skill's loss before training (chance on a bit)."},
    )

    def __post_init__(self) -> None:
        if self.kind not in LAWS:
            raise ConfigError(f"simulate: law '{self.kind}'; expected one of {list(LAWS)}")
        if not (self.rate > 0 and self.initial_loss > 0 and 0 < self.threshold <= 1):
            raise ConfigError(
                f"simulate: need rate > 0, initial_loss > 0 and 0 < threshold <= 1; got rate="
                f"{self.rate}, initial_loss={self.initial_loss}, threshold={self.threshold}"
            )


class Sandbox:
    """Turns each round's mixture into the Observation the training loop would report."""

    def __init__(
        self,
        law: Law,
        rounds: int = 6,
        steps_per_round: int = 100,
        batch_size: int = 32,
        eval_every: int = 10,
        seed: int = 0,
        noise: float = 0.0,
        natural: dict[str, float] | None = None,
        rows_per_skill: int = 64,
    ):
        for name, v in (
            ("rounds", rounds),
            ("steps_per_round", steps_per_round),
            ("batch_size", batch_size),
            ("eval_every", eval_every),
        ):
            if not (isinstance(v, int) and v >= 1):
                raise ConfigError(f"simulate: {name} must be an integer >= 1, got {v!r}")
        self.law, self.rounds, self.steps = law, rounds, steps_per_round
        self.batch, self.eval_every, self.seed, self.noise = batch_size, eval_every, seed, noise
        g = law.graph
        self.train, self.eval = g.train_skills, g.eval_skills
        self.A = g.matrix
        self.natural = natural or {s: 1.0 / len(self.train) for s in self.train}
        self.rows = rows_per_skill
        # where a train skill's loss lives: its eval column, or its own slot
        self.shared = [self.eval.index(s) if s in self.eval else -1 for s in self.train]
        self.prereq = [
            [i for i, t in enumerate(self.train) if self.A[i, j] > 0 and t != e]
            for j, e in enumerate(self.eval)
        ]
        self.L = np.full(len(self.eval), law.initial_loss)
        self.T = np.full(len(self.train), law.initial_loss)
        self.step = 0

    def context(self) -> PolicyContext:
        """What a policy sees before round 0; every signal is present."""
        rng = np.random.default_rng([self.seed, 17])
        # per-row initial loss: spread around the skill's loss, as a batch-inference pass gives
        difficulty = {
            s: np.sort(self.law.initial_loss * rng.gamma(4.0, 0.25, self.rows)).tolist()
            for s in self.train
        }
        return PolicyContext(
            train_skills=self.train,
            eval_skills=self.eval,
            natural_proportions=dict(self.natural),
            rounds=self.rounds,
            steps_per_round=self.steps,
            batch_size=self.batch,
            seed=self.seed,
            train_rows={s: self.rows for s in self.train},
            initial_loss=self._observed(self.eval, self.L, -1),
            difficulty=difficulty,
            graph=self.law.graph,  # what a learned graph would be at best: the ground truth
        )

    def train_loss(self) -> np.ndarray:
        return np.array([self.L[j] if j >= 0 else t for j, t in zip(self.shared, self.T)])

    def _gate(self) -> np.ndarray:
        if self.law.kind == "linear":
            return np.ones(len(self.eval))
        learned = self.train_loss() <= self.law.threshold * self.law.initial_loss
        return np.array([all(learned[i] for i in pre) for pre in self.prereq], dtype=float)

    def _observed(self, names, values: np.ndarray, r: int, c: int = 0) -> dict[str, float]:
        if self.noise:
            rng = np.random.default_rng([self.seed, r + 1, c, 29])
            values = values * np.exp(self.noise * rng.standard_normal(len(values)))
        return dict(zip(names, map(float, values)))

    def run_round(self, r: int, mix: Mixture) -> RoundRecord:
        counts = largest_remainder(mix.probs, self.steps * self.batch)
        p = counts / counts.sum()  # the mixture as drawn, exact counts like the round plan
        push = self.A.T @ p
        own = np.array([p[i] if j < 0 else 0.0 for i, j in enumerate(self.shared)])
        seen, checkpoints = np.zeros(len(self.train)), []
        for s in range(self.steps):
            seen += self.train_loss()  # a step's train loss is measured before its update
            self.L *= np.clip(1 - self.law.rate * push * self._gate(), 0.0, None)
            self.T *= 1 - self.law.rate * own
            self.step += 1
            if (s + 1) % self.eval_every == 0 or s == self.steps - 1:
                loss = self._observed(self.eval, self.L, r, len(checkpoints))
                acc = {k: math.exp(-v) for k, v in loss.items()}
                checkpoints.append({"step": self.step, "loss": loss, "acc": acc})
        train = self._observed(self.train, seen / self.steps, r, 99)
        return RoundRecord(
            round=r,
            step=self.step,
            mixture=mix,
            samples=dict(zip(self.train, map(int, counts))),
            eval_loss=checkpoints[-1]["loss"],
            eval_acc=checkpoints[-1]["acc"],
            train_loss={s: v for s, v, c in zip(self.train, train.values(), counts) if c},
            eval_checkpoints=checkpoints,
            t_report=0.0,  # simulated rounds take no wall time
        )


@dataclass
class Simulation:
    """One policy's simulated run: a record per round, as metrics.jsonl holds them."""

    policy: str
    params: dict
    records: list[RoundRecord]

    @property
    def mean_loss(self) -> list[float]:
        """Mean eval loss at each round's end."""
        return [float(np.mean(list(r.eval_loss.values()))) for r in self.records]

    @property
    def final(self) -> float:
        return self.mean_loss[-1]

    @property
    def cumulative(self) -> float:
        """Sum over rounds of the round-end mean eval loss (lower: learned sooner)."""
        return float(np.sum(self.mean_loss))


def simulate(policy: str, params: dict | None, law: Law, **sandbox) -> Simulation:
    """Run ``policy`` through every round of a fresh sandbox; mixtures are validated as the
    coordinator validates them, so a bad mixture fails here as it would in training."""
    from skillit_ray.policy import build_policy

    box = Sandbox(law, **sandbox)
    pol = build_policy(policy, dict(params or {}))
    skills = box.train
    mix = validate_mixture(pol.init(box.context()), skills, policy)
    records = []
    for r in range(box.rounds):
        rec = box.run_round(r, mix)
        rec.next_mixture = validate_mixture(pol.update(rec.observation()), skills, policy)
        records.append(rec)
        mix = rec.next_mixture
    return Simulation(policy, dict(params or {}), records)


def write_run(sim: Simulation, out: str, graph_path: str | None, seed: int = 0) -> str:
    """A run directory that ``report`` reads: config.yaml, metrics.jsonl, summary.json."""
    import yaml

    os.makedirs(out, exist_ok=True)
    cfg = {"policy": {"name": sim.policy, "params": sim.params}, "train": {"seed": seed}}
    with open(os.path.join(out, "config.yaml"), "w") as fh:
        yaml.safe_dump(cfg, fh, sort_keys=False)
    with open(os.path.join(out, "metrics.jsonl"), "w") as fh:
        for rec in sim.records:
            fh.write(json.dumps(rec.metrics_row(0.0)) + "\n")
    with open(os.path.join(out, "summary.json"), "w") as fh:
        json.dump({"final_mean_eval_loss": sim.final, "cumulative_loss": sim.cumulative}, fh)
    if graph_path:
        with open(graph_path) as src, open(os.path.join(out, "graph.json"), "w") as dst:
            dst.write(src.read())
    return out
