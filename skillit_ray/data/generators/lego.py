"""LEGO: resolve the value of a variable in a chain of boolean assignments (Zhang et al. 2022).

A row holds ``variables`` clauses: the root ``x = val b`` and ``y = val x`` / ``y = not x`` for
each next variable of the chain, shuffled unless ``shuffle_clauses`` is false, then a query
``? y =`` whose answer is 0 or 1. Skill ``lego/depthD`` = the queried variable sits at depth D
of the chain (depth 1 = the root), as in the SKILL-IT paper.

``format: scratchpad`` is a variant a small model learns from scratch on a CPU: clauses in chain
order with random names, the query ``? y :``, then the values of depths 1..D in chain order. Only
the last value is the answer (loss and exact match); the earlier ones are teacher-forced, so each
step is one local hop (read the previous value and the next clause's val/not). The paper's format
makes a depth-D answer a parity of D bits with no first-order signal, a plateau for gradient
descent from scratch (Abbe et al. 2024, the globality barrier, lifted by scratchpads); shuffled
clauses add lookups that 2 layers cannot chain (Sanford, Hsu, Telgarsky 2024). The paper itself
fine-tunes a pretrained GPT-Neo-125M, which Zhang et al. 2022 find acts as a smart initialization.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field

import numpy as np

from skillit_ray.data.generators.common import BOS, Vocab, skill_rows, split_counts, write_dataset

VERSION = 1


@dataclass
class LegoParams:
    variables: int = field(default=5, metadata={"doc": "Chain length = number of skills (2-26)."})
    rows_per_skill: int = field(
        default=2000, metadata={"doc": "Train rows of the least frequent skill."}
    )
    proportions: list | None = field(
        default=None,
        metadata={
            "doc": "Natural train proportions per depth; default the paper's 1:1:1:3:5 with 5 "
            "variables, equal shares with any other number."
        },
    )
    val_rows_per_skill: int = field(default=200, metadata={"doc": "Validation rows per skill."})
    shuffle_clauses: bool = field(
        default=True, metadata={"doc": "Shuffle clause order (paper: yes)."}
    )
    seed: int = field(default=0, metadata={"doc": "Generator seed."})
    format: str = field(
        default="paper",
        metadata={
            "doc": "'paper' (shuffled clauses, one answer bit) or 'scratchpad' (chain order, "
            "the values of depths 1..D after the query, loss on the last; learnable from "
            "scratch by a 2-layer model)."
        },
    )

    def __post_init__(self) -> None:
        # Resolved here, so the default's cache fingerprint is that of the list it stands for.
        if self.proportions is None:
            self.proportions = [1, 1, 1, 3, 5] if self.variables == 5 else [1] * self.variables


FORMATS = ("paper", "scratchpad")


def vocab(p: LegoParams | None = None) -> Vocab:
    # ':' only in the scratchpad format, so the paper format's token ids stay what they were.
    extra = [":"] if p is not None and p.format == "scratchpad" else []
    return Vocab([*string.ascii_lowercase, "=", "val", "not", "0", "1", ",", ".", "?", *extra])


def skills(p: LegoParams) -> list[str]:
    return [f"lego/depth{d}" for d in range(1, p.variables + 1)]


def _make_row(p: LegoParams, depth: int):
    def make(rng: np.random.Generator) -> tuple[list[str], int]:
        names = list(rng.choice(list(string.ascii_lowercase), size=p.variables, replace=False))
        value = int(rng.integers(2))
        clauses = [[names[0], "=", "val", str(value)]]
        values = [value]
        for i in range(1, p.variables):
            negate = bool(rng.integers(2))
            clauses.append([names[i], "=", "not" if negate else "val", names[i - 1]])
            values.append(1 - values[-1] if negate else values[-1])
        scratchpad = p.format == "scratchpad"
        if p.shuffle_clauses and not scratchpad:
            clauses = [clauses[i] for i in rng.permutation(len(clauses))]
        tokens = [BOS]
        for i, c in enumerate(clauses):
            tokens += c + ([","] if i < len(clauses) - 1 else ["."])
        if scratchpad:
            tokens += ["?", names[depth - 1], ":", *(str(v) for v in values[:depth])]
        else:
            tokens += ["?", names[depth - 1], "=", str(values[depth - 1])]
        return tokens, len(tokens) - 1

    return make


def _check(p: LegoParams) -> None:
    if not 2 <= p.variables <= 26:
        raise ValueError(f"lego: variables must be in 2..26, got {p.variables}")
    if len(p.proportions) != p.variables:
        raise ValueError(
            f"lego: proportions has {len(p.proportions)} entries, expected {p.variables}"
        )
    if p.format not in FORMATS:
        raise ValueError(f"lego: format must be one of {list(FORMATS)}, got '{p.format}'")
    if min(p.proportions) <= 0:
        raise ValueError(f"lego: proportions must be > 0, got {p.proportions}")


def generate(out: str, p: LegoParams) -> dict:
    _check(p)
    names = skills(p)
    counts = split_counts(p.proportions, p.rows_per_skill)

    def rows():
        return skill_rows(names, counts, p.val_rows_per_skill, p.seed, lambda i: _make_row(p, i))

    return write_dataset(
        out,
        "lego",
        p,
        VERSION,
        names,
        list(map(float, p.proportions)),
        vocab(p),
        rows,
        {"task": "lego", "answer_values": ["0", "1"]},
    )


def answer(text: str) -> str:
    """Recompute the answer from a row's text (used to verify stored answers)."""
    tokens = text.split()
    q = tokens.index("?")
    if tokens[q + 2] == ":":  # scratchpad: the answer is the last value after the query
        tokens = tokens[: q + 2]
    clauses = " ".join(tokens[:q]).rstrip(" .").split(" , ")
    defs = {}
    for c in clauses:
        name, _, op, arg = c.split()
        defs[name] = (op, arg)

    def value(name: str) -> int:
        op, arg = defs[name]
        if arg in ("0", "1"):
            return int(arg)
        v = value(arg)
        return 1 - v if op == "not" else v

    return str(value(tokens[q + 1]))
