"""``data.memory_budget_mb`` and every size that follows from it, in one value."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 2**20


@dataclass(frozen=True)
class MemoryBudget:
    """A worker's memory for each split's token arrays; ``mb=None``: no budget (everything in
    memory, Ray Data's own block size)."""

    mb: float | None = None

    @property
    def limited(self) -> bool:
        return self.mb is not None

    @property
    def bytes(self) -> int | None:
        """A store spills its token arrays to files once it holds more than this."""
        return None if self.mb is None else int(self.mb * MIB)

    @property
    def block_bytes(self) -> int | None:
        """Ray Data's block cap: a worker holds a block, the batch it is copying and the
        store's in-memory part at once, so a block is an eighth of the budget (>= 64 KiB)."""
        return None if self.mb is None else max(self.bytes // 8, 2**16)

    @property
    def drain_batch_size(self) -> int:
        """Rows per batch a worker drains; fewer in flight under a budget."""
        return 4096 if self.mb is None else 1024

    @property
    def drain_prefetch(self) -> int:
        """Batches prefetched while draining: none under a budget."""
        return 1 if self.mb is None else 0

    @property
    def release_every_mb(self) -> float | None:
        """Hand object-store pages back once this many MiB of them are mapped (memory.py);
        None: once, at the end of the drain."""
        return None if self.mb is None else self.mb / 4
