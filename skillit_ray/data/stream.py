"""A rank's lazy view of the token cache: per-skill streams that read shards as they go.

Rows of a rank: of every shard of a skill, rows ``rank, rank + world, ...`` — disjoint across
ranks, together every row. A rank numbers its rows of a skill shard by shard (its "local"
rows). The sampler walks each skill through a seeded per-epoch permutation of its shards,
then of the rows inside each shard, with a cursor: no row repeats within a skill's epoch,
consecutive draws stay in one shard (a stream holds its current shard and prefetches the next),
and (epoch, cursor) per skill is all that resume needs.
"""

from __future__ import annotations

from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from skillit_ray.data.cache import TokenCache
from skillit_ray.errors import DataError


class RankShards:
    """One split's rows of this rank, per skill, read a shard at a time (kept in a per-skill
    LRU of ``open_shards``; None: every shard stays once read, i.e. held in memory)."""

    def __init__(
        self,
        cache: TokenCache,
        split: str,
        skills: tuple[str, ...],
        rank: int = 0,
        world: int = 1,
        open_shards: int | None = 2,
    ):
        self.cache, self.split, self.skills = cache, split, tuple(skills)
        self.rank, self.world, self.open_shards = rank, world, open_shards
        self.sizes: dict[str, np.ndarray] = {}  # per skill, this rank's rows of each shard
        self.offsets: dict[str, np.ndarray] = {}  # ... and where each starts, locally
        self.starts: dict[str, np.ndarray] = {}  # ... and globally (the skill's row number)
        for s in self.skills:
            rows = np.array([sh.rows for sh in cache.shards(split, s)], dtype=np.int64)
            self.sizes[s] = np.maximum(0, (rows - rank + world - 1) // world)
            self.offsets[s] = np.concatenate([[0], np.cumsum(self.sizes[s])])
            self.starts[s] = np.concatenate([[0], np.cumsum(rows)])
            if self.offsets[s][-1] == 0:
                raise DataError(f"{split} split: skill '{s}' has no rows on rank {rank}")
        self.open: dict[str, OrderedDict] = {s: OrderedDict() for s in self.skills}
        self.pending: dict[tuple[str, int], Future] = {}
        self.pool: ThreadPoolExecutor | None = None

    def rows(self, skill: str) -> int:
        return int(self.offsets[skill][-1])

    def held(self) -> RankShards:
        """Every shard read now and kept (the view then pickles with its rows)."""
        self.open_shards = None
        for s in self.skills:
            for i in range(len(self.sizes[s])):
                self.shard(s, i)
        return self

    def __getstate__(self) -> dict:
        return {**self.__dict__, "pending": {}, "pool": None}

    def _read(self, skill: str, i: int) -> tuple[np.ndarray, np.ndarray]:
        ids, mask = self.cache.read_shard(self.split, skill, i)
        take = slice(self.rank, None, self.world)
        return np.ascontiguousarray(ids[take]), np.ascontiguousarray(mask[take])

    def shard(self, skill: str, i: int) -> tuple[np.ndarray, np.ndarray]:
        """This rank's rows of shard ``i`` (read, or waited for if prefetching)."""
        lru = self.open[skill]
        if i in lru:
            lru.move_to_end(i)
            return lru[i]
        fut = self.pending.pop((skill, i), None)
        lru[i] = fut.result() if fut is not None else self._read(skill, i)
        while self.open_shards is not None and len(lru) > self.open_shards:
            lru.popitem(last=False)
        return lru[i]

    def prefetch(self, skill: str, i: int) -> None:
        """Start reading shard ``i`` in the background (one reader thread)."""
        if i in self.open[skill] or (skill, i) in self.pending:
            return
        if self.pool is None:
            self.pool = ThreadPoolExecutor(1, thread_name_prefix="skillit-prefetch")
        self.pending[(skill, i)] = self.pool.submit(self._read, skill, i)

    def locate(self, skill: str, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(shard, row within this rank's part of it) of local rows ``idx``."""
        shard = np.searchsorted(self.offsets[skill], idx, side="right") - 1
        return shard, idx - self.offsets[skill][shard]

    def gather(self, skill: str, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ids [n, L] int64, mask [n, L] uint8) of local rows ``idx``, in that order."""
        idx = np.asarray(idx, dtype=np.int64)
        shard, row = self.locate(skill, idx)
        L = self.cache.max_len
        ids, mask = np.empty((len(idx), L), np.int64), np.empty((len(idx), L), np.uint8)
        for i in dict.fromkeys(shard.tolist()):  # shards in first-use order
            sel = shard == i
            s_ids, s_mask = self.shard(skill, i)
            ids[sel], mask[sel] = s_ids[row[sel]], s_mask[row[sel]]
        return ids, mask

    def global_rows(self, skill: str, idx: np.ndarray) -> np.ndarray:
        """The skill's row numbers in the cache of local rows ``idx`` (row identities)."""
        shard, row = self.locate(skill, np.asarray(idx, dtype=np.int64))
        return self.starts[skill][shard] + self.rank + row * self.world

    def row_keys(self, skill: str, limit: int | None = None) -> np.ndarray:
        n = self.rows(skill) if limit is None else min(limit, self.rows(skill))
        return self.global_rows(skill, np.arange(n))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
        self.pending.clear()


class SkillSampler:
    """Local row indices per skill, shard-then-row permuted per epoch; resumable by
    ``state_dict``. ``layout``: per skill, the rank's rows in each shard."""

    def __init__(self, layout: dict[str, np.ndarray], seed: int, rank: int = 0):
        self.layout = {s: np.asarray(v, dtype=np.int64) for s, v in layout.items()}
        self.offsets = {s: np.concatenate([[0], np.cumsum(v)]) for s, v in self.layout.items()}
        self.index = {s: i for i, s in enumerate(layout)}
        self.seed, self.rank = seed, rank
        self.epoch = dict.fromkeys(layout, 0)
        self.cursor = dict.fromkeys(layout, 0)
        self.drawn = dict.fromkeys(layout, 0)
        # Sample-level pools: per skill [round, pass, cursor] within that round's pool.
        self.pool: dict[str, list[int]] = {}
        self._orders: dict[str, tuple] = {}
        self._rows: dict[str, tuple] = {}

    def size(self, skill: str) -> int:
        return int(self.offsets[skill][-1])

    def _order(self, skill: str, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(shard order, cumulative rows along it) of a skill's epoch."""
        got = self._orders.get(skill)
        if got is None or got[0] != epoch:
            rng = np.random.default_rng([self.seed, self.rank, self.index[skill], epoch])
            order = rng.permutation(len(self.layout[skill]))
            got = (epoch, order, np.concatenate([[0], np.cumsum(self.layout[skill][order])]))
            self._orders[skill] = got
        return got[1], got[2]

    def _row_perm(self, skill: str, epoch: int, shard: int) -> np.ndarray:
        got = self._rows.get(skill)
        if got is None or got[:2] != (epoch, shard):
            rng = np.random.default_rng([self.seed, self.rank, self.index[skill], epoch, shard, 2])
            got = (epoch, shard, rng.permutation(self.layout[skill][shard]))
            self._rows[skill] = got
        return got[2]

    def take(self, skill: str, k: int) -> np.ndarray:
        """k local rows of a skill, continuing its current epoch (new permutations per epoch)."""
        out, n = [], self.size(skill)
        e, c = self.epoch[skill], self.cursor[skill]
        while k > 0:
            order, cum = self._order(skill, e)
            p = int(np.searchsorted(cum, c, side="right") - 1)
            shard = int(order[p])
            at = c - int(cum[p])
            m = min(k, int(self.layout[skill][shard]) - at)
            out.append(self.offsets[skill][shard] + self._row_perm(skill, e, shard)[at : at + m])
            c, k = c + m, k - m
            if c == n:
                e, c = e + 1, 0
        self.epoch[skill], self.cursor[skill] = e, c
        taken = np.concatenate(out) if out else np.zeros(0, dtype=np.int64)
        self.drawn[skill] += len(taken)
        return taken

    def upcoming(self, skill: str) -> int:
        """The shard the next draw of a skill starts in."""
        order, cum = self._order(skill, self.epoch[skill])
        return int(order[np.searchsorted(cum, self.cursor[skill], side="right") - 1])

    def take_pool(self, skill: str, k: int, eligible: np.ndarray, round_: int) -> np.ndarray:
        """k rows without replacement from a round's pool (a new permutation per pass)."""
        if k and not len(eligible):
            raise DataError(
                f"skill '{skill}': no rows on this worker pass the policy's difficulty filter"
            )
        rnd, *pos = self.pool.get(skill, [round_, 0, 0])
        if rnd != round_:
            pos = [0, 0]
        i, out = self.index[skill], []
        while k > 0:
            rng = np.random.default_rng([self.seed, self.rank, i, round_, pos[0], 1])
            perm = eligible[rng.permutation(len(eligible))]
            m = min(k, len(perm) - pos[1])
            out.append(perm[pos[1] : pos[1] + m])
            pos[1] += m
            k -= m
            if pos[1] == len(perm):
                pos = [pos[0] + 1, 0]
        self.pool[skill] = [round_, *pos]
        taken = np.concatenate(out) if out else np.zeros(0, dtype=np.int64)
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


class SkillStreams:
    """A rank's train rows: the sampler's choices, read from the cache lazily.

    ``difficulty``: per skill, every cache row's difficulty (global row order), when the
    policy filters rows by it."""

    def __init__(
        self,
        cache: TokenCache,
        skills: tuple[str, ...],
        seed: int,
        rank: int = 0,
        world: int = 1,
        difficulty: dict | None = None,
    ):
        self.shards = RankShards(cache, "train", skills, rank, world, open_shards=2)
        self.skills = self.shards.skills
        self.sampler = SkillSampler(self.shards.sizes, seed, rank)
        self.difficulty = None
        if difficulty is not None:  # this rank's rows of it, in local order
            self.difficulty = {
                s: np.asarray(difficulty[s])[self.shards.global_rows(s, np.arange(self.rows(s)))]
                for s in self.skills
            }

    def rows(self, skill: str) -> int:
        return self.shards.rows(skill)

    def take(self, skill: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, mask) of the next k rows of a skill's stream."""
        out = self.shards.gather(skill, self.sampler.take(skill, k))
        self.shards.prefetch(skill, self.sampler.upcoming(skill))
        return out

    def eligible(self, skill: str, row_filter: tuple[str, float]) -> np.ndarray:
        """Local rows of a skill inside a policy's difficulty bound ("max" or "min")."""
        if self.difficulty is None:
            raise DataError("the policy filters rows by difficulty, but none was computed")
        kind, bound = row_filter
        d = self.difficulty[skill]
        return np.flatnonzero(d <= bound if kind == "max" else d >= bound)

    def take_pool(self, skill: str, k: int, row_filter, round_: int):
        rows = self.sampler.take_pool(skill, k, self.eligible(skill, row_filter), round_)
        return self.shards.gather(skill, rows)

    def row_keys(self, skill: str, limit: int | None = None) -> np.ndarray:
        return self.shards.row_keys(skill, limit)

    def state_dict(self) -> dict:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state)

    def close(self) -> None:
        self.shards.close()
