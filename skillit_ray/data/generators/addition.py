"""Addition: predict one digit of the sum of two zero-padded k-digit numbers.

A row reads ``a1 a2 a3 + b1 b2 b3 , D2 =`` and its answer is digit 2 of the sum (D1 = the ones
digit). Skill ``addition/digitI`` = predicting digit I, as in the SKILL-IT paper.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from skillit_ray.data.generators.common import BOS, Vocab, skill_rows, split_counts, write_dataset

VERSION = 1


@dataclass
class AdditionParams:
    digits: int = field(default=3, metadata={"doc": "Digits per operand = number of skills."})
    rows_per_skill: int = field(
        default=2000, metadata={"doc": "Train rows of the least frequent skill."}
    )
    proportions: list = field(
        default_factory=lambda: [13, 14, 18],
        metadata={"doc": "Natural train proportions per digit (paper: 13:14:18)."},
    )
    val_rows_per_skill: int = field(default=200, metadata={"doc": "Validation rows per skill."})
    seed: int = field(default=0, metadata={"doc": "Generator seed."})


def vocab(p: AdditionParams) -> Vocab:
    digits = [str(i) for i in range(10)]
    return Vocab([*digits, "+", ",", "=", *[f"D{i}" for i in range(1, p.digits + 1)]])


def skills(p: AdditionParams) -> list[str]:
    return [f"addition/digit{i}" for i in range(1, p.digits + 1)]


def _make_row(p: AdditionParams, digit: int):
    def make(rng: np.random.Generator) -> tuple[list[str], int]:
        a, b = (int(x) for x in rng.integers(0, 10**p.digits, size=2))
        ans = (a + b) // 10 ** (digit - 1) % 10
        tokens = [BOS, *f"{a:0{p.digits}d}", "+", *f"{b:0{p.digits}d}", ",", f"D{digit}", "="]
        return [*tokens, str(ans)], len(tokens)

    return make


def generate(out: str, p: AdditionParams) -> dict:
    if not 1 <= p.digits <= 9:
        raise ValueError(f"addition: digits must be in 1..9, got {p.digits}")
    if len(p.proportions) != p.digits or min(p.proportions) <= 0:
        raise ValueError(
            f"addition: proportions must be {p.digits} values > 0, got {p.proportions}"
        )
    names = skills(p)
    counts = split_counts(p.proportions, p.rows_per_skill)

    def rows():
        return skill_rows(names, counts, p.val_rows_per_skill, p.seed, lambda i: _make_row(p, i))

    return write_dataset(
        out,
        "addition",
        p,
        VERSION,
        names,
        list(map(float, p.proportions)),
        vocab(p),
        rows,
        {"task": "addition"},
    )


def answer(text: str) -> str:
    """Recompute the answer from a row's text (used to verify stored answers)."""
    tokens = text.split()
    plus, comma = tokens.index("+"), tokens.index(",")
    a, b = int("".join(tokens[:plus])), int("".join(tokens[plus + 1 : comma]))
    digit = int(tokens[comma + 1][1:])
    return str((a + b) // 10 ** (digit - 1) % 10)
