"""Instruction-style composite skills: a language x task grid, in the spirit of the paper's
Spanish question generation (a skill = doing one task in one language).

Each language is its own vocabulary of ``words`` tokens (``en3``, ``es3``, ...; word i means the
same thing in every language and sorts at place i). A row reads
``<bos> es reverse es3 es11 es0 es7 : es7 es0 es11 es3``: the language, the instruction, the
input words, then the answer (every token after ``:``). Tasks: ``copy`` (the words in order),
``reverse`` (reversed), ``sort`` (ascending word index). Skill ``instruct/<lang>/<task>``.
Doing a task in a new language needs the task (shared across languages) and the language's
words (shared across tasks), so the grid has the structure a skills graph can find.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from skillit_ray.data.generators.common import BOS, Vocab, skill_rows, split_counts, write_dataset

VERSION = 1
TASKS = {
    "copy": lambda ws: list(ws),
    "reverse": lambda ws: list(reversed(ws)),
    "sort": lambda ws: sorted(ws),
}


@dataclass
class InstructParams:
    languages: list = field(
        default_factory=lambda: ["en", "es"], metadata={"doc": "Language names (vocabularies)."}
    )
    tasks: list = field(
        default_factory=lambda: ["copy", "reverse", "sort"],
        metadata={"doc": f"Instructions, a subset of {sorted(TASKS)}."},
    )
    words: int = field(default=16, metadata={"doc": "Words per language vocabulary."})
    length: int = field(default=4, metadata={"doc": "Input words per row (distinct words)."})
    rows_per_skill: int = field(
        default=2000, metadata={"doc": "Train rows of the least frequent skill."}
    )
    proportions: list | None = field(
        default=None,
        metadata={"doc": "Natural train proportions per skill, languages-major; None = equal."},
    )
    val_rows_per_skill: int = field(default=200, metadata={"doc": "Validation rows per skill."})
    seed: int = field(default=0, metadata={"doc": "Generator seed."})


def grid(p: InstructParams) -> list[tuple[str, str]]:
    return [(lang, task) for lang in p.languages for task in p.tasks]


def skills(p: InstructParams) -> list[str]:
    return [f"instruct/{lang}/{task}" for lang, task in grid(p)]


def vocab(p: InstructParams) -> Vocab:
    words = [f"{lang}{i}" for lang in p.languages for i in range(p.words)]
    return Vocab([*p.languages, *p.tasks, ":", *words])


def _make_row(p: InstructParams, lang: str, task: str):
    def make(rng: np.random.Generator) -> tuple[list[str], int]:
        idx = [int(i) for i in rng.choice(p.words, size=p.length, replace=False)]
        out = TASKS[task](idx)
        prompt = [BOS, lang, task, *(f"{lang}{i}" for i in idx), ":"]
        return prompt + [f"{lang}{i}" for i in out], len(prompt)

    return make


def _check(p: InstructParams) -> None:
    unknown = sorted(set(p.tasks) - set(TASKS))
    if unknown or not p.tasks:
        raise ValueError(f"instruct: unknown tasks {unknown}; available: {sorted(TASKS)}")
    langs = [str(x) for x in p.languages]
    if not langs or len(set(langs)) != len(langs) or not all(x.isalpha() for x in langs):
        raise ValueError(f"instruct: languages must be distinct alphabetic names, got {langs}")
    if set(langs) & set(TASKS):
        raise ValueError(f"instruct: a language may not be named like a task: {langs}")
    if not 2 <= p.length <= p.words:
        raise ValueError(f"instruct: need 2 <= length <= words, got {p.length}, {p.words}")
    n = len(langs) * len(p.tasks)
    if p.proportions is not None and (len(p.proportions) != n or min(p.proportions) <= 0):
        raise ValueError(
            f"instruct: proportions must be {n} values > 0 (one per skill), got {p.proportions}"
        )


def generate(out: str, p: InstructParams) -> dict:
    _check(p)
    names, cells = skills(p), grid(p)
    weights = [float(x) for x in (p.proportions or [1.0] * len(names))]
    counts = split_counts(weights, p.rows_per_skill)

    def rows():
        return skill_rows(
            names, counts, p.val_rows_per_skill, p.seed, lambda i: _make_row(p, *cells[i - 1])
        )

    meta = {"task": "instruct", "languages": list(p.languages), "tasks": list(p.tasks)}
    return write_dataset(out, "instruct", p, VERSION, names, weights, vocab(p), rows, meta)


def answer(text: str) -> str:
    """Recompute the answer from a row's text (used to verify stored answers)."""
    tokens = text.split()
    lang, task, words = tokens[0], tokens[1], tokens[2 : tokens.index(":")]
    idx = [int(w[len(lang) :]) for w in words]
    return " ".join(f"{lang}{i}" for i in TASKS[task](idx))
