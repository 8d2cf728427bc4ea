"""Sources: a real multi-source text corpus gathered from the Python environment itself.

The CPU-scale stand-in for the paper's RedPajama continual pre-training (reference section 4.4),
where a skill is a data source. Nothing here was written by this project and nothing is
downloaded: the text is what the environment the project is installed in already holds.

Skills (one per kind of source):

- ``sources/stdlib``: Python source of the standard library (``sysconfig`` ``stdlib``);
- ``sources/packages``: Python source of the installed packages (site-packages);
- ``sources/headers``: C/C++ headers, Python's own and those packages ship (numpy, torch, ...);
- ``sources/licenses``: licence texts (LICENSE*, LICENCE*, COPYING*, NOTICE*, dist-info/licenses);
- ``sources/stubs``: type stubs (``*.pyi``);
- ``sources/docs``: Markdown/reST/plain-text documentation in packages and the packages' own
  long descriptions (the ``METADATA`` of each ``*.dist-info``, usually the project's README).

The build is deterministic for a given environment: a sorted walk, a seeded order per skill,
caps per skill and per document, dedup by a hash of the whitespace-normalised content, a
train/val split by document, a byte-level BPE tokenizer trained on the train split only and
saved in Hugging Face format under ``tokenizer/``. The natural mixture is, by default, each
source's share of the environment's bytes (before caps and dedup), as RedPajama's natural
mixture is each source's share of the corpus.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import platform
import site
import sys
import sysconfig
import time
import tokenize
from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa

from skillit_ray.data.generators.common import atomic_folder, fingerprint, write_shards
from skillit_ray.errors import DataError

VERSION = 1
EOS = "<|endoftext|>"
KINDS = {
    "stdlib": "Python source of the standard library",
    "packages": "Python source of the installed packages (site-packages)",
    "headers": "C/C++ headers (Python's include dir and those packages ship)",
    "licenses": "licence texts (LICENSE*, COPYING*, NOTICE*, *.dist-info/licenses/*)",
    "stubs": "type stubs (*.pyi)",
    "docs": "Markdown/reST/text docs in packages and each distribution's METADATA description",
}
HEADER_EXTS = {".h", ".hh", ".hpp", ".hxx", ".cuh"}
LICENSE_PREFIXES = ("LICENSE", "LICENCE", "COPYING", "NOTICE")
# A licence-like name with one of these is code, not a licence text (e.g. a license.py module);
# any other (LICENSE, LICENSE.txt, LICENSE.MIT, LICENSE.APACHE2) is a licence.
CODE_EXTS = {".py", ".pyi", ".pyc", ".pyx", ".pxd", ".so", ".js", ".json", ".html"} | HEADER_EXTS
# Plain-text files under these folders are test fixtures and data tables, not documentation.
DATA_DIRS = {"test", "tests", "testing", "testdata", "test_data", "data", "sample_data"}
# Never descended into: bytecode, compiled extensions, VCS metadata.
SKIP_DIRS = {"__pycache__", ".git", ".hg", "lib-dynload"}
# This project's own files, should it be installed (not editable) into site-packages.
OWN_PACKAGES = ("skillit_ray", "skillit_policies")
OWN_DIST = "skillit_ray-"


@dataclass
class SourcesParams:
    kinds: list = field(
        default_factory=lambda: list(KINDS),
        metadata={"doc": f"Kinds of source, one skill each; a subset of {list(KINDS)}."},
    )
    max_docs_per_skill: int = field(
        default=4000, metadata={"doc": "At most this many documents per skill (both splits)."}
    )
    max_bytes_per_skill: int = field(
        default=4 * 2**20,
        metadata={"doc": "Stop adding documents to a skill once its UTF-8 bytes reach this."},
    )
    max_bytes_per_doc: int = field(
        default=16384,
        metadata={
            "doc": "Longer files keep their first this many bytes, cut at a line end; a file "
            "with no line end in that span (minified, binary-like) is skipped."
        },
    )
    min_chars: int = field(
        default=64,
        metadata={"doc": "Documents shorter than this (stripped) are skipped (empty __init__.py)."},
    )
    val_docs_per_skill: int = field(
        default=16,
        metadata={"doc": "Documents held out per skill for validation (whole documents)."},
    )
    vocab_size: int = field(
        default=4096,
        metadata={
            "doc": "BPE vocabulary incl. 256 bytes and <|endoftext|>: small, so the embedding "
            "and output layers of a CPU-sized model stay as small as its body."
        },
    )
    chunk_tokens: int = field(
        default=0,
        metadata={
            "doc": "Split each document into rows of this many tokens (set it to data.max_length "
            "while rows are truncated/padded rather than packed); 0: one row per document."
        },
    )
    natural: str = field(
        default="environment",
        metadata={
            "doc": "Natural mixture: 'environment' = each source's share of the environment's "
            "bytes (all eligible files, before caps and dedup); 'corpus' = its share of the "
            "train split's tokens."
        },
    )
    seed: int = field(default=0, metadata={"doc": "Seed of the document order and the split."})


# ---------------------------------------------------------------------------------------------
# The environment: where its text lies, what it holds, and which files are this project's own.


def _roots() -> list[tuple[str, str]]:
    """(label, folder) of every place text is gathered from, in a fixed order."""
    paths = sysconfig.get_paths()
    roots = [("stdlib", paths["stdlib"]), ("include", paths["include"])]
    sites = [paths["purelib"], paths["platlib"], *site.getsitepackages()]
    seen = {os.path.realpath(paths["stdlib"]), os.path.realpath(paths["include"])}
    n = 0
    for folder in sites:
        real = os.path.realpath(folder)
        if real in seen or not os.path.isdir(real):
            continue
        seen.add(real)
        roots.append(("site-packages" + (f".{n}" if n else ""), folder))
        n += 1
    return [(label, os.path.realpath(f)) for label, f in roots if os.path.isdir(f)]


def _own_dirs() -> set[str]:
    """Folders holding this project's own code: its packages and, in a source checkout, the
    repository (so a root inside it, e.g. a .venv, is the only part of it that is walked)."""
    own = set()
    for name in OWN_PACKAGES:
        spec = importlib.util.find_spec(name)
        for loc in (spec.submodule_search_locations or []) if spec else []:
            own.add(os.path.realpath(loc))
    pkg = importlib.util.find_spec("skillit_ray")
    if pkg and pkg.origin:
        repo = os.path.dirname(os.path.dirname(os.path.realpath(pkg.origin)))
        if os.path.exists(os.path.join(repo, "pyproject.toml")):
            own.add(repo)
    return own


def environment() -> dict:
    """What the corpus depends on: the interpreter and every distribution in the site folders
    (their ``*.dist-info``/``*.egg-info`` folder names carry name and version).

    Cheap (one listing per site folder, no file walk), so the cache checks it on every run. A
    file edited in place without a version change is not noticed: delete the cache folder then.
    """
    dists = set()
    for label, folder in _roots():
        if label.startswith("site-packages"):
            for name in os.listdir(folder):
                if name.endswith((".dist-info", ".egg-info")) and not _is_own_entry(name):
                    dists.add(name.rsplit(".", 1)[0])
    return {
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "platform": f"{sys.platform}-{platform.machine()}",
        "distributions": sorted(dists),
    }


def environment_key() -> dict:
    """The part of the cache key that is not the settings (used by generators.cached)."""
    env = environment()
    return {"environment": hashlib.sha256(json.dumps(env).encode()).hexdigest()[:16]}


# ---------------------------------------------------------------------------------------------
# Walking and classifying files.


def classify(root: str, parts: tuple[str, ...]) -> str | None:
    """The kind of source of the file at ``parts`` (its path below a root labelled ``root``),
    or None when it is not gathered."""
    name = parts[-1]
    upper = name.upper()
    ext = os.path.splitext(name)[1].lower()
    folders = parts[:-1]
    licence_name = upper.startswith(LICENSE_PREFIXES) or ".LICENSE" in upper
    if any(f.endswith((".dist-info", ".egg-info")) for f in folders):
        if "licenses" in folders or licence_name:
            return "licenses"
        return "docs" if name in ("METADATA", "PKG-INFO") else None
    if licence_name and ext not in CODE_EXTS:
        return "licenses"
    if ext == ".pyi":
        return "stubs"
    if ext in HEADER_EXTS:
        return "headers"
    if ext == ".py":
        return "stdlib" if root == "stdlib" else "packages"
    if ext in (".md", ".rst"):
        return "docs"
    if ext == ".txt" and name != "CMakeLists.txt" and not DATA_DIRS & set(folders):
        return "docs"
    return None


def _walk(folder: str, prune: set[str], own: set[str]):
    """Regular files below ``folder`` in sorted order: (path, size, parts below folder).

    Symbolic links are not followed (no loops, no escaping the root); folders named in
    ``prune`` (relative) and this project's own folders are not entered.
    """
    stack = [(folder, ())]
    while stack:
        here, rel = stack.pop()
        try:
            entries = sorted(os.scandir(here), key=lambda e: e.name)
        except OSError:
            continue  # unreadable folder: the environment has what it has
        subdirs = []
        for e in entries:
            parts = (*rel, e.name)
            if e.is_symlink():
                continue
            if e.is_dir():
                if e.name in SKIP_DIRS or "/".join(parts) in prune or e.path in own:
                    continue
                subdirs.append((e.path, parts))
            elif e.is_file():
                yield e.path, e.stat().st_size, parts
        stack.extend(reversed(subdirs))  # depth first, in name order


def candidates(kinds: list[str]) -> tuple[dict[str, list[tuple[str, str, int]]], dict]:
    """Per kind, the eligible files (source path, absolute path, size) in walk order; and the
    roots walked."""
    roots = _roots()
    own = _own_dirs()
    found: dict[str, list[tuple[str, str, int]]] = {k: [] for k in kinds}
    for label, folder in roots:
        # The stdlib folder may hold the site folder (a system Python): that is 'packages'.
        prune = {"site-packages", "dist-packages"} if label == "stdlib" else set()
        own_here = {o for o in own if not folder.startswith(o + os.sep) and o != folder}
        for path, size, parts in _walk(folder, prune, own_here):
            if label.startswith("site-packages") and _is_own_entry(parts[0]):
                continue
            kind = classify(label, parts)
            if kind in found:
                found[kind].append(("/".join((label, *parts)), path, size))
    return found, dict(roots)


def _is_own_entry(top: str) -> bool:
    """A top-level site-packages entry that belongs to this project (an installed copy, its
    dist-info, or the editable-install hooks, which name the checkout's paths)."""
    lower = top.lower()
    return top in OWN_PACKAGES or lower.startswith((OWN_DIST, "__editable__"))


# ---------------------------------------------------------------------------------------------
# Reading one document.


def read_text(path: str, max_bytes: int, min_chars: int) -> str | None:
    """The file as normalised text (UTF-8, ``\\n`` line ends), at most ``max_bytes`` of it cut
    at a line end; None when it is binary, undecodable, too short, or one huge line."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(max_bytes + 1)
    except OSError:
        return None
    if b"\0" in raw:
        return None  # binary
    if len(raw) > max_bytes:
        # A newline byte never occurs inside a multi-byte UTF-8 character: a safe cut.
        cut = raw.rfind(b"\n", 0, max_bytes)
        if cut <= 0:
            return None
        raw = raw[: cut + 1]
    encoding = "utf-8-sig"
    if path.endswith((".py", ".pyi")):
        try:  # PEP 263: a coding cookie names the encoding (a few stdlib tests use latin-1)
            encoding, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
        except SyntaxError:
            return None
    try:
        text = raw.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return None
    text = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    if len(text.strip()) < min_chars:
        return None
    return text


def content_hash(text: str) -> str:
    """Equal for documents that differ only in whitespace (licences repeat with re-wrapping)."""
    return hashlib.sha256(" ".join(text.split()).encode()).hexdigest()[:16]


def select(
    kind: str, files: list[tuple[str, str, int]], p: SourcesParams, seen: set[str]
) -> list[dict]:
    """Documents of one kind: files in a seeded order, read until a cap is reached, skipping
    unreadable files and any document already taken (by content, across kinds)."""
    order = np.random.default_rng([p.seed, list(KINDS).index(kind)]).permutation(len(files))
    docs, total = [], 0
    for i in order:
        if len(docs) >= p.max_docs_per_skill or total >= p.max_bytes_per_skill:
            break
        source, path, _ = files[i]
        text = read_text(path, p.max_bytes_per_doc, p.min_chars)
        if text is None:
            continue
        key = content_hash(text)
        if key in seen:
            continue
        seen.add(key)
        docs.append({"source_path": source, "doc_id": key, "text": text})
        total += len(text.encode())
    return docs


# ---------------------------------------------------------------------------------------------
# Tokenizer.


def train_tokenizer(texts: list[str], vocab_size: int, out: str):
    """A byte-level BPE (GPT-2's pre-tokenizer, decoder and post-processor) trained on
    ``texts``, saved in Hugging Face format into ``out``; returns the fast tokenizer.

    One special token, ``<|endoftext|>``, at id 0: the end-of-document, padding and (as in
    GPT-2) beginning token. Id 0 is what the model presets use for bos/eos/pad. Byte-level, so
    no text is ever unknown. The tokenizer adds no special tokens when encoding: packing (or
    the caller) puts ``<|endoftext|>`` between documents.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    # No clean-up on decode: it would drop spaces before punctuation, and code needs them.
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS,
        bos_token=EOS,
        pad_token=EOS,
        clean_up_tokenization_spaces=False,
    )
    fast.save_pretrained(out)
    return fast


def chunk(text: str, offsets: list[tuple[int, int]], size: int) -> list[str]:
    """``text`` cut before every ``size``-th token (by the tokens' character offsets), so each
    piece tokenizes to about ``size`` tokens (re-tokenized on its own, a piece can come out a
    token or two longer: a BPE merge across the cut; ~0.04% of the recipe's rows)."""
    cuts = sorted({offsets[i][0] for i in range(size, len(offsets), size)} - {0})
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


# ---------------------------------------------------------------------------------------------
# The build.


def _check(p: SourcesParams) -> None:
    if not isinstance(p.kinds, list):
        raise ValueError(f"sources: kinds must be a list such as [stdlib, docs], got {p.kinds!r}")
    unknown = [k for k in p.kinds if k not in KINDS]
    if unknown or not p.kinds or len(set(p.kinds)) != len(p.kinds):
        raise ValueError(f"sources: kinds must be distinct names from {list(KINDS)}, got {p.kinds}")
    for name in ("max_docs_per_skill", "max_bytes_per_skill", "max_bytes_per_doc"):
        if getattr(p, name) < 1:
            raise ValueError(f"sources: {name} must be >= 1, got {getattr(p, name)}")
    if p.val_docs_per_skill < 1 or p.val_docs_per_skill >= p.max_docs_per_skill:
        raise ValueError(
            f"sources: val_docs_per_skill must be in 1..max_docs_per_skill-1, "
            f"got {p.val_docs_per_skill} (max_docs_per_skill={p.max_docs_per_skill})"
        )
    if p.vocab_size < 258:
        raise ValueError(
            f"sources: vocab_size must be >= 258 (256 bytes, EOS, a merge), got {p.vocab_size}"
        )
    if p.chunk_tokens < 0:
        raise ValueError(f"sources: chunk_tokens must be >= 0, got {p.chunk_tokens}")
    if p.natural not in ("environment", "corpus"):
        raise ValueError(f"sources: natural must be 'environment' or 'corpus', got {p.natural!r}")


def skill(kind: str) -> str:
    return f"sources/{kind}"


def _rows(docs: dict[str, list[dict]], fast, chunk_tokens: int) -> tuple[pa.Table, dict]:
    """One split's rows (a row per document, or per chunk of one) and its counts per skill."""
    backend = fast.backend_tokenizer
    flat = [(kind, d) for kind, ds in docs.items() for d in ds]
    texts = [d["text"] for _, d in flat]
    encoded = backend.encode_batch(texts, add_special_tokens=False)
    cols: dict[str, list] = {"skill": [], "text": [], "source_path": [], "doc_id": [], "chunk": []}
    for (kind, d), enc in zip(flat, encoded):
        pieces = chunk(d["text"], enc.offsets, chunk_tokens) if chunk_tokens else [d["text"]]
        for j, piece in enumerate(pieces):
            cols["skill"].append(skill(kind))
            cols["text"].append(piece)
            cols["source_path"].append(d["source_path"])
            cols["doc_id"].append(d["doc_id"])
            cols["chunk"].append(j)
    # Tokens as the training pipeline counts them: each row's text encoded on its own (a cut
    # can move a BPE merge, so a chunk's count is re-measured rather than assumed).
    if chunk_tokens:
        encoded = backend.encode_batch(cols["text"], add_special_tokens=False)
    lengths = [len(e.ids) for e in encoded]
    counts = {}
    for kind, ds in docs.items():
        s = skill(kind)
        counts[s] = {
            "docs": len(ds),
            "rows": sum(1 for x in cols["skill"] if x == s),
            "bytes": sum(len(d["text"].encode()) for d in ds),
            "tokens": sum(n for x, n in zip(cols["skill"], lengths) if x == s),
        }
    table = pa.table(
        {
            "row_id": pa.array(np.arange(len(cols["text"])), pa.int64()),
            "skill": pa.array(cols["skill"], pa.string()),
            "text": pa.array(cols["text"], pa.string()),
            "source_path": pa.array(cols["source_path"], pa.string()),
            "doc_id": pa.array(cols["doc_id"], pa.string()),
            "chunk": pa.array(cols["chunk"], pa.int32()),
            "n_tokens": pa.array(lengths, pa.int32()),
        }
    )
    return table, counts


def _split(kind: str, docs: list[dict], p: SourcesParams, eligible: int) -> tuple[list, list]:
    """(train, val) documents of one kind: a seeded choice of whole documents held out."""
    if len(docs) <= p.val_docs_per_skill:
        raise DataError(
            f"sources: skill '{skill(kind)}' found {len(docs)} usable documents in this "
            f"environment ({eligible} eligible files); it needs more than "
            f"val_docs_per_skill={p.val_docs_per_skill}: lower val_docs_per_skill or leave "
            f"'{kind}' out of kinds"
        )
    held = set(
        np.random.default_rng([p.seed, list(KINDS).index(kind), 1])
        .permutation(len(docs))[: p.val_docs_per_skill]
        .tolist()
    )
    train = [d for i, d in enumerate(docs) if i not in held]
    val = [d for i, d in enumerate(docs) if i in held]
    return train, val


class _Clock:
    """Wall and CPU seconds per phase of the build (the CPU figure is the honest one on a
    shared machine; it counts every thread, e.g. the tokenizers trainer's)."""

    def __init__(self) -> None:
        self.last = (time.perf_counter(), time.process_time())
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def lap(self, phase: str) -> None:
        now = (time.perf_counter(), time.process_time())
        self.wall[phase] = now[0] - self.last[0]
        self.cpu[phase] = now[1] - self.last[1]
        self.last = now


def _manifest(p: SourcesParams, found: dict, roots: dict, counts: dict, fast) -> dict:
    skills = [skill(k) for k in p.kinds]
    env_bytes = {skill(k): sum(size for _, _, size in found[k]) for k in p.kinds}
    if p.natural == "environment":
        weights = env_bytes
        basis = "bytes of every eligible file in the environment, before caps and dedup"
    else:
        weights = {s: c["tokens"] for s, c in counts["train"].items()}
        basis = "tokens of the train split"
    total = sum(weights.values())
    manifest = {
        "generator": "sources",
        "version": VERSION,
        "params": asdict(p),
        "fingerprint": fingerprint("sources", p, VERSION, environment_key()),
        "skills": skills,
        "kinds": {skill(k): KINDS[k] for k in p.kinds},
        "natural_proportions": {s: weights[s] / total for s in skills},
        "natural_basis": basis,
        "environment_bytes": env_bytes,
        "environment_files": {skill(k): len(found[k]) for k in p.kinds},
        "train_rows": {s: c["rows"] for s, c in counts["train"].items()},
        "val_rows": {s: c["rows"] for s, c in counts["val"].items()},
        "counts": counts,
        "tokenizer": "tokenizer",
        "vocab_size": len(fast),
        "pad_id": fast.pad_token_id,
        "eos_id": fast.eos_token_id,
        "environment": environment(),
        "roots": roots,
    }
    if p.chunk_tokens:
        manifest["max_length"] = p.chunk_tokens  # rows fit it; data.max_length still wins
    return manifest


def generate(out: str, p: SourcesParams) -> dict:
    _check(p)
    clock = _Clock()
    found, roots = candidates(p.kinds)
    clock.lap("walk")
    seen: set[str] = set()
    docs: dict[str, dict[str, list[dict]]] = {"train": {}, "val": {}}
    for kind in p.kinds:
        taken = select(kind, found[kind], p, seen)
        docs["train"][kind], docs["val"][kind] = _split(kind, taken, p, len(found[kind]))
    clock.lap("read")
    with atomic_folder(out) as tmp:
        texts = [d["text"] for ds in docs["train"].values() for d in ds]
        fast = train_tokenizer(texts, p.vocab_size, os.path.join(tmp, "tokenizer"))
        clock.lap("tokenizer_training")
        tables, counts = {}, {}
        for split in ("train", "val"):
            tables[split], counts[split] = _rows(docs[split], fast, p.chunk_tokens)
        clock.lap("tokenize")
        # ~1k rows a shard: rows are up to max_bytes_per_doc each, so shards stay a few MiB.
        for i, split in enumerate(("train", "val")):
            write_shards(os.path.join(tmp, split), tables[split], p.seed + i, 1024)
        manifest = _manifest(p, found, roots, counts, fast)
        with open(os.path.join(tmp, "manifest.json"), "w") as fh:
            json.dump(manifest, fh, indent=1)
        clock.lap("write")
        n_tokens = sum(c["tokens"] for split in counts.values() for c in split.values())
        n_bytes = sum(c["bytes"] for split in counts.values() for c in split.values())
        # Chunking encodes twice (documents for the cuts, then rows for exact counts).
        encoded = n_tokens * (2 if p.chunk_tokens else 1)
        build = {
            "wall_s": clock.wall,
            "cpu_s": clock.cpu,
            "tokens": n_tokens,
            "bytes": n_bytes,
            "bytes_per_token": n_bytes / max(n_tokens, 1),
            "tokenize_tokens_per_cpu_s": encoded / max(clock.cpu["tokenize"], 1e-9),
        }
        # Timings vary run to run: kept out of the manifest so that it stays deterministic.
        with open(os.path.join(tmp, "build.json"), "w") as fh:
            json.dump(build, fh, indent=1)
    return manifest
