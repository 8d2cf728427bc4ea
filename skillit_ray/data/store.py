"""The per-worker skill store and its sampler.

A worker drains its shard of a split once into per-skill contiguous arrays, ordered by content
key so the order does not depend on how Ray Data scheduled blocks. The sampler walks each skill
through a seeded per-epoch permutation with a cursor: no row repeats within a skill's epoch, and
(epoch, cursor) per skill is all that resume needs.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable

import numpy as np

from skillit_ray.errors import DataError

COLUMNS = ("input_ids", "loss_mask", "difficulty")


class SkillStore:
    """Per skill: ``ids`` [n, L] int64, ``mask`` [n, L] uint8, optional ``difficulty`` [n].

    With a memory budget, the token arrays of a store larger than it live in files read row
    by row (``Spill``, ``RowFile``) and ``order`` maps the content-key order onto the file
    order."""

    def __init__(
        self,
        skills: tuple[str, ...],
        ids: dict,
        mask: dict,
        difficulty: dict | None,
        keys: dict | None = None,
        order: dict | None = None,
        spill=None,
    ):
        self.skills = tuple(skills)
        self.ids = ids
        self.mask = mask
        self.difficulty = difficulty
        # Per skill, the sorted content keys (row identities): [n] in memory, [n, 1] spilled.
        self.keys = keys or {}
        self.order = order  # per skill, row i of the sorted store is file row order[i]
        self.spill = spill  # keeps the spill files alive as long as the store

    @classmethod
    def from_batches(
        cls,
        batches: Iterable[dict],
        skills: tuple[str, ...],
        split: str,
        budget_bytes: int | None = None,
    ) -> SkillStore:
        parts: dict[str, list] = {s: [] for s in skills}
        spill, held = None, 0
        for b in batches:
            names = np.asarray(b["skill"]).astype(str)
            for s in np.unique(names):
                if s in parts:
                    sel = names == s
                    part = {c: b[c][sel] for c in ("key", *COLUMNS) if c in b}
                    parts[s].append(part)
                    held += part["input_ids"].nbytes + part["loss_mask"].nbytes
            if budget_bytes is not None and held > budget_bytes:
                spill = spill or Spill(split)
                spill.write(parts)  # token arrays go to disk; keys and difficulty stay
                held = 0
        for s in skills:
            if not parts[s] and not (spill and spill.rows.get(s)):
                raise DataError(f"{split} split: skill '{s}' has no rows on this worker")
        if spill is not None:
            spill.write(parts)
            return spill.store(skills)
        cols: dict[str, dict] = {c: {} for c in ("key", *COLUMNS)}
        for s in skills:
            order = np.argsort(np.concatenate([p["key"] for p in parts[s]]), kind="stable")
            for c in ("key", *COLUMNS):
                if c in parts[s][0]:
                    cols[c][s] = np.concatenate([p[c] for p in parts[s]])[order]
        ids = {s: a.astype(np.int64) for s, a in cols["input_ids"].items()}
        return cls(skills, ids, cols["loss_mask"], cols["difficulty"] or None, cols["key"])

    def rows(self, skill: str) -> int:
        return self.ids[skill].shape[0]

    def row_keys(self, skill: str, limit: int | None = None) -> np.ndarray:
        """A skill's sorted content keys, the first ``limit`` of them (all by default)."""
        return np.asarray(self.keys[skill][:limit]).ravel()

    def eligible(self, skill: str, row_filter: tuple[str, float]) -> np.ndarray:
        """Rows of a skill inside a policy's difficulty bound ("max" or "min")."""
        if self.difficulty is None:
            raise DataError("the policy filters rows by difficulty, but none was computed")
        kind, bound = row_filter
        d = self.difficulty[skill]
        return np.flatnonzero(d <= bound if kind == "max" else d >= bound)

    def gather(self, skill: str, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.order is not None:  # spilled: rows are read from the page cache
            rows = self.order[skill][idx]
            return self.ids[skill][rows].astype(np.int64), self.mask[skill][rows]
        return self.ids[skill][idx], self.mask[skill][idx]


class RowFile:
    """Fixed-size rows of one [n, L] array in a file, read row by row with ``pread``.

    A memory map would count every page training touches as this process's RSS, growing to
    the whole file; pages read with ``pread`` stay in the kernel's page cache instead, which
    the OS can drop under pressure. One syscall per row: ~1 µs against a step's milliseconds.
    """

    def __init__(self, path: str, dtype, n: int, length: int):
        self.path, self.dtype, self.shape = path, np.dtype(dtype), (n, length)
        self.row_bytes = length * self.dtype.itemsize
        self.fd = os.open(path, os.O_RDONLY)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        rows = np.arange(self.shape[0])[rows] if isinstance(rows, slice) else np.asarray(rows)
        out = np.empty((len(rows), self.shape[1]), self.dtype)
        raw = out.view(np.uint8).reshape(len(rows), self.row_bytes)
        for i, r in enumerate(rows.tolist()):
            raw[i] = np.frombuffer(os.pread(self.fd, self.row_bytes, r * self.row_bytes), np.uint8)
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        a = self[:]
        return a if dtype is None else a.astype(dtype)

    def __del__(self) -> None:
        fd, self.fd = getattr(self, "fd", None), None
        if fd is not None:
            os.close(fd)


class Spill:
    """Per-skill token files that grow batch by batch; read row by row once the drain ends.

    During the drain the keys and difficulties (a few bytes per row) stay in memory; the [n, L]
    arrays do not."""

    def __init__(self, split: str):
        self.dir = tempfile.TemporaryDirectory(prefix=f"skillit-store-{split}-")
        self.rows: dict[str, int] = {}
        self.meta: dict[str, tuple] = {}  # skill -> (L, ids dtype, mask dtype)
        self.small: dict[str, dict[str, list]] = {}
        self.index: dict[str, int] = {}  # file names by number: skill names may hold '/'

    def _path(self, skill: str, col: str) -> str:
        k = self.index.setdefault(skill, len(self.index))
        return os.path.join(self.dir.name, f"{k}-{col}.bin")

    def write(self, parts: dict[str, list]) -> None:
        for s, ps in parts.items():
            for p in ps:
                ids, mask = p["input_ids"], p["loss_mask"]
                self.meta.setdefault(s, (ids.shape[1], ids.dtype, mask.dtype))
                for col, a in (("ids", ids), ("mask", mask)):
                    with open(self._path(s, col), "ab") as fh:
                        fh.write(np.ascontiguousarray(a).tobytes())
                small = self.small.setdefault(s, {})
                for c in ("key", "difficulty"):
                    if c in p:
                        small.setdefault(c, []).append(p[c])
                self.rows[s] = self.rows.get(s, 0) + len(ids)
            ps.clear()

    def store(self, skills: tuple[str, ...]) -> SkillStore:
        """The spilled SkillStore. What stays in memory is 4 bytes per row (``order``, int32
        below 2**31 rows) plus difficulties if any: the sorted keys go to a file too."""
        ids, mask, keys, order, diff = {}, {}, {}, {}, {}
        for s in skills:
            n, (length, id_t, mask_t) = self.rows[s], self.meta[s]
            ids[s] = RowFile(self._path(s, "ids"), id_t, n, length)
            mask[s] = RowFile(self._path(s, "mask"), mask_t, n, length)
            small = self.small.pop(s)
            raw = np.concatenate(small.pop("key"))
            o = np.argsort(raw, kind="stable")
            with open(self._path(s, "key"), "wb") as fh:
                fh.write(raw[o].tobytes())
            keys[s] = RowFile(self._path(s, "key"), raw.dtype, n, 1)
            if "difficulty" in small:
                diff[s] = np.concatenate(small.pop("difficulty"))[o]
            order[s] = o.astype(np.int32) if n < 2**31 else o
        return SkillStore(skills, ids, mask, diff or None, keys, order, self)


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
