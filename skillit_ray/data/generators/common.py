"""Shared machinery of the synthetic generators: symbol vocabularies, dedup, shard writing.

A generator yields, per skill, rows of (tokens, answer_start); the answer tokens are the only ones
with loss, and accuracy is an exact match of all of them (greedy decoding under teacher forcing
is the same thing: each answer token must be the argmax given the true prefix).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

PAD, BOS = "<pad>", "<bos>"
SHARD_ROWS = 4096
SCORING = {
    "loss": "masked token-mean cross-entropy on the answer tokens only",
    "accuracy": "exact match: every answer token is the model's argmax given the true prefix",
}


class Vocab:
    def __init__(self, symbols: list[str]):
        self.symbols = [PAD, BOS, *symbols]
        self.index = {s: i for i, s in enumerate(self.symbols)}

    def encode(self, tokens: list[str]) -> list[int]:
        return [self.index[t] for t in tokens]


def fingerprint(name: str, params: object, version: int, extra: dict | None = None) -> str:
    """Hash of a generator's settings; ``extra`` adds what else its output depends on (the
    sources corpus: the environment). Without it the hash is what it always was."""
    key = {"generator": name, "params": asdict(params), "v": version}
    if extra is not None:
        key["extra"] = extra
    blob = json.dumps(key, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def split_counts(weights: list[float], rows_per_unit: int) -> list[int]:
    """Train rows per skill: rows_per_unit for the lightest skill, the rest in proportion."""
    w = np.asarray(weights, dtype=float)
    return [int(round(rows_per_unit * x / w.min())) for x in w]


def unique_rows(
    make: Callable[[np.random.Generator], tuple[list[str], int]],
    n: int,
    rng: np.random.Generator,
    exclude: set,
    what: str,
) -> list[tuple[list[str], int]]:
    """Draw n distinct rows (by token sequence) not in ``exclude``; adds them to ``exclude``."""
    rows, tries = [], 0
    while len(rows) < n:
        tries += 1
        if tries > 50 * n + 1000:
            raise ValueError(f"{what}: cannot draw {n} distinct rows; the space is too small")
        tokens, answer_start = make(rng)
        key = tuple(tokens)
        if key in exclude:
            continue
        exclude.add(key)
        rows.append((tokens, answer_start))
    return rows


def skill_rows(names: list[str], counts: list[int], val_rows: int, seed: int, make_for):
    """Rows per (split, skill): validation first, so train rows never duplicate a held-out row.

    ``make_for(i)`` returns the row maker of the i-th skill (1-based).
    """
    for i, (skill, n) in enumerate(zip(names, counts, strict=True), start=1):
        seen: set = set()
        make = make_for(i)
        yield (
            "val",
            skill,
            unique_rows(make, val_rows, np.random.default_rng([seed, i, 1]), seen, skill),
        )
        yield "train", skill, unique_rows(make, n, np.random.default_rng([seed, i, 0]), seen, skill)


def _table(skill: str, rows, vocab: Vocab, start_id: int) -> pa.Table:
    ids = [vocab.encode(t) for t, _ in rows]
    masks = [[0] * a + [1] * (len(t) - a) for t, a in rows]
    return pa.table(
        {
            "row_id": pa.array(np.arange(start_id, start_id + len(rows)), pa.int64()),
            "skill": pa.array([skill] * len(rows), pa.string()),
            "text": pa.array([" ".join(t[1:]) for t, _ in rows], pa.string()),
            "answer": pa.array([" ".join(t[a:]) for t, a in rows], pa.string()),
            "input_ids": pa.array(ids, pa.list_(pa.int32())),
            "loss_mask": pa.array(masks, pa.list_(pa.int8())),
        }
    )


def write_shards(folder: str, table: pa.Table, seed: int, shard_rows: int = SHARD_ROWS) -> None:
    """Write a split's rows as Parquet shards in a seeded shuffled order (so every shard, and
    every worker's share of them, holds every skill)."""
    os.makedirs(folder, exist_ok=True)
    order = np.random.default_rng(seed).permutation(table.num_rows)
    table = table.take(pa.array(order))
    for i, lo in enumerate(range(0, table.num_rows, shard_rows)):
        pq.write_table(table.slice(lo, shard_rows), os.path.join(folder, f"part-{i:05d}.parquet"))


def write_split(folder: str, per_skill: dict[str, list], vocab: Vocab, seed: int) -> dict:
    """Write one split as shuffled Parquet shards; returns rows per skill."""
    tables, start = [], 0
    for skill, rows in per_skill.items():
        tables.append(_table(skill, rows, vocab, start))
        start += len(rows)
    write_shards(folder, pa.concat_tables(tables), seed)
    return {s: len(r) for s, r in per_skill.items()}


@contextlib.contextmanager
def atomic_folder(out: str) -> Iterator[str]:
    """A temporary folder beside ``out`` that replaces it when the block completes, so a crash
    never leaves a half-written dataset that looks finished."""
    parent = os.path.dirname(os.path.abspath(out)) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=parent)
    try:
        yield tmp
        if os.path.exists(out):
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_dataset(
    out: str,
    name: str,
    params: object,
    version: int,
    skills: list[str],
    natural: list[float],
    vocab: Vocab,
    rows: Callable[[], Iterator[tuple[str, str, list]]],
    extra: dict,
) -> dict:
    """Generate the rows and write both splits and the manifest (see ``atomic_folder``)."""
    with atomic_folder(out) as tmp:
        splits: dict[str, dict[str, list]] = {"train": {}, "val": {}}
        for split, skill, skill_rows in rows():
            splits[split][skill] = skill_rows
        seed = params.seed  # type: ignore[attr-defined]
        train_rows = write_split(os.path.join(tmp, "train"), splits["train"], vocab, seed)
        val_rows = write_split(os.path.join(tmp, "val"), splits["val"], vocab, seed + 1)
        max_len = max(len(t) for split in splits.values() for r in split.values() for t, _ in r)
        manifest = {
            "generator": name,
            "version": version,
            "params": asdict(params),
            "fingerprint": fingerprint(name, params, version),
            "skills": skills,
            "natural_proportions": dict(zip(skills, natural, strict=True)),
            "train_rows": train_rows,
            "val_rows": val_rows,
            "vocab": vocab.symbols,
            "pad_id": 0,
            "max_length": max_len,
            "scoring": SCORING,
            **extra,
        }
        with open(os.path.join(tmp, "manifest.json"), "w") as fh:
            json.dump(manifest, fh, indent=1)
    return manifest
