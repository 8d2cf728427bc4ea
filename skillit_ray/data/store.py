"""The per-worker skill store and its sampler.

A worker drains its shard of a split once into per-skill contiguous arrays, ordered by content
key so the order does not depend on how Ray Data scheduled blocks. The sampler walks each skill
through a seeded per-epoch permutation with a cursor: no row repeats within a skill's epoch, and
(epoch, cursor) per skill is all that resume needs.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from skillit_ray.errors import DataError


class SkillStore:
    """Per skill: ``ids`` [n, L] int64 and ``mask`` [n, L] uint8."""

    def __init__(self, skills: tuple[str, ...], ids: dict, mask: dict):
        self.skills = tuple(skills)
        self.ids = ids
        self.mask = mask

    @classmethod
    def from_batches(
        cls, batches: Iterable[dict], skills: tuple[str, ...], split: str
    ) -> SkillStore:
        parts: dict[str, list] = {s: [] for s in skills}
        for b in batches:
            names = np.asarray(b["skill"]).astype(str)
            for s in np.unique(names):
                if s in parts:
                    sel = names == s
                    parts[s].append((b["key"][sel], b["input_ids"][sel], b["loss_mask"][sel]))
        ids, mask = {}, {}
        for s in skills:
            if not parts[s]:
                raise DataError(f"{split} split: skill '{s}' has no rows on this worker")
            key = np.concatenate([p[0] for p in parts[s]])
            order = np.argsort(key, kind="stable")
            ids[s] = np.concatenate([p[1] for p in parts[s]])[order].astype(np.int64)
            mask[s] = np.concatenate([p[2] for p in parts[s]])[order]
        return cls(skills, ids, mask)

    def rows(self, skill: str) -> int:
        return self.ids[skill].shape[0]

    def gather(self, skill: str, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.ids[skill][idx], self.mask[skill][idx]


class SkillSampler:
    """Draws row indices per skill without repeats within an epoch; resumable by state_dict."""

    def __init__(self, sizes: dict[str, int], seed: int, rank: int = 0):
        self.sizes = dict(sizes)
        self.seed, self.rank = seed, rank
        self.epoch = {s: 0 for s in sizes}
        self.cursor = {s: 0 for s in sizes}
        self.drawn = {s: 0 for s in sizes}
        self._perm: dict[str, np.ndarray] = {}

    def _permutation(self, skill: str) -> np.ndarray:
        epoch = self.epoch[skill]
        cached = self._perm.get(skill)
        if cached is None or cached[0] != epoch:
            idx = list(self.sizes).index(skill)
            rng = np.random.default_rng([self.seed, self.rank, idx, epoch])
            self._perm[skill] = (epoch, rng.permutation(self.sizes[skill]))
        return self._perm[skill][1]

    def take(self, skill: str, k: int) -> np.ndarray:
        out = []
        while k > 0:
            perm = self._permutation(skill)
            n = min(k, len(perm) - self.cursor[skill])
            out.append(perm[self.cursor[skill] : self.cursor[skill] + n])
            self.cursor[skill] += n
            k -= n
            if self.cursor[skill] == len(perm):
                self.epoch[skill] += 1
                self.cursor[skill] = 0
        taken = np.concatenate(out) if out else np.zeros(0, dtype=np.int64)
        self.drawn[skill] += len(taken)
        return taken

    def state_dict(self) -> dict:
        return {"epoch": dict(self.epoch), "cursor": dict(self.cursor), "drawn": dict(self.drawn)}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = dict(state["epoch"])
        self.cursor = dict(state["cursor"])
        self.drawn = dict(state["drawn"])
        self._perm = {}
