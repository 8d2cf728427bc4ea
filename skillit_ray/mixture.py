"""Mixture, Observation and PolicyContext: the values policies see (numpy only, no torch/ray)."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from skillit_ray.errors import PolicyError

if TYPE_CHECKING:
    from skillit_ray.graph import SkillsGraph

# A mixture may be off from summing to 1 by this much before it is rejected (then renormalised).
SUM_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Mixture:
    """A probability vector over the train skills, in the order of ``skills``."""

    skills: tuple[str, ...]
    probs: np.ndarray
    #: Sample-level selection: ("max", d) keeps rows with difficulty <= d, ("min", d) rows >= d.
    row_filter: tuple[str, float] | None = None

    @classmethod
    def from_dict(cls, d: dict[str, float], skills: tuple[str, ...] | list[str]) -> Mixture:
        return cls(tuple(skills), np.array([float(d[s]) for s in skills], dtype=np.float64))

    def to_json(self) -> dict:
        """The one JSON form (metrics.jsonl rows, checkpoints): skill -> probability under
        ``mixture``, the row filter beside it as a list or null."""
        rf = None if self.row_filter is None else list(self.row_filter)
        return {"mixture": self.to_dict(), "row_filter": rf}

    @classmethod
    def from_json(cls, j: dict) -> Mixture:
        rf = j.get("row_filter")
        return cls.from_dict(j["mixture"], list(j["mixture"])).with_filter(
            None if rf is None else (rf[0], rf[1])
        )

    @classmethod
    def uniform(cls, skills) -> Mixture:
        k = len(skills)
        return cls(tuple(skills), np.full(k, 1.0 / k))

    @classmethod
    def from_weights(cls, skills, weights) -> Mixture:
        """Normalise non-negative weights (e.g. exp scores) into a mixture."""
        w = np.asarray(weights, dtype=np.float64)
        total = w.sum()
        if not np.isfinite(total) or total <= 0:
            raise PolicyError(f"cannot normalise weights {w.tolist()} into a mixture")
        return cls(tuple(skills), w / total)

    def with_filter(self, row_filter: tuple[str, float] | None) -> Mixture:
        return Mixture(self.skills, self.probs, row_filter)

    def to_dict(self) -> dict[str, float]:
        return {s: float(p) for s, p in zip(self.skills, self.probs, strict=True)}


def _not_numbers(values, names) -> list:
    """(name, value) of each entry that is not a real number (a string, None, an object)."""
    return [
        (n, v)
        for n, v in zip(names, values)
        if isinstance(v, bool) or not isinstance(v, (numbers.Real, np.floating, np.integer))
    ]


def validate_mixture(mix: object, skills: tuple[str, ...], policy: str) -> Mixture:
    """Check a policy's output: right skills, numbers, finite, non-negative, sums to 1, a valid
    row filter. Errors name the policy (the coordinator adds the round)."""
    if isinstance(mix, dict):
        known = set(skills)
        missing = [s for s in skills if s not in mix]
        extra = [s for s in mix if s not in known]
        if missing or extra:
            raise PolicyError(
                f"policy '{policy}' returned a mixture with wrong skills: "
                f"missing {missing}, unknown {extra}; expected {list(skills)}"
            )
        bad = _not_numbers([mix[s] for s in skills], skills)
        if bad:
            raise PolicyError(
                f"policy '{policy}' returned non-numeric probabilities {bad}: expected numbers"
            )
        mix = Mixture.from_dict(mix, skills)
    if not isinstance(mix, Mixture):
        raise PolicyError(f"policy '{policy}' returned {type(mix).__name__}, expected a Mixture")
    if tuple(mix.skills) != tuple(skills):
        raise PolicyError(
            f"policy '{policy}' returned a mixture over {list(mix.skills)}, expected {list(skills)}"
        )
    raw = mix.probs
    if not (isinstance(raw, np.ndarray) and raw.dtype.kind in "fiu"):  # numeric arrays: fast
        raw = np.asarray(raw, dtype=object)
        bad = _not_numbers(raw.ravel().tolist(), skills) if raw.ndim == 1 else []
        if bad or raw.ndim != 1:
            raise PolicyError(
                f"policy '{policy}' returned non-numeric probabilities {bad or raw.tolist()}: "
                f"expected one number per train skill {list(skills)}"
            )
    p = np.asarray(raw, dtype=np.float64)
    if p.shape != (len(skills),):
        raise PolicyError(f"policy '{policy}' returned probabilities of shape {p.shape}")
    bad = [(skills[i], float(p[i])) for i in np.flatnonzero(~np.isfinite(p) | (p < 0))]
    if bad:
        raise PolicyError(
            f"policy '{policy}' returned invalid probabilities {bad}: expected finite values >= 0"
        )
    total = float(p.sum())
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise PolicyError(f"policy '{policy}' returned a mixture summing to {total!r}, expected 1")
    rf = mix.row_filter
    if rf is not None and (
        not isinstance(rf, (tuple, list))
        or len(rf) != 2
        or rf[0] not in ("max", "min")
        or _not_numbers([rf[1]], ["bound"])
        or not math.isfinite(float(rf[1]))
    ):
        raise PolicyError(
            f"policy '{policy}' returned row_filter {rf!r}; expected "
            "('max' or 'min', finite difficulty)"
        )
    return Mixture(tuple(skills), p / total, rf)


def largest_remainder(probs: np.ndarray, total: int) -> np.ndarray:
    """Exact integer counts summing to ``total`` that follow ``probs`` as closely as possible.

    Each skill gets floor(p*total); the leftover units go to the largest fractional parts, ties
    broken by skill order, so the result is deterministic (no multinomial noise).
    """
    p = np.asarray(probs, dtype=np.float64)
    raw = p * total
    counts = np.floor(raw + 1e-9).astype(np.int64)
    left = int(total - counts.sum())
    if left > 0:
        frac = raw - counts
        order = np.lexsort((np.arange(len(p)), -frac))  # largest fraction first, then index
        counts[order[:left]] += 1
    elif left < 0:  # only from the 1e-9 guard; take back from the smallest fractions
        frac = raw - counts
        order = np.lexsort((np.arange(len(p)), frac))
        order = [i for i in order if counts[i] > 0]
        counts[order[:-left]] -= 1
    return counts


@dataclass(frozen=True)
class PolicyContext:
    """What a policy knows when it starts: complete before round 0 (the driver computes every
    signal the policy declares it needs before the coordinator is made) and never changed."""

    train_skills: tuple[str, ...]
    eval_skills: tuple[str, ...]
    natural_proportions: dict[str, float]
    rounds: int
    steps_per_round: int
    batch_size: int
    seed: int = 0
    train_rows: dict[str, int] = field(default_factory=dict)
    #: Per-skill eval loss of the initial model; set only for policies that need "initial_loss".
    initial_loss: dict[str, float] | None = None
    #: Per skill, the sorted per-row difficulty (the initial model's loss on each train row);
    #: set only for policies that need "difficulty".
    difficulty: dict[str, list[float]] | None = None
    #: The skills graph learned before round 0 (the ``graph`` config section); set only for
    #: policies that need "graph".
    graph: SkillsGraph | None = None


@dataclass
class Observation:
    """What one round measured (``mixture``: the one it trained on).

    ``eval_checkpoints`` holds every evaluation taken during the round, oldest first, each a dict
    with ``step``, ``loss`` and ``acc`` (skill -> value); ``eval_loss``/``eval_acc`` are the last.
    """

    round: int
    step: int
    mixture: Mixture
    samples: dict[str, int]
    eval_loss: dict[str, float]
    eval_acc: dict[str, float]
    train_loss: dict[str, float]
    eval_checkpoints: list[dict] = field(default_factory=list)
