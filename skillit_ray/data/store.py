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

COLUMNS = ("input_ids", "loss_mask", "difficulty")


class SkillStore:
    """Per skill: ``ids`` [n, L] int64, ``mask`` [n, L] uint8, optional ``difficulty`` [n]."""

    def __init__(
        self,
        skills: tuple[str, ...],
        ids: dict,
        mask: dict,
        difficulty: dict | None,
        keys: dict | None = None,
    ):
        self.skills = tuple(skills)
        self.ids = ids
        self.mask = mask
        self.difficulty = difficulty
        self.keys = keys or {}  # per skill, the sorted content keys (row identities)

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
                    parts[s].append({c: b[c][sel] for c in ("key", *COLUMNS) if c in b})
        cols: dict[str, dict] = {c: {} for c in ("key", *COLUMNS)}
        for s in skills:
            if not parts[s]:
                raise DataError(f"{split} split: skill '{s}' has no rows on this worker")
            order = np.argsort(np.concatenate([p["key"] for p in parts[s]]), kind="stable")
            for c in ("key", *COLUMNS):
                if c in parts[s][0]:
                    cols[c][s] = np.concatenate([p[c] for p in parts[s]])[order]
        ids = {s: a.astype(np.int64) for s, a in cols["input_ids"].items()}
        return cls(skills, ids, cols["loss_mask"], cols["difficulty"] or None, cols["key"])

    def rows(self, skill: str) -> int:
        return self.ids[skill].shape[0]

    def eligible(self, skill: str, row_filter: tuple[str, float]) -> np.ndarray:
        """Rows of a skill inside a policy's difficulty bound ("max" or "min")."""
        if self.difficulty is None:
            raise DataError("the policy filters rows by difficulty, but none was computed")
        kind, bound = row_filter
        d = self.difficulty[skill]
        return np.flatnonzero(d <= bound if kind == "max" else d >= bound)

    def gather(self, skill: str, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.ids[skill][idx], self.mask[skill][idx]


class SkillSampler:
    """Draws row indices per skill without repeats within an epoch; resumable by state_dict."""

    def __init__(self, sizes: dict[str, int], seed: int, rank: int = 0):
        self.sizes = dict(sizes)
        self.index = {s: i for i, s in enumerate(sizes)}
        self.seed, self.rank = seed, rank
        self.epoch = {s: 0 for s in sizes}
        self.cursor = {s: 0 for s in sizes}
        self.drawn = {s: 0 for s in sizes}
        # Sample-level pools: per skill [round, pass, cursor] within that round's pool.
        self.pool: dict[str, list[int]] = {}

    def _walk(self, k: int, perm_of, pos: list[int]) -> np.ndarray:
        """k indices from successive permutations perm_of(pass); pos = [pass, cursor], updated."""
        out = []
        while k > 0:
            perm = perm_of(pos[0])
            n = min(k, len(perm) - pos[1])
            out.append(perm[pos[1] : pos[1] + n])
            pos[1] += n
            k -= n
            if pos[1] == len(perm):
                pos[0], pos[1] = pos[0] + 1, 0
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def take(self, skill: str, k: int) -> np.ndarray:
        """k rows of a skill, continuing its current epoch (a new permutation per epoch)."""
        i, n = self.index[skill], self.sizes[skill]
        pos = [self.epoch[skill], self.cursor[skill]]
        taken = self._walk(
            k, lambda e: np.random.default_rng([self.seed, self.rank, i, e]).permutation(n), pos
        )
        self.epoch[skill], self.cursor[skill] = pos
        self.drawn[skill] += len(taken)
        return taken

    def take_pool(self, skill: str, k: int, eligible: np.ndarray, round_: int) -> np.ndarray:
        """k rows without replacement from a round's pool (a new permutation per pass)."""
        if k and not len(eligible):
            raise DataError(
                f"skill '{skill}': no rows on this worker pass the policy's difficulty filter"
            )
        rnd, *pos = self.pool.get(skill, [round_, 0, 0])
        if rnd != round_:
            pos = [0, 0]
        i = self.index[skill]

        def perm_of(p: int) -> np.ndarray:
            rng = np.random.default_rng([self.seed, self.rank, i, round_, p, 1])
            return eligible[rng.permutation(len(eligible))]

        taken = self._walk(k, perm_of, pos)
        self.pool[skill] = [round_, *pos]
        self.drawn[skill] += len(taken)
        return taken

    def state_dict(self) -> dict:
        return {
            "epoch": dict(self.epoch),
            "cursor": dict(self.cursor),
            "drawn": dict(self.drawn),
            "pool": dict(self.pool),
        }

    def load_state_dict(self, state: dict) -> None:
        self.epoch = dict(state["epoch"])
        self.cursor = dict(state["cursor"])
        self.drawn = dict(state["drawn"])
        self.pool = dict(state.get("pool", {}))
