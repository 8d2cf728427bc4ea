"""The prepare pipeline's per-batch work: validate rows and tokenize them, vectorised.

``tokenize_batch`` turns a batch of source rows into ragged token lists (``skill``,
``input_ids`` list<int32>, optional ``loss_mask`` list<uint8>): pre-tokenized rows are checked
with array operations over the batch's flat token buffer (no per-row Python); text rows go
through the tokenizer's batch call. ``batches`` runs it over a split, as a Ray Data pipeline
when Ray is up, else in this process (the same function on the same rows, so the same cache).
Bad rows raise DataError naming the file, row and skill.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from skillit_ray.data.source import SplitInfo
from skillit_ray.errors import DataError


@functools.lru_cache(maxsize=4)
def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise DataError(f"data.tokenizer '{path}': cannot load a local tokenizer: {exc}") from None


def _where(batch: pa.Table, i: int) -> str:
    path = batch.column("path")[i].as_py() if "path" in batch.column_names else "?"
    row = batch.column("row_id")[i].as_py() if "row_id" in batch.column_names else None
    return f"{path}" + (f" (row_id {row})" if row is not None else "")


def ragged(col) -> tuple[np.ndarray, np.ndarray]:
    """(flat values, offsets [n + 1]) of a list column, whatever its chunking or slicing."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    # a null list counts as empty (list_flatten skips it); its row is the caller's to judge
    lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False)
    flat = pc.list_flatten(arr).to_numpy(zero_copy_only=False)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return flat, offsets


def lists(offsets: np.ndarray, flat: np.ndarray) -> pa.Array:
    """A list column from offsets [n + 1] and flat values (a batch holds < 2**31 tokens)."""
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(flat))


def _text_ids(batch: pa.Table, tokenizer: str | None, eos_id: int | None) -> pa.Array:
    if tokenizer is None:
        raise DataError(f"{_where(batch, 0)}: rows carry 'text' but data.tokenizer is not set")
    tok = load_tokenizer(tokenizer)
    ids = tok(batch.column("text").to_pylist(), add_special_tokens=True)["input_ids"]
    arr = pa.array(ids, type=pa.list_(pa.int32()))
    if eos_id is None:
        return arr
    # Packing: every document ends with EOS, so packed neighbours stay apart.
    flat, off = ragged(arr)
    flat = np.insert(flat.astype(np.int32), off[1:], np.int32(eos_id))
    return lists(off + np.arange(len(off)), flat)


def tokenize_batch(
    batch: pa.Table,
    skills: list[str] | None,
    max_len: int,
    vocab_size: int,
    tokenizer: str | None,
    eos_id: int | None = None,
) -> pa.Table:
    """Validate and tokenize one batch; keep rows of ``skills`` (None: every skill).

    ``eos_id``: text documents get it appended (for packing). Rows with a loss mask must
    keep a loss token in their last ``max_len`` tokens (they are cut from the left)."""
    if skills is not None:
        batch = batch.filter(pc.is_in(batch.column("skill"), value_set=pa.array(skills)))
    if "input_ids" in batch.column_names:
        ids = batch.column("input_ids")
    else:
        ids = _text_ids(batch, tokenizer, eos_id)
    flat, off = ragged(ids)
    n = len(off) - 1
    lengths = np.diff(off)
    skill_of = batch.column("skill")

    def fail(mask: np.ndarray, what) -> None:
        i = int(np.flatnonzero(mask)[0])
        raise DataError(f"{_where(batch, i)}: skill '{skill_of[i].as_py()}': {what(i)}")

    if n and lengths.min() == 0:
        fail(lengths == 0, lambda i: "empty input_ids")
    if len(flat) and (flat.min() < 0 or flat.max() >= vocab_size):
        bad = (flat < 0) | (flat >= vocab_size)
        row = np.searchsorted(off, np.flatnonzero(bad)[0], side="right") - 1
        fail(
            np.arange(n) == row,
            lambda i: (
                f"token id {int(flat[np.flatnonzero(bad)[0]])} outside the vocabulary "
                f"[0, {vocab_size})"
            ),
        )
    out = {"skill": skill_of, "input_ids": lists(off, flat.astype(np.int32))}
    if "loss_mask" in batch.column_names:
        masks = batch.column("loss_mask")
        given = ~np.asarray(masks.is_null(), dtype=bool)  # a null mask: loss on every token
        mflat, moff = ragged(masks)
        mlen = np.diff(moff)
        if n and (given & (mlen != lengths)).any():
            fail(
                given & (mlen != lengths),
                lambda i: (
                    f"loss_mask has {mlen[i]} entries, input_ids has {lengths[i]}; "
                    "expected equal lengths"
                ),
            )
        if not given.all():  # the given rows' masks in place, ones for the rows without
            full = np.ones(len(flat), dtype=mflat.dtype)
            full[np.repeat(given, lengths)] = mflat
            mflat = full
        # Loss tokens inside each row's last max_len tokens (what survives the cut).
        csum = np.concatenate([[0], np.cumsum(mflat != 0)])
        kept = csum[off[1:]] - csum[np.maximum(off[:-1], off[1:] - max_len)]
        if n and (kept == 0).any():
            fail(
                kept == 0,
                lambda i: (
                    f"no token has loss after truncation to {max_len} tokens; raise data.max_length"
                ),
            )
        out["loss_mask"] = lists(off, (mflat != 0).astype(np.uint8))
    return pa.table(out)


def batches(
    info: SplitInfo,
    max_len: int,
    vocab_size: int,
    tokenizer: str | None,
    eos_id: int | None,
    block_bytes: int | None = None,
) -> Iterator[pa.Table]:
    """A split's tokenized batches in file order (the cache is the same whichever way ran)."""
    kwargs = {
        "skills": None,
        "max_len": max_len,
        "vocab_size": vocab_size,
        "tokenizer": tokenizer,
        "eos_id": eos_id,
    }
    import ray

    if not ray.is_initialized():
        yield from _local_batches(info, kwargs)
        return
    import ray.data

    ctx = ray.data.DataContext.get_current()
    saved = (ctx.execution_options.preserve_order, ctx.target_max_block_size)
    ctx.execution_options.preserve_order = True  # file order: a deterministic cache
    if block_bytes is not None:
        ctx.target_max_block_size = min(saved[1] or block_bytes, block_bytes)
    try:
        ds = _read(info).map_batches(
            tokenize_batch,
            batch_format="pyarrow",
            batch_size=None,  # whole blocks: Ray Data fuses the map into the read tasks
            fn_kwargs=kwargs,
        )
        yield from ds.iter_batches(batch_format="pyarrow", batch_size=None)
    finally:
        ctx.execution_options.preserve_order, ctx.target_max_block_size = saved


def _read(info: SplitInfo):
    import ray.data

    cols = [c for c in ("row_id", "skill", "input_ids", "loss_mask", "text") if c in info.columns]
    if info.format == "parquet":
        return ray.data.read_parquet(
            info.files, filesystem=info.filesystem, columns=cols, include_paths=True
        )
    # pyarrow's JSON reader (the default path) reads newline-delimited JSON and, unlike
    # lines=True, accepts a filesystem.
    return ray.data.read_json(info.files, filesystem=info.filesystem, include_paths=True)


def _local_batches(info: SplitInfo, kwargs: dict) -> Iterator[pa.Table]:
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    for f in info.files:
        if info.format == "parquet":
            table = pq.read_table(f, filesystem=info.filesystem)
        else:
            with info.filesystem.open_input_stream(f) as fh:
                table = pajson.read_json(fh)
        table = table.append_column("path", pa.array([f] * table.num_rows, pa.string()))
        yield tokenize_batch(table, **kwargs)
