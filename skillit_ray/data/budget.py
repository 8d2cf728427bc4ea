"""``data.memory_budget_mb`` and every size that follows from it, in one value."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 2**20


@dataclass(frozen=True)
class MemoryBudget:
    """A worker's memory for the eval split's rows (train rows always stream from the token
    cache); ``mb=None``: no budget (eval held in memory, Ray Data's own block size)."""

    mb: float | None = None

    @property
    def limited(self) -> bool:
        return self.mb is not None

    @property
    def bytes(self) -> int | None:
        return None if self.mb is None else int(self.mb * MIB)

    @property
    def block_bytes(self) -> int | None:
        """Ray Data's block cap while the cache is built: a block, the batch being copied and
        the shards being written are held at once, so a block is an eighth (>= 64 KiB)."""
        return None if self.mb is None else max(self.bytes // 8, 2**16)

    @property
    def eval_open_shards(self) -> int | None:
        """Eval shards a worker keeps per skill: one (each evaluation streams them) under a
        budget, else all (held in memory once read)."""
        return None if self.mb is None else 1
