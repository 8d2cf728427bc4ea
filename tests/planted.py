"""A planted prerequisite that only a warm-started graph can see (tests/test_warm_graph.py,
scripts/probe_warm_graph.py).

Three skills over N symbols and one secret permutation f (and a second one, h):

- ``lookup`` (A): ``Q_A s = f(s)``: the table itself, its query next to its symbol;
- ``routed`` (B): ``Q_B d1 .. d4 s d5 .. d8 = f(s)``: the same table, applied to the symbol at
  a fixed position (6) among 8 random distractor symbols, a position A's rows never have;
- ``other`` (C): ``Q_C s = h(s)``: another table on the same symbols, A's layout.

B is A's skill behind a routing step. From a fresh model (cold), training on A teaches f where
A's answer position looks (position 2, never position 6), so routed gains only what any skill
gives a fresh model, that answers are symbols (ln(38/32) = 0.17 nats): no edge A -> B. Once a
warm-up on the natural mixture has taught the model to route B's symbol to its answer position,
both skills read the same table, and H more steps on A improve B: an edge A -> B (and B -> A,
the same table). C, a conflicting table on the same symbols, overwrites f and hurts both.
Measured through `graph learn` (tests/test_warm_graph.py; H = 30, lr 3e-3, batch 32, seed 0):
lookup -> routed 0.143 cold, 0.612 after 100 warm-up steps.
"""

from __future__ import annotations

import numpy as np

SKILLS = ("lookup", "routed", "other")
N = 32  #: symbols
SPECIAL = {"bos": 1, "lookup": 2, "routed": 3, "other": 4, "eq": 5}  # 0 is padding
FIRST = 6  #: symbol ids are FIRST .. FIRST + N - 1
DISTRACTORS = 8
ROUTE = 6  #: where a routed row's symbol stands (after BOS, Q_B and 4 distractors)
LENGTH = 4 + DISTRACTORS + 1  #: the longest row (routed)


def tables(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.permutation(N), rng.permutation(N)


def rows(skill: str, n: int, seed: int, route: int = ROUTE) -> tuple[np.ndarray, np.ndarray]:
    """(ids, loss_mask), both [n, LENGTH], right-padded with 0; loss on the answer only."""
    f, h = tables()
    rng = np.random.default_rng([seed, SKILLS.index(skill)])
    s = rng.integers(0, N, n)
    ids = np.zeros((n, LENGTH), dtype=np.int64)
    mask = np.zeros_like(ids)
    for r in range(n):
        sym = FIRST + s[r]
        if skill == "routed":
            noise = list(FIRST + rng.integers(0, N, DISTRACTORS))
            row = [SPECIAL["bos"], SPECIAL[skill], *noise]
            row.insert(route, sym)
            row += [SPECIAL["eq"], FIRST + f[s[r]]]
        else:
            table = f if skill == "lookup" else h
            row = [SPECIAL["bos"], SPECIAL[skill], sym, SPECIAL["eq"], FIRST + table[s[r]]]
        ids[r, : len(row)] = row
        mask[r, len(row) - 1] = 1
    return ids, mask


def write(root, train_rows: int = 600, val_rows: int = 64, route: int = ROUTE) -> None:
    """The task as Parquet files: <root>/train/<skill>.parquet and <root>/val/<skill>.parquet
    (padding stripped: the data pipeline pads)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for split, n, seed in (("train", train_rows, 1), ("val", val_rows, 2)):
        (root / split).mkdir(parents=True)
        for skill in SKILLS:
            ids, mask = rows(skill, n, seed, route)
            keep = [int((r != 0).sum()) for r in ids]
            table = pa.table(
                {
                    "skill": [skill] * n,
                    "input_ids": [r[:k].tolist() for r, k in zip(ids, keep)],
                    "loss_mask": [m[:k].tolist() for m, k in zip(mask, keep)],
                }
            )
            pq.write_table(table, root / split / f"{skill}.parquet")
