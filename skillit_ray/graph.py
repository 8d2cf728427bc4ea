"""SkillsGraph: a k x m matrix with the skill names of both axes, stored as JSON.

``matrix[i][j]`` = how much training on train skill i helps eval skill j (rows = train skills).
Files load without pickle.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

from skillit_ray.errors import GraphError


@dataclass
class SkillsGraph:
    train_skills: tuple[str, ...]
    eval_skills: tuple[str, ...]
    matrix: np.ndarray
    std: np.ndarray | None = None
    provenance: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.train_skills = tuple(self.train_skills)
        self.eval_skills = tuple(self.eval_skills)
        self.matrix = np.asarray(self.matrix, dtype=np.float64)
        shape = (len(self.train_skills), len(self.eval_skills))
        if self.matrix.shape != shape:
            raise GraphError(
                f"graph matrix has shape {self.matrix.shape}, expected {shape} "
                "(rows = train_skills, columns = eval_skills)"
            )
        if not np.all(np.isfinite(self.matrix)):
            i, j = np.argwhere(~np.isfinite(self.matrix))[0]
            raise GraphError(
                f"graph entry [{self.train_skills[i]} -> {self.eval_skills[j]}] is "
                f"{self.matrix[i, j]}: expected a finite number"
            )
        for axis, names in (("train_skills", self.train_skills), ("eval_skills", self.eval_skills)):
            if len(set(names)) != len(names):
                raise GraphError(f"graph {axis} has duplicate names: {list(names)}")

    def to_json(self) -> dict:
        return {
            "train_skills": list(self.train_skills),
            "eval_skills": list(self.eval_skills),
            "matrix": self.matrix.tolist(),
            "std": None if self.std is None else np.asarray(self.std).tolist(),
            "provenance": self.provenance,
        }

    def save(self, path: str) -> None:
        tmp = f"{path}.tmp"
        with open(tmp, "w") as fh:
            json.dump(self.to_json(), fh, indent=1)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str) -> SkillsGraph:
        try:
            with open(path) as fh:
                raw = json.load(fh, parse_constant=lambda c: math.nan)
        except FileNotFoundError:
            raise GraphError(f"graph file '{path}' does not exist") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise GraphError(f"graph file '{path}' is not readable JSON: {exc}") from None
        missing = [k for k in ("train_skills", "eval_skills", "matrix") if k not in raw]
        if missing:
            raise GraphError(f"graph file '{path}' lacks field(s) {missing}")
        try:
            return cls(
                raw["train_skills"],
                raw["eval_skills"],
                np.asarray(raw["matrix"], dtype=float),
                None if raw.get("std") is None else np.asarray(raw["std"], dtype=float),
                raw.get("provenance") or {},
            )
        except GraphError as exc:
            raise GraphError(f"graph file '{path}': {exc}") from None
        except (TypeError, ValueError) as exc:
            raise GraphError(f"graph file '{path}': matrix is not numeric: {exc}") from None

    def select(self, train: tuple[str, ...], eval_: tuple[str, ...], source: str) -> SkillsGraph:
        """The sub-graph for a run's skills, in the run's order; names what is missing."""
        for axis, want, have in (
            ("train", train, self.train_skills),
            ("eval", eval_, self.eval_skills),
        ):
            missing = [s for s in want if s not in have]
            if missing:
                raise GraphError(
                    f"graph '{source}' has no {axis} skill(s) {missing}; it has {list(have)}"
                )
        rows = [self.train_skills.index(s) for s in train]
        cols = [self.eval_skills.index(s) for s in eval_]
        std = None if self.std is None else np.asarray(self.std)[np.ix_(rows, cols)]
        return SkillsGraph(train, eval_, self.matrix[np.ix_(rows, cols)], std, self.provenance)
