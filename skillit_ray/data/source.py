"""Find and inspect skill-tagged shards (Parquet/JSONL, local or any pyarrow filesystem URI).

Inspection runs on the driver before any Ray work and reads only what it must (the ``skill``
column, the schema), so a bad file is named before training starts.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.json as pajson
import pyarrow.parquet as pq

from skillit_ray.errors import DataError

EXTENSIONS = {".parquet": "parquet", ".jsonl": "jsonl", ".json": "jsonl"}


@dataclass
class SplitInfo:
    """What inspection learned about one split (train or eval)."""

    name: str
    files: list[str]
    format: str
    filesystem: pafs.FileSystem
    rows_per_skill: dict[str, int]
    columns: list[str]
    max_id: int = -1
    max_len: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def token_column(self) -> str:
        return "input_ids" if "input_ids" in self.columns else "text"


def resolve(path: str, fmt: str, split: str) -> tuple[pafs.FileSystem, list[str], str]:
    """List the data files under ``path`` (a file, a folder, or a URI)."""
    try:
        if "://" in path:
            fs, root = pafs.FileSystem.from_uri(path)
        else:
            fs, root = pafs.LocalFileSystem(), os.path.abspath(path)
        info = fs.get_file_info(root)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError(f"data.{split} '{path}': cannot open: {exc}") from None
    if info.type == pafs.FileType.NotFound:
        raise DataError(f"data.{split} '{path}' does not exist")
    if info.type == pafs.FileType.File:
        files = [root]
    else:
        sel = pafs.FileSelector(root, recursive=True)
        files = sorted(
            f.path
            for f in fs.get_file_info(sel)
            if f.type == pafs.FileType.File
            and os.path.splitext(f.path)[1] in EXTENSIONS
            and not os.path.basename(f.path).startswith((".", "_"))
        )
    if not files:
        raise DataError(f"data.{split} '{path}': no .parquet or .jsonl files found")
    kinds = {EXTENSIONS.get(os.path.splitext(f)[1]) for f in files}
    if fmt == "auto":
        if len(kinds) != 1 or None in kinds:
            raise DataError(f"data.{split} '{path}': mixed or unknown file types; set data.format")
        fmt = kinds.pop()
    return fs, files, fmt


def _read_file(fs: pafs.FileSystem, path: str, fmt: str, columns: list[str] | None) -> pa.Table:
    try:
        if fmt == "parquet":
            return pq.read_table(path, filesystem=fs, columns=columns)
        with fs.open_input_stream(path) as fh:
            table = pajson.read_json(fh)
        return table.select(columns) if columns else table
    except (pa.ArrowException, OSError) as exc:
        line = _bad_json_line(fs, path) if fmt == "jsonl" else None
        if line is not None:
            raise DataError(f"{path}: line {line[0]}: not valid JSON ({line[1]})") from None
        raise DataError(f"{path}: unreadable {fmt} file: {exc}") from None


def _bad_json_line(fs: pafs.FileSystem, path: str) -> tuple[int, str] | None:
    """The first line (1-based) of a JSONL file that is not a JSON object, and why. pyarrow's
    own message counts rows from 0 within a block, which is not a line a user can find."""
    import json

    try:
        with fs.open_input_stream(path) as fh:
            text = fh.read().decode("utf-8", errors="replace")
    except (pa.ArrowException, OSError):
        return None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            return n, str(exc)
        if not isinstance(value, dict):
            return n, f"expected an object, got {type(value).__name__}"
    return None


def _schema(fs: pafs.FileSystem, path: str, fmt: str) -> tuple[list[str], pa.Table | None]:
    if fmt == "parquet":
        try:
            return pq.read_schema(path, filesystem=fs).names, None
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{path}: unreadable parquet file: {exc}") from None
    table = _read_file(fs, path, fmt, None)
    return table.column_names, table


def _check_columns(path: str, names: list[str]) -> None:
    if "skill" not in names:
        raise DataError(f"{path}: missing the 'skill' column (columns: {names})")
    if "input_ids" not in names and "text" not in names:
        raise DataError(f"{path}: needs an 'input_ids' or a 'text' column (columns: {names})")


def where_row(path: str, fmt: str, i: int) -> str:
    """Row ``i`` (0-based) of a file, said as its reader sees it: a JSONL file's 1-based line,
    a Parquet file's 0-based row index."""
    return f"{path}: line {i + 1}" if fmt == "jsonl" else f"{path}: row {i}"


def _skill_at(table: pa.Table, i: int) -> str:
    return f", skill '{table.column('skill')[i].as_py()}'" if "skill" in table.column_names else ""


def _scan_tokens(table: pa.Table, path: str, info: SplitInfo) -> None:
    ids = table.column("input_ids")
    lengths = pc.list_value_length(ids)
    if lengths.null_count or pc.min(lengths).as_py() == 0:
        bad = pc.index(pc.fill_null(lengths, 0), 0).as_py()
        raise DataError(
            f"{where_row(path, info.format, bad)}{_skill_at(table, bad)}: empty or null input_ids"
        )
    if "loss_mask" in table.column_names:  # caught here, before any worker starts
        # a null mask is a row without one (loss on every token): only given masks must fit
        masks = pc.list_value_length(table.column("loss_mask"))
        differ = pc.fill_null(pc.not_equal(masks, lengths), False)
        if pc.any(differ).as_py():
            i = pc.index(differ, True).as_py()
            raise DataError(
                f"{where_row(path, info.format, i)}{_skill_at(table, i)}: loss_mask has "
                f"{masks[i].as_py()} entries, input_ids has {lengths[i].as_py()}; expected "
                "equal lengths"
            )
    info.max_len = max(info.max_len, pc.max(lengths).as_py())
    flat = pc.list_flatten(ids)
    lo = pc.min(flat).as_py()
    if lo < 0:
        raise DataError(f"{path}: input_ids contain a negative token id ({lo})")
    info.max_id = max(info.max_id, pc.max(flat).as_py())


def inspect(path: str, fmt: str, split: str, scan_tokens: bool) -> SplitInfo:
    """Validate every file's schema and count rows per skill (and token range if asked)."""
    fs, files, fmt = resolve(path, fmt, split)
    counts: Counter = Counter()
    info = SplitInfo(split, files, fmt, fs, {}, [])
    columns: list[str] | None = None
    for f in files:
        names, table = _schema(fs, f, fmt)
        _check_columns(f, names)
        if columns is None:
            columns = names
        elif ("input_ids" in names) != ("input_ids" in columns):
            raise DataError(f"{f}: has columns {names}, but {files[0]} has {columns}")
        want = ["skill"] + (["input_ids"] if scan_tokens and "input_ids" in names else [])
        want += ["loss_mask"] if "input_ids" in want and "loss_mask" in names else []
        table = _read_file(fs, f, fmt, want) if table is None else table.select(want)
        skills = table.column("skill")
        if skills.null_count:
            row = pc.index(pc.is_null(skills), True).as_py()
            raise DataError(f"{where_row(f, fmt, row)}: no skill (null 'skill')")
        if not pa.types.is_string(skills.type) and not pa.types.is_large_string(skills.type):
            raise DataError(f"{f}: 'skill' column must hold strings, found {skills.type}")
        for entry in pc.value_counts(skills).to_pylist():
            counts[entry["values"]] += entry["counts"]
        if "input_ids" in want:
            _scan_tokens(table, f, info)
    info.rows_per_skill = dict(sorted(counts.items()))
    info.columns = columns or []
    return info
