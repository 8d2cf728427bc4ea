"""The Ray Data streaming pipeline: read shards, validate rows, tokenize, pad, tag skills.

Each split becomes a Dataset of fixed-length rows with columns ``skill``, ``input_ids`` (int32,
[L]), ``loss_mask`` (uint8, [L]) and ``key`` (a content hash that makes the worker-side store
order independent of block order). Bad rows raise DataError naming the file and row.
"""

from __future__ import annotations

import functools

import numpy as np
import pyarrow as pa

from skillit_ray.data.source import SplitInfo
from skillit_ray.errors import DataError

_HASH_MUL = np.uint64(0x100000001B3)


@functools.lru_cache(maxsize=4)
def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise DataError(f"data.tokenizer '{path}': cannot load a local tokenizer: {exc}") from None


def content_key(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A 64-bit FNV-style hash of each row (tokens and mask), vectorised over rows."""
    h = np.full(ids.shape[0], 0xCBF29CE484222325, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(ids.shape[1]):
            h = (h ^ ids[:, j].astype(np.uint64)) * _HASH_MUL
            h = (h ^ mask[:, j].astype(np.uint64)) * _HASH_MUL
    return h.view(np.int64)


def _where(batch: pa.Table, i: int) -> str:
    path = batch.column("path")[i].as_py() if "path" in batch.column_names else "?"
    row = batch.column("row_id")[i].as_py() if "row_id" in batch.column_names else None
    return f"{path}" + (f" (row_id {row})" if row is not None else "")


def _token_lists(batch: pa.Table, tokenizer: str | None) -> tuple[list, list]:
    if "input_ids" in batch.column_names:
        ids = batch.column("input_ids").to_pylist()
        masks = (
            batch.column("loss_mask").to_pylist()
            if "loss_mask" in batch.column_names
            else [None] * len(ids)
        )
        return ids, masks
    if tokenizer is None:
        raise DataError(f"{_where(batch, 0)}: rows carry 'text' but data.tokenizer is not set")
    tok = load_tokenizer(tokenizer)
    ids = tok(batch.column("text").to_pylist(), add_special_tokens=True)["input_ids"]
    return ids, [None] * len(ids)


def prepare_batch(
    batch: pa.Table,
    skills: list[str],
    max_len: int,
    vocab_size: int,
    pad_id: int,
    tokenizer: str | None,
) -> dict[str, np.ndarray]:
    """Validate, tokenize and pad one batch; drop rows of skills this run does not use."""
    keep = set(skills)
    all_ids, all_masks = _token_lists(batch, tokenizer)
    skill_col = batch.column("skill").to_pylist()
    out_ids, out_mask, out_skill = [], [], []
    for i, (skill, ids, mask) in enumerate(zip(skill_col, all_ids, all_masks, strict=True)):
        if skill not in keep:
            continue
        if not ids:
            raise DataError(f"{_where(batch, i)}: skill '{skill}': empty input_ids")
        if mask is None:
            mask = [1] * len(ids)
        elif len(mask) != len(ids):
            raise DataError(
                f"{_where(batch, i)}: skill '{skill}': loss_mask has {len(mask)} entries, "
                f"input_ids has {len(ids)}; expected equal lengths"
            )
        lo, hi = min(ids), max(ids)
        if lo < 0 or hi >= vocab_size:
            raise DataError(
                f"{_where(batch, i)}: skill '{skill}': token id {hi if hi >= vocab_size else lo} "
                f"outside the vocabulary [0, {vocab_size})"
            )
        # Truncate from the left so the answer (at the end) survives.
        ids, mask = ids[-max_len:], mask[-max_len:]
        if not any(mask):
            raise DataError(
                f"{_where(batch, i)}: skill '{skill}': no token has loss after truncation to "
                f"{max_len} tokens; raise data.max_length"
            )
        out_ids.append(ids)
        out_mask.append(mask)
        out_skill.append(skill)
    n = len(out_ids)
    ids_arr = np.full((n, max_len), pad_id, dtype=np.int32)
    mask_arr = np.zeros((n, max_len), dtype=np.uint8)
    for r, (ids, mask) in enumerate(zip(out_ids, out_mask, strict=True)):
        ids_arr[r, : len(ids)] = ids
        mask_arr[r, : len(mask)] = mask
    return {
        "skill": np.asarray(out_skill, dtype=object),
        "input_ids": ids_arr,
        "loss_mask": mask_arr,
        "key": content_key(ids_arr, mask_arr),
    }


def build_dataset(
    info: SplitInfo,
    skills: list[str],
    max_len: int,
    vocab_size: int,
    pad_id: int,
    tokenizer: str | None,
    max_block_bytes: int | None = None,
):
    """The streaming Dataset for one split (read -> validate/tokenize/pad).

    ``max_block_bytes`` caps its blocks (Ray Data's default is 128 MiB): a worker maps and
    converts a whole block at a time, so a block bigger than its memory budget would break it.
    """
    import ray.data

    ctx = ray.data.DataContext.get_current()
    saved = ctx.target_max_block_size
    if max_block_bytes is not None:
        ctx.target_max_block_size = min(saved or max_block_bytes, max_block_bytes)
    try:  # a Dataset keeps the context current when it is created
        return _read_and_prepare(info, skills, max_len, vocab_size, pad_id, tokenizer)
    finally:
        ctx.target_max_block_size = saved


def _read_and_prepare(info, skills, max_len, vocab_size, pad_id, tokenizer):
    import ray.data

    cols = [c for c in ("row_id", "skill", "input_ids", "loss_mask", "text") if c in info.columns]
    if info.format == "parquet":
        ds = ray.data.read_parquet(
            info.files, filesystem=info.filesystem, columns=cols, include_paths=True
        )
    else:
        # pyarrow's JSON reader (the default path) reads newline-delimited JSON and, unlike
        # lines=True, accepts a filesystem.
        ds = ray.data.read_json(info.files, filesystem=info.filesystem, include_paths=True)
    return ds.map_batches(
        prepare_batch,
        batch_format="pyarrow",
        batch_size=None,  # whole blocks: lets Ray Data fuse the map into the read tasks
        fn_kwargs={
            "skills": list(skills),
            "max_len": max_len,
            "vocab_size": vocab_size,
            "pad_id": pad_id,
            "tokenizer": tokenizer,
        },
    )
