"""Addition: predict one digit of the sum of two zero-padded k-digit numbers.

A row reads ``a1 a2 a3 + b1 b2 b3 , D2 =`` and its answer is digit 2 of the sum (D1 = the ones
digit). Skill ``addition/digitI`` = predicting digit I, as in the SKILL-IT paper.

``format: reversed`` is a format a small model learns from scratch (Lee et al. 2023, "Teaching
arithmetic to small transformers": reversed output and every sum digit emitted make each digit a
local function of the operands' digits at the same place and one carry): a row reads
``a1 a2 a3 + b1 b2 b3 = s1 s2 s3 s4`` with every number written least significant digit first,
zero-padded to ``digits`` (the sum to digits + 1), and the answer is the whole sum (loss and exact
match on all its digits). A digit of the paper's format alone is a sum mod 10 with carries and no
first-order signal. Skill ``addition/carriesC`` = the sum has exactly C carries (0..digits): the
operands are uniform among the pairs with C carries. Carries are the hard part of addition and
nest (a row with C carries holds C carry steps and the no-carry digit sums), so the slices have a
real ordering; a skill by sum digit would give every row all skills at once in this format, and a
skill by operand length would move the digits' positions between skills.
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
    proportions: list | None = field(
        default=None,
        metadata={
            "doc": "Natural train proportions per skill; None: the paper's 13:14:18 (paper "
            "format, 3 digits; equal for other digit counts), or how often each carry count "
            "occurs among uniform operand pairs (reversed format)."
        },
    )
    val_rows_per_skill: int = field(default=200, metadata={"doc": "Validation rows per skill."})
    seed: int = field(default=0, metadata={"doc": "Generator seed."})
    format: str = field(
        default="paper",
        metadata={
            "doc": "'paper' (one sum digit per row, skill = digit) or 'reversed' (LSB-first "
            "operands and sum, every sum digit the answer, skill = number of carries)."
        },
    )


FORMATS = ("paper", "reversed")


def vocab(p: AdditionParams) -> Vocab:
    digits = [str(i) for i in range(10)]
    if p.format == "reversed":
        return Vocab([*digits, "+", "="])
    return Vocab([*digits, "+", ",", "=", *[f"D{i}" for i in range(1, p.digits + 1)]])


def skills(p: AdditionParams) -> list[str]:
    if p.format == "reversed":
        return [f"addition/carries{c}" for c in range(p.digits + 1)]
    return [f"addition/digit{i}" for i in range(1, p.digits + 1)]


def _pairs_by_carries(digits: int) -> list[list[list[int]]]:
    """ways[i][carry][c]: digit pairs for places i..digits-1 that, entered with ``carry``, make
    exactly c more carries (a dynamic programme over places, least significant first)."""
    ways = [[[0] * (digits + 2) for _ in range(2)] for _ in range(digits + 1)]
    ways[digits][0][0] = ways[digits][1][0] = 1
    for i in range(digits - 1, -1, -1):
        for carry in (0, 1):
            for x in range(10):
                for y in range(10):
                    out = int(x + y + carry >= 10)
                    for c in range(digits + 1 - out):
                        ways[i][carry][c + out] += ways[i + 1][out][c]
    return ways


def natural_proportions(p: AdditionParams) -> list[float]:
    if p.proportions is not None:
        return list(map(float, p.proportions))
    if p.format == "reversed":
        return [float(n) for n in _pairs_by_carries(p.digits)[0][0][: p.digits + 1]]
    return [13.0, 14.0, 18.0] if p.digits == 3 else [1.0] * p.digits


def _reversed_row(p: AdditionParams, carries: int):
    ways = _pairs_by_carries(p.digits)

    def make(rng: np.random.Generator) -> tuple[list[str], int]:
        # Draw the digit pairs place by place, each with probability proportional to the pairs
        # of the remaining places that complete exactly `carries` carries: uniform over the
        # operand pairs with that many carries, without rejection.
        xs, ys, carry, left = [], [], 0, carries
        for i in range(p.digits):
            options, weights = [], []
            for x in range(10):
                for y in range(10):
                    out = int(x + y + carry >= 10)
                    if left - out >= 0:
                        options.append((x, y, out))
                        weights.append(ways[i + 1][out][left - out])
            w = np.asarray(weights, dtype=float)
            x, y, out = options[int(rng.choice(len(options), p=w / w.sum()))]
            xs.append(x)
            ys.append(y)
            carry, left = out, left - out
        a = sum(d * 10**i for i, d in enumerate(xs))
        b = sum(d * 10**i for i, d in enumerate(ys))
        total = f"{a + b:0{p.digits + 1}d}"[::-1]
        tokens = [BOS, *map(str, xs), "+", *map(str, ys), "="]
        return [*tokens, *total], len(tokens)

    return make


def _make_row(p: AdditionParams, digit: int):
    def make(rng: np.random.Generator) -> tuple[list[str], int]:
        a, b = (int(x) for x in rng.integers(0, 10**p.digits, size=2))
        ans = (a + b) // 10 ** (digit - 1) % 10
        tokens = [BOS, *f"{a:0{p.digits}d}", "+", *f"{b:0{p.digits}d}", ",", f"D{digit}", "="]
        return [*tokens, str(ans)], len(tokens)

    return make


def generate(out: str, p: AdditionParams) -> dict:
    if p.format not in FORMATS:
        raise ValueError(f"addition: format must be one of {list(FORMATS)}, got '{p.format}'")
    if not 1 <= p.digits <= 9:
        raise ValueError(f"addition: digits must be in 1..9, got {p.digits}")
    names = skills(p)
    natural = natural_proportions(p)
    if len(natural) != len(names) or min(natural) <= 0:
        raise ValueError(
            f"addition: proportions must be {len(names)} values > 0 (one per skill of the "
            f"'{p.format}' format), got {p.proportions}"
        )
    counts = split_counts(natural, p.rows_per_skill)
    # Reversed: skill i (1-based) holds the rows with i - 1 carries.
    maker = (
        (lambda i: _reversed_row(p, i - 1))
        if p.format == "reversed"
        else (lambda i: _make_row(p, i))
    )

    def rows():
        return skill_rows(names, counts, p.val_rows_per_skill, p.seed, maker)

    return write_dataset(
        out,
        "addition",
        p,
        VERSION,
        names,
        natural,
        vocab(p),
        rows,
        {"task": "addition"},
    )


def answer(text: str) -> str:
    """Recompute the answer from a row's text (used to verify stored answers)."""
    tokens = text.split()
    if "," not in tokens:  # reversed: the whole sum, least significant digit first
        plus, eq = tokens.index("+"), tokens.index("=")
        a, b = int("".join(tokens[:plus][::-1])), int("".join(tokens[plus + 1 : eq][::-1]))
        return " ".join(f"{a + b:0{plus + 1}d}"[::-1])
    plus, comma = tokens.index("+"), tokens.index(",")
    a, b = int("".join(tokens[:plus])), int("".join(tokens[plus + 1 : comma]))
    digit = int(tokens[comma + 1][1:])
    return str((a + b) // 10 ** (digit - 1) % 10)
