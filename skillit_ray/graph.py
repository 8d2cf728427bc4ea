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

    # ---- plain .npy matrices (no names inside: the skill order is given) ----

    @classmethod
    def from_npy(
        cls,
        path: str,
        train_skills,
        eval_skills,
        transpose: bool = False,
        provenance: dict | None = None,
    ) -> SkillsGraph:
        """Import a bare matrix; rows are train skills (``transpose`` if it is [eval, train])."""
        try:
            m = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise GraphError(f"'{path}': not a readable .npy matrix: {exc}") from None
        m = np.asarray(m, dtype=np.float64)
        m = m.T if transpose else m
        want = (len(train_skills), len(eval_skills))
        if m.shape != want:
            hint = " (its transpose fits: pass --transpose)" if m.T.shape == want else ""
            raise GraphError(
                f"'{path}': matrix shape {m.shape}, expected {want} = "
                f"(train skills, eval skills){hint}"
            )
        return cls(
            train_skills,
            eval_skills,
            m,
            None,
            {"method": "import", "source": path, "transposed": transpose, **(provenance or {})},
        )

    def to_npy(self, path: str) -> None:
        np.save(path, self.matrix, allow_pickle=False)

    # ---- display ----

    def table(self, digits: int = 3) -> str:
        """The matrix as aligned text: one width per column (its eval skill's name or its
        widest cell), ``mean±std`` only when the graph averages several seeds."""
        spread = self.std is not None and self.provenance.get("seeds", 2) > 1
        heads = short_names(self.eval_skills)
        cols = []
        for j, head in enumerate(heads):
            cells = [f"{self.matrix[i, j]:.{digits}f}" for i in range(len(self.train_skills))]
            if spread:
                cells = [f"{c}±{self.std[i, j]:.{digits - 1}f}" for i, c in enumerate(cells)]
            width = max([len(head), *(len(c) for c in cells)])
            cols.append([head.rjust(width), *(c.rjust(width) for c in cells)])
        names = ["train \\ eval", *self.train_skills]
        name_w = max(len(n) for n in names)
        rows = zip(names, *cols, strict=True) if cols else ((n,) for n in names)
        return "\n".join("  ".join([row[0].ljust(name_w), *row[1:]]).rstrip() for row in rows)

    def heatmap(self, path: str) -> None:
        """A PNG heatmap with the skill names on both axes."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        k, m = self.matrix.shape
        fig, ax = plt.subplots(figsize=(1.2 + 0.9 * m, 1.0 + 0.7 * k), dpi=100)
        lim = float(np.abs(self.matrix).max()) or 1.0
        im = ax.imshow(self.matrix, cmap="RdBu", vmin=-lim, vmax=lim)
        ax.set_xticks(range(m), self.eval_skills, rotation=45, ha="right")
        ax.set_yticks(range(k), self.train_skills)
        ax.set_xlabel("eval skill (helped)")
        ax.set_ylabel("train skill (trained on)")
        for i in range(k):
            for j in range(m):
                ax.text(j, i, f"{self.matrix[i, j]:.2f}", ha="center", va="center", fontsize=8)
        fig.colorbar(im, ax=ax)
        ax.set_title(self.provenance.get("method", "skills graph"))
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)


def short_names(skills) -> list[str]:
    """Each skill's last path part ('lego/depth3' -> 'depth3') where that is unique among them,
    else its full name."""
    last = [s.rsplit("/", 1)[-1] for s in skills]
    return [t if last.count(t) == 1 else s for s, t in zip(skills, last, strict=True)]


def normalize(
    delta: np.ndarray,
    base: np.ndarray,
    train,
    eval_,
    how: str,
    clip_negative: bool,
    binarize: float | None,
    diagonal: str,
) -> np.ndarray:
    """Turn raw loss decreases into graph weights (each step optional, recorded in the file).

    ``delta[i, j]`` = loss decrease of eval skill j caused by train skill i; ``base[i, j]`` =
    the loss it is relative to. how: 'raw' or 'relative' (delta / base). binarize: entries above
    the threshold become edges, 0.5 off the diagonal and 1 on it (the paper's binary graphs).
    diagonal: 'keep', 'one' or 'zero' for self-edges (where train and eval names match).
    """
    A = delta / np.where(base > 0, base, 1.0) if how == "relative" else delta.copy()
    if clip_negative:
        A = np.maximum(A, 0.0)
    diag = np.array([[t == e for e in eval_] for t in train], dtype=bool)
    if binarize is not None:
        A = np.where(A > binarize, np.where(diag, 1.0, 0.5), 0.0)
    if diagonal == "one":
        A[diag] = 1.0
    elif diagonal == "zero":
        A[diag] = 0.0
    return A
