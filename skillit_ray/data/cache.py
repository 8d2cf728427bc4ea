"""The token cache: both splits tokenized once into fixed-length shards per skill.

Layout under the cache root (a local folder or any pyarrow filesystem URI):

- ``<split>/<k>/<i:05d>.tok``: shard ``i`` of the split's ``k``-th skill (sorted names; a
  number, since skill names may hold '/'): token ids ``[rows, L]`` (uint16, or int32 for a
  vocabulary over 65536) followed by the loss mask ``[rows, L]`` uint8, row-major.
- ``index.json``: per split and skill, its shards in order, each ``{file, rows, crc32}``.
- ``manifest.json``: the fingerprint (and the parts it hashes: source files with sizes and
  mtimes, tokenizer files, ``max_length``, vocabulary, packing, format), dtype, token counts,
  and the index's checksum. Written last: a folder without it is no cache.

Rows keep the sources' file order per skill. Text documents are packed (joined with EOS, cut
into ``L``-token rows); other rows are padded, and a row longer than ``L`` loses its first
tokens, counted in the manifest as dropped and said when the cache is built.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import zlib
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs

from skillit_ray.errors import DataError

FORMAT = "skillit-token-cache/1"
SHARD_BYTES = 4 * 2**20  # a shard is read whole: this and the skills set a stream's memory


@dataclass(frozen=True)
class Shard:
    file: str  #: relative to the cache root
    rows: int
    crc32: int


@dataclass(kw_only=True)
class TokenCounts:
    """One split's tokens: read from the sources (with EOS when packed), kept in the cache,
    dropped (cut from too-long padded rows; 0 when packed), and padding added."""

    rows: int = 0
    read: int = 0
    kept: int = 0
    dropped: int = 0
    padding: int = 0


def filesystem(root: str) -> tuple[pafs.FileSystem, str]:
    try:
        if "://" in root:
            return pafs.FileSystem.from_uri(root)
        return pafs.LocalFileSystem(), os.path.abspath(root)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError(f"token cache '{root}': cannot open: {exc}") from None


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


class TokenCache:
    """An opened cache: manifest and index read, shards read back checked against them."""

    def __init__(self, root: str, manifest: dict, index: dict):
        self.root = root
        self.fs, self.base = filesystem(root)
        self.manifest, self.index = manifest, index
        self.max_len = int(manifest["max_length"])
        self.dtype = np.dtype(manifest["dtype"])

    @classmethod
    def open(cls, root: str) -> TokenCache | None:
        """The cache at ``root``, or None when there is none (no manifest)."""
        fs, base = filesystem(root)
        manifest = _read_json(fs, f"{base}/manifest.json", missing_ok=True)
        if manifest is None:
            return None
        index = _read_json(fs, f"{base}/index.json")
        if manifest.get("index_sha") != _sha(index):
            raise DataError(f"token cache {root}: index.json does not match manifest.json")
        return cls(root, manifest, index)

    @property
    def fingerprint(self) -> str:
        return self.manifest["fingerprint"]

    def skills(self, split: str) -> list[str]:
        return list(self.index[split])

    def shards(self, split: str, skill: str) -> list[Shard]:
        try:
            return [Shard(**s) for s in self.index[split][skill]]
        except KeyError:
            raise DataError(
                f"token cache {self.root}: no {split} rows of skill '{skill}'"
            ) from None

    def rows(self, split: str, skill: str) -> int:
        return sum(s.rows for s in self.shards(split, skill))

    def counts(self, split: str) -> TokenCounts:
        return TokenCounts(**self.manifest["tokens"][split])

    def _bytes(self, shard: Shard) -> int:
        return shard.rows * self.max_len * (self.dtype.itemsize + 1)

    def check_files(self) -> None:
        """Every shard is there with its full size (cheap: no data read)."""
        shards = [
            sh for split in self.index for sk in self.index[split] for sh in self.shards(split, sk)
        ]
        infos = self.fs.get_file_info([f"{self.base}/{s.file}" for s in shards])
        for shard, info in zip(shards, infos, strict=True):
            if info.type == pafs.FileType.NotFound:
                raise DataError(f"token cache shard {info.path} is missing")
            if info.size != self._bytes(shard):
                raise DataError(
                    f"token cache shard {info.path} has {info.size} bytes, the index says "
                    f"{self._bytes(shard)} (truncated?); delete the cache to rebuild it"
                )

    def read_shard(self, split: str, skill: str, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Shard ``i`` of a skill: (ids [rows, L], mask [rows, L]), size and checksum checked."""
        shard = self.shards(split, skill)[i]
        path, want = f"{self.base}/{shard.file}", self._bytes(shard)
        try:
            with self.fs.open_input_file(path) as fh:
                raw = fh.read()
        except (FileNotFoundError, pa.ArrowException, OSError) as exc:
            raise DataError(f"token cache shard {path} is missing or unreadable ({exc})") from None
        if len(raw) != want:
            raise DataError(
                f"token cache shard {path} has {len(raw)} bytes, the index says {want} "
                "(truncated?); delete the cache to rebuild it"
            )
        if zlib.crc32(raw) != shard.crc32:
            raise DataError(
                f"token cache shard {path}: checksum does not match the index (corrupted); "
                "delete the cache to rebuild it"
            )
        n, L = shard.rows, self.max_len
        split_at = n * L * self.dtype.itemsize
        ids = np.frombuffer(raw, self.dtype, count=n * L).reshape(n, L)
        mask = np.frombuffer(raw, np.uint8, offset=split_at).reshape(n, L)
        return ids, mask


def _read_json(fs, path: str, missing_ok: bool = False):
    try:
        with fs.open_input_stream(path) as fh:
            return json.loads(fh.read())
    except FileNotFoundError:
        if missing_ok:
            return None
        raise DataError(f"token cache file {path} is missing") from None
    except (pa.ArrowException, OSError, ValueError) as exc:
        if missing_ok and "not found" in str(exc).lower():
            return None
        raise DataError(f"token cache file {path} is unreadable ({exc})") from None


def _write(fs, path: str, data: bytes) -> None:
    with fs.open_output_stream(path) as fh:
        fh.write(data)


class _SkillWriter:
    """One skill's rows, cut into shards of ``shard_rows`` as they come."""

    def __init__(self, fs, base: str, rel: str, L: int, dtype, pad_id: int, shard_rows: int):
        self.fs, self.base, self.rel = fs, base, rel
        self.L, self.dtype, self.pad_id, self.shard_rows = L, dtype, pad_id, shard_rows
        self.parts: list[tuple[np.ndarray, np.ndarray]] = []
        self.held = 0
        self.carry = np.zeros(0, dtype)  # packing: tokens waiting for a full row
        self.shards: list[Shard] = []
        fs.create_dir(f"{base}/{rel}", recursive=True)

    def padded(self, flat, off, mflat, counts: TokenCounts) -> None:
        """Rows padded on the right; a longer row keeps its last L tokens (counted dropped)."""
        L = self.L
        start = np.maximum(off[:-1], off[1:] - L)
        length = off[1:] - start
        j = np.arange(L)
        valid = j[None, :] < length[:, None]
        src = (start[:, None] + j[None, :])[valid]
        ids = np.full((len(length), L), self.pad_id, self.dtype)
        ids[valid] = flat[src]
        mask = np.zeros((len(length), L), np.uint8)
        mask[valid] = 1 if mflat is None else mflat[src]
        counts.dropped += int(off[-1] - off[0] - length.sum())
        counts.kept += int(length.sum())
        self._add(ids, mask, counts)

    def packed(self, flat, counts: TokenCounts) -> None:
        buf = np.concatenate([self.carry, flat.astype(self.dtype)])
        n = len(buf) // self.L
        self.carry = buf[n * self.L :]
        rows = buf[: n * self.L].reshape(n, self.L)
        counts.kept += rows.size
        self._add(rows, np.ones(rows.shape, np.uint8), counts)

    def _add(self, ids, mask, counts: TokenCounts) -> None:
        counts.rows += len(ids)
        self.parts.append((ids, mask))
        self.held += len(ids)
        while self.held >= self.shard_rows:
            self._flush(self.shard_rows)

    def _flush(self, n: int) -> None:
        ids = np.concatenate([p[0] for p in self.parts])
        mask = np.concatenate([p[1] for p in self.parts])
        self.parts = [(ids[n:], mask[n:])] if len(ids) > n else []
        self.held = len(ids) - n
        raw = np.ascontiguousarray(ids[:n]).tobytes() + np.ascontiguousarray(mask[:n]).tobytes()
        rel = f"{self.rel}/{len(self.shards):05d}.tok"
        _write(self.fs, f"{self.base}/{rel}", raw)
        self.shards.append(Shard(rel, n, zlib.crc32(raw)))

    def finish(self, counts: TokenCounts) -> list[Shard]:
        if len(self.carry):  # the packed stream's tail: one row, padded
            row = np.full((1, self.L), self.pad_id, self.dtype)
            row[0, : len(self.carry)] = self.carry
            mask = np.zeros((1, self.L), np.uint8)
            mask[0, : len(self.carry)] = 1
            counts.kept += len(self.carry)
            self.carry = self.carry[:0]
            self._add(row, mask, counts)
        if self.held:
            self._flush(self.held)
        return self.shards


def _split(fs, base, split, skills, tables, L, dtype, pad_id, shard_rows, packed):
    """Write one split's shards; returns (its index, its token counts)."""
    from skillit_ray.data.pipeline import ragged

    writers = {
        s: _SkillWriter(fs, base, f"{split}/{k}", L, dtype, pad_id, shard_rows)
        for k, s in enumerate(sorted(skills))
    }
    counts = TokenCounts()
    for table in tables:
        names = table.column("skill").to_numpy(zero_copy_only=False).astype(str)
        for skill in np.unique(names):
            part = table.filter(pa.array(names == skill))
            flat, off = ragged(part.column("input_ids"))
            counts.read += len(flat)
            if packed:
                writers[skill].packed(flat, counts)
            else:
                has_mask = "loss_mask" in part.column_names
                mflat = ragged(part.column("loss_mask"))[0] if has_mask else None
                writers[skill].padded(flat, off, mflat, counts)
    index = {s: [asdict(sh) for sh in w.finish(counts)] for s, w in writers.items()}
    counts.padding = counts.rows * L - counts.kept
    return index, counts


def _tree_sha(path: str) -> str | None:
    """A local folder's (a tokenizer's) files, hashed; None for a URI."""
    if "://" in path or not os.path.isdir(path):
        return None
    h = hashlib.sha256()
    for dirpath, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        for f in sorted(files):
            h.update(f.encode())
            with open(os.path.join(dirpath, f), "rb") as fh:
                h.update(fh.read())
    return h.hexdigest()[:16]


def fingerprint_parts(data, packing: bool) -> dict:
    """What the cache's bytes depend on; any change makes it stale."""

    def files(info) -> list:
        return [[i.path, i.size, i.mtime_ns] for i in info.filesystem.get_file_info(info.files)]

    return {
        "format": FORMAT,
        "train": files(data.train),
        "eval": files(data.eval),
        "data_format": [data.train.format, data.eval.format],
        "tokenizer": data.tokenizer and [data.tokenizer, _tree_sha(data.tokenizer)],
        "max_length": data.max_len,
        "vocab_size": data.vocab_size,
        "pad_id": data.pad_id,
        "packing": bool(packing),
    }


def location(cfg, data) -> str:
    """``data.token_cache``, else a folder under the cache directory named by the sources and
    the settings (a change in the sources' contents then finds the stale cache there)."""
    if cfg.data.token_cache:
        return cfg.data.token_cache
    from skillit_ray.data.generators import default_cache_dir

    return os.path.join(cfg.data.cache_dir or default_cache_dir(), "tokens", _key(cfg, data))


def _key(cfg, data) -> str:
    return _sha(
        {
            "files": data.train.files + data.eval.files,
            "max_length": data.max_len,
            "packing": cfg.data.packing,
            "tokenizer": data.tokenizer,
        }
    )


def shared_location(cfg, data) -> str:
    """Where the cache goes on a cluster of several nodes: ``data.token_cache``, else
    ``<run.storage_path>/tokens/<key>``. Every worker reads the cache, and the default folder
    (cache_dir) is on the driver's own disk, which other nodes do not see."""
    if cfg.data.token_cache or not cfg.run.storage_path:
        return location(cfg, data)
    storage = cfg.run.storage_path
    if "://" not in storage:
        return os.path.join(os.path.abspath(storage), "tokens", _key(cfg, data))
    return f"{storage.rstrip('/')}/tokens/{_key(cfg, data)}"


def ensure(data, echo: bool = True) -> TokenCache:
    """The run's cache at ``data.cache_root``: reused when its fingerprint matches, else
    (re)built with one line saying why."""
    root = data.cache_root
    parts = fingerprint_parts(data, data.packing)
    cache = TokenCache.open(root)
    if cache is not None and cache.fingerprint == _sha(parts):
        cache.check_files()
        return cache
    if cache is not None:
        old = cache.manifest.get("parts", {})
        changed = [k for k in parts if parts[k] != old.get(k)] or ["format"]
        print(
            f"skillit-ray: token cache {root} is stale ({', '.join(changed)} changed); "
            "rebuilding it",
            file=sys.stderr,
            flush=True,
        )
    return build(data, root, parts, block_bytes=data.block_bytes, echo=echo)


def build(
    data,
    root: str,
    parts: dict,
    shard_bytes: int = SHARD_BYTES,
    block_bytes: int | None = None,
    echo: bool = False,
) -> TokenCache:
    """Tokenize both splits into a cache at ``root`` (Ray Data when Ray is up)."""
    from skillit_ray.data.pipeline import batches, load_tokenizer

    t0 = time.time()
    fs, base = filesystem(root)
    if fs.get_file_info(base).type == pafs.FileType.Directory:
        fs.delete_dir_contents(base)  # the manifest first of all: no half-built cache passes
    fs.create_dir(base, recursive=True)
    dtype = np.dtype(np.uint16 if data.vocab_size <= 2**16 else np.int32)
    L = data.max_len
    shard_rows = max(1, shard_bytes // (L * (dtype.itemsize + 1)))
    index, tokens, packing = {}, {}, {}
    for split, info in (("train", data.train), ("eval", data.eval)):
        packed = (
            parts["packing"] and info.token_column == "text" and "loss_mask" not in info.columns
        )
        eos = None
        if packed:
            tok = load_tokenizer(data.tokenizer)
            eos = tok.eos_token_id if tok.eos_token_id is not None else data.pad_id
        tables = batches(info, L, data.vocab_size, data.tokenizer, eos, block_bytes)
        index[split], counts = _split(
            fs, base, split, info.rows_per_skill, tables, L, dtype, data.pad_id, shard_rows, packed
        )
        tokens[split], packing[split] = asdict(counts), packed
        if counts.dropped:  # said, never silent
            print(
                f"skillit-ray: token cache: {counts.dropped} {split} tokens cut from rows "
                f"longer than max_length={L} (a row keeps its last {L} tokens); raise "
                "data.max_length"
                + (" or turn on data.packing" if info.token_column == "text" else ""),
                file=sys.stderr,
                flush=True,
            )
    manifest = {
        "format": FORMAT,
        "fingerprint": _sha(parts),
        "parts": parts,
        "max_length": L,
        "dtype": dtype.name,
        "vocab_size": data.vocab_size,
        "pad_id": data.pad_id,
        "packing": packing,
        "shard_rows": shard_rows,
        "tokens": tokens,
        "index_sha": _sha(index),
        "build_s": time.time() - t0,
    }
    _write(fs, f"{base}/index.json", json.dumps(index).encode())
    _write(fs, f"{base}/manifest.json", json.dumps(manifest, indent=1).encode())
    if echo:
        t = tokens["train"]
        print(
            f"token cache: {t['rows']} train rows, {t['kept']} tokens in "
            f"{manifest['build_s']:.1f}s -> {root}",
            flush=True,
        )
    return TokenCache(root, manifest, index)


def data_fingerprint(data) -> str:
    """The fingerprint the data's cache has (or will have once built): cheap, no data read."""
    return _sha(fingerprint_parts(data, data.packing))


def token_summary(root: str, stats) -> dict:
    """summary.json's ``tokens``: the train split's tokens read, kept in the cache, dropped
    (0 when packed) and padding, and the loss tokens this run's steps trained on."""
    cache = TokenCache.open(root)
    out = asdict(cache.counts("train")) if cache is not None else {}
    out["trained_on"] = stats.tokens_trained if stats is not None else None
    return out
