"""This worker's memory as Linux reports it, and handing object-store pages back after a read.

Ray Data gives a worker its blocks zero-copy from the shared-memory object store. Every page of
a block the worker reads stays mapped in it, and counted in its RSS (``RssShmem``), after the
block is freed: draining N MiB of blocks left about N MiB there, bounded by the object store's
size, not by ``data.memory_budget_mb``. ``release_object_store_pages`` drops those page-table
entries with ``madvise(MADV_DONTNEED)``. On a shared mapping that loses nothing: the pages stay
in the object store (which accounts for them), and a later read of a live object faults them
back in. ``trim_heap`` returns the heap a drain freed to the OS (glibc keeps it otherwise), so
training's own peak does not land on top of it, and ``arrow_on_system_heap`` puts Arrow's
allocations on that heap too. Without /proc the page release does nothing, and without glibc
neither does the trim.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

_MADV_DONTNEED = 4


def rss_mb(field: str) -> float | None:
    """A ``/proc/self/status`` size field (VmRSS, VmHWM, RssShmem, ...) in MiB; None if absent."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _object_store_mappings() -> list[tuple[int, int]]:
    """(start, end) of this process's shared mappings of Ray's plasma file(s)."""
    spans = []
    try:
        with open("/proc/self/maps") as fh:
            for line in fh:
                parts = line.split()
                # perms "rw-s": shared. Ray names the store's file plasmaXXXXXX (mkstemp).
                if len(parts) >= 6 and parts[1][3] == "s":
                    if os.path.basename(parts[5]).startswith("plasma"):
                        start, end = (int(x, 16) for x in parts[0].split("-"))
                        spans.append((start, end))
    except OSError:
        pass
    return spans


@functools.lru_cache(maxsize=1)
def _libc():
    name = ctypes.util.find_library("c")
    return None if name is None else ctypes.CDLL(name, use_errno=True)


@functools.lru_cache(maxsize=1)
def _madvise():
    fn = getattr(_libc(), "madvise", None)
    if fn is not None:
        fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        fn.restype = ctypes.c_int
    return fn


def arrow_on_system_heap() -> None:
    """Arrow allocates from the C heap, not its default mimalloc pool, which keeps the segments
    a drain freed: 16 MiB after draining 128 MiB of blocks, where the C heap kept none."""
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())


def trim_heap() -> bool:
    """glibc's ``malloc_trim(0)``: free heap pages go back to the OS; False where there is none."""
    fn = getattr(_libc(), "malloc_trim", None)
    return fn is not None and bool(fn(0))


def release_object_store_pages() -> int:
    """Unmap from this process's RSS the object-store pages it has read; returns spans done."""
    madvise = _madvise()
    if madvise is None:
        return 0
    done = 0
    for start, end in _object_store_mappings():
        done += madvise(start, end - start, _MADV_DONTNEED) == 0
    return done
