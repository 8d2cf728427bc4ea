"""The sources corpus: real text gathered from this Python environment (no Ray).

Every build here is capped small (a handful of short documents per skill and a tiny vocabulary)
so it takes a few seconds; the walk over the environment itself is the real one.
"""

import json
import math
import os

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from transformers import AutoTokenizer

from skillit_ray import cli, config
from skillit_ray.data import generators
from skillit_ray.data.generators import sources
from skillit_ray.data.prepare import prepare
from skillit_ray.errors import ConfigError, DataError
from skillit_ray.model import build_model
from skillit_ray.train.evaluate import evaluate

SMALL = {
    "max_docs_per_skill": 10,
    "val_docs_per_skill": 2,
    "max_bytes_per_doc": 2048,
    "vocab_size": 384,
    "chunk_tokens": 48,
}
SUFFIXES = {
    "stdlib": (".py",),
    "packages": (".py",),
    "headers": tuple(sources.HEADER_EXTS),
    "stubs": (".pyi",),
    "docs": (".md", ".rst", ".txt", "METADATA", "PKG-INFO"),
}
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("sources") / "a")
    return out, generators.generate("sources", out, SMALL)


def _table(folder, split):
    return pq.read_table(os.path.join(folder, split))


def _files(folder):
    return sorted(
        os.path.relpath(os.path.join(d, f), folder)
        for d, _, fs in os.walk(folder)
        for f in fs
        if f != "build.json"  # timings: the one file that differs between builds
    )


def test_two_builds_are_identical(corpus, tmp_path):
    a, manifest = corpus
    b = str(tmp_path / "b")
    assert generators.generate("sources", b, SMALL) == manifest
    assert _files(a) == _files(b)
    for rel in _files(a):
        with open(os.path.join(a, rel), "rb") as fa, open(os.path.join(b, rel), "rb") as fb:
            assert fa.read() == fb.read(), rel  # shards, tokenizer files, manifest


def test_one_skill_per_kind_and_rows_of_their_kind(corpus):
    folder, manifest = corpus
    assert manifest["skills"] == [f"sources/{k}" for k in sources.KINDS]
    rows = _table(folder, "train").to_pylist() + _table(folder, "val").to_pylist()
    assert {r["skill"] for r in rows} == set(manifest["skills"])
    for r in rows:
        kind = r["skill"].split("/")[1]
        path = r["source_path"]
        if kind == "licenses":
            name = path.rsplit("/", 1)[-1].upper()
            assert (
                "/licenses/" in path
                or name.startswith(sources.LICENSE_PREFIXES)
                or (".LICENSE" in name)
            ), path
        else:
            assert path.endswith(SUFFIXES[kind]), path
            # licence texts are one kind wherever they lie, the standard library's own
            # LICENSE.txt included (sampled or not depending on the installed packages)
            assert path.startswith("stdlib/") == (kind == "stdlib"), path
    w = manifest["natural_proportions"]
    assert math.isclose(sum(w.values()), 1.0) and all(v > 0 for v in w.values())
    # the environment's own mixture: Python package source outweighs the licences
    assert w["sources/packages"] > w["sources/licenses"]


def test_no_document_in_both_splits_and_no_duplicates(corpus):
    folder, _ = corpus
    train, val = _table(folder, "train"), _table(folder, "val")
    for col in ("doc_id", "source_path"):
        assert not set(train[col].to_pylist()) & set(val[col].to_pylist()), col
    # dedup by content: each document (doc_id = hash of its text) comes from one file
    docs = {}
    for r in train.to_pylist() + val.to_pylist():
        assert docs.setdefault(r["doc_id"], r["source_path"]) == r["source_path"]


def test_chunks_reassemble_their_documents(corpus):
    folder, manifest = corpus
    rows = sorted(_table(folder, "train").to_pylist(), key=lambda r: (r["doc_id"], r["chunk"]))
    by_doc: dict[str, list] = {}
    for r in rows:
        by_doc.setdefault(r["doc_id"], []).append(r)
    for pieces in by_doc.values():
        assert [r["chunk"] for r in pieces] == list(range(len(pieces)))
        label, rel = pieces[0]["source_path"].split("/", 1)
        original = sources.read_text(
            os.path.join(manifest["roots"][label], rel), SMALL["max_bytes_per_doc"], 64
        )
        assert "".join(r["text"] for r in pieces) == original
    lengths = np.array([r["n_tokens"] for r in rows])
    # cut by token offsets: rows fit max_length, but for the rare cut that re-tokenizes into a
    # token or two more (a BPE merge across the cut; 16 of 40,545 rows of the recipe's corpus)
    assert (lengths > SMALL["chunk_tokens"]).mean() <= 0.02
    assert lengths.max() <= SMALL["chunk_tokens"] + 4
    assert (lengths == SMALL["chunk_tokens"]).mean() > 0.5


def test_own_files_are_never_gathered(corpus):
    folder, manifest = corpus
    found, roots = sources.candidates(list(sources.KINDS))
    for files in found.values():
        for source, path, _ in files:
            assert "skillit" not in source.lower(), source
            inside_repo = path.startswith(REPO + os.sep)
            assert not inside_repo or any(path.startswith(r + os.sep) for r in roots.values())
    assert not any(
        d.lower().startswith("skillit") for d in manifest["environment"]["distributions"]
    )


def test_install_layout_excludes_the_project(tmp_path, monkeypatch):
    """A non-editable install of this project in site-packages, and symlinks, stay out."""
    site = tmp_path / "site-packages"
    files = {
        "skillit_ray/__init__.py": "x = 1\n" * 20,
        "skillit_policies/natural.py": "y = 2\n" * 20,
        "skillit_ray-0.1.0.dist-info/METADATA": "Name: skillit-ray\n" * 10,
        "__editable___skillit_ray_0_1_0_finder.py": "MAPPING = {}\n" * 10,
        "pkg/mod.py": "def f():\n    return 1\n" * 10,
        "pkg/license.py": "def show():\n    return 'MIT'\n" * 10,
        "pkg/LICENSE.MIT": "Permission is hereby granted\n" * 10,
        "pkg/include/pkg.h": "#define PKG 1\n" * 10,
        "pkg/py.typed.pyi": "def f() -> int: ...\n" * 10,
        "pkg/tests/data.txt": "1 2 3\n" * 30,
        "pkg/README.md": "# pkg\n\nDoes things.\n" * 10,
        "pkg-1.0.dist-info/METADATA": "Name: pkg\n\nA long description.\n" * 10,
        "pkg-1.0.dist-info/RECORD": "pkg/mod.py,,\n" * 10,
        "pkg-1.0.dist-info/licenses/LICENSE": "MIT License\n" * 10,
        "pkg/__pycache__/mod.cpython-311.pyc": "junk" * 40,
    }
    for rel, text in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text)
    os.symlink(REPO, site / "linked_repo")
    monkeypatch.setattr(sources, "_roots", lambda: [("site-packages", str(site))])
    found, _ = sources.candidates(list(sources.KINDS))
    got = {kind: [s for s, _, _ in files] for kind, files in found.items()}
    assert got == {
        "stdlib": [],
        "packages": ["site-packages/pkg/license.py", "site-packages/pkg/mod.py"],
        "headers": ["site-packages/pkg/include/pkg.h"],
        "licenses": [
            "site-packages/pkg/LICENSE.MIT",
            "site-packages/pkg-1.0.dist-info/licenses/LICENSE",
        ],
        "stubs": ["site-packages/pkg/py.typed.pyi"],
        "docs": ["site-packages/pkg/README.md", "site-packages/pkg-1.0.dist-info/METADATA"],
    }


def test_read_text_normalises_and_skips(tmp_path):
    def write(name, data: bytes) -> str:
        path = tmp_path / name
        path.write_bytes(data)
        return str(path)

    body = "line one\r\nline two\r\n" * 10
    assert sources.read_text(write("a.md", body.encode()), 4096, 8) == body.replace("\r\n", "\n")
    latin = b"# -*- coding: latin-1 -*-\ns = '\xe9t\xe9'\n" * 4
    assert "été" in sources.read_text(write("b.py", latin), 4096, 8)
    assert sources.read_text(write("c.md", b"caf\xe9 " * 40), 4096, 8) is None  # not UTF-8
    assert sources.read_text(write("d.txt", b"ab\0cd" * 40), 4096, 8) is None  # binary
    assert sources.read_text(write("e.md", b"tiny"), 4096, 8) is None  # too short
    assert sources.read_text(write("f.md", b"x" * 5000), 4096, 8) is None  # one huge line
    cut = sources.read_text(write("g.md", b"0123456789\n" * 1000), 100, 8)
    assert cut == "0123456789\n" * 9  # at most 100 bytes, cut at a line end
    bom = sources.read_text(write("h.md", b"\xef\xbb\xbf" + b"text here\n" * 5), 4096, 8)
    assert bom == "text here\n" * 5
    assert sources.content_hash("a  b\n c") == sources.content_hash("a b c")


def test_tokenizer_loads_offline_and_round_trips(corpus):
    folder, manifest = corpus
    tok = AutoTokenizer.from_pretrained(os.path.join(folder, "tokenizer"), local_files_only=True)
    assert len(tok) == manifest["vocab_size"] == SMALL["vocab_size"]
    assert tok.eos_token == tok.pad_token == sources.EOS
    assert tok.eos_token_id == tok.pad_token_id == manifest["pad_id"] == 0
    texts = _table(folder, "val")["text"].to_pylist() + ["café 中文\ttabs  and  spaces , ok\r\n"]
    for text in texts:
        ids = tok(text)["input_ids"]
        assert sources.EOS not in tok.convert_ids_to_tokens(ids)  # nothing added
        assert tok.decode(ids) == text


def test_manifest_counts_match_the_shards(corpus):
    folder, manifest = corpus
    tok = AutoTokenizer.from_pretrained(os.path.join(folder, "tokenizer"), local_files_only=True)
    for split in ("train", "val"):
        rows = _table(folder, split).to_pylist()
        for skill, c in manifest["counts"][split].items():
            mine = [r for r in rows if r["skill"] == skill]
            assert c["rows"] == len(mine) == manifest[f"{split}_rows"][skill]
            assert c["docs"] == len({r["doc_id"] for r in mine})
            assert c["bytes"] == sum(len(r["text"].encode()) for r in mine)
            n = [len(tok(r["text"])["input_ids"]) for r in mine]
            assert c["tokens"] == sum(n) == sum(r["n_tokens"] for r in mine)
        if split == "val":
            assert all(
                c["docs"] == SMALL["val_docs_per_skill"] for c in manifest["counts"]["val"].values()
            )
    assert manifest["max_length"] == SMALL["chunk_tokens"]
    build = json.load(open(os.path.join(folder, "build.json")))
    assert build["tokens"] == sum(
        c["tokens"] for s in manifest["counts"].values() for c in s.values()
    )


def test_cli_data_sources(corpus, tmp_path, capsys):
    _, manifest = corpus
    with pytest.raises(SystemExit):
        cli.main(["data", "sources", "--help"])
    helptext = " ".join(capsys.readouterr().out.split())
    for name, doc in [
        ("--max-docs-per-skill", "At most this many documents per skill"),
        ("--chunk-tokens", "Split each document into rows"),
        ("--vocab-size", "BPE vocabulary"),
        ("--natural", "Natural mixture"),
    ]:
        assert name in helptext and doc in helptext
    out = tmp_path / "cli"
    args = ["data", "sources", "--out", str(out)]
    for key, value in SMALL.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert f"wrote sources data to {out}: 6 skills" in printed
    assert "sources/licenses" in printed and "tokens" in printed
    assert json.loads((out / "manifest.json").read_text()) == manifest


def test_bad_settings_name_the_option():
    with pytest.raises(ConfigError, match="kinds"):
        generators.generate("sources", "unused", {"kinds": ["stdlib", "videos"]})
    with pytest.raises(ConfigError, match="val_docs_per_skill"):
        generators.generate("sources", "unused", {"max_docs_per_skill": 4, "val_docs_per_skill": 4})
    with pytest.raises(ConfigError, match="no setting"):
        generators.generate("sources", "unused", {"max_docs": 4})


def test_too_few_documents_names_the_skill(tmp_path):
    with pytest.raises(DataError, match="'sources/licenses'.*val_docs_per_skill"):
        generators.generate(
            "sources",
            str(tmp_path / "x"),
            {"kinds": ["licenses"], "max_docs_per_skill": 10**6, "val_docs_per_skill": 10**5},
        )
    assert not (tmp_path / "x").exists()


def test_recipe_data_is_cached_and_trains_with_its_tokenizer(tmp_path):
    """A recipe naming the generator builds it on first use, reuses it, and prepare takes the
    tokenizer from the manifest (data.tokenizer unset): rows tokenize and a model evaluates."""
    raw = {
        "data": {
            "generator": "sources",
            "generator_params": {**SMALL, "kinds": ["stdlib", "licenses"]},
            "cache_dir": str(tmp_path),
        },
        "model": {"preset": "gpt2-tiny"},
    }
    cfg = config.from_dict(raw)
    data = prepare(cfg)
    (folder,) = (tmp_path / "data").iterdir()
    assert folder.name.startswith("sources-")
    stamp = (folder / "manifest.json").stat().st_mtime_ns
    assert data.tokenizer == str(folder / "tokenizer")
    assert (data.vocab_size, data.pad_id, data.max_len) == (SMALL["vocab_size"], 0, 48)
    assert data.train_skills == ("sources/licenses", "sources/stdlib")
    assert not data.with_accuracy
    assert math.isclose(sum(data.natural.values()), 1.0)
    again = prepare(cfg)
    assert again.tokenizer == data.tokenizer
    assert (folder / "manifest.json").stat().st_mtime_ns == stamp  # reused, not rebuilt
    store = data.local_store("eval")
    model = build_model(cfg.model, data.vocab_size, data.max_len)
    torch.manual_seed(0)
    loss, acc = evaluate(model, store, 64, torch.device("cpu"), False)
    assert set(loss) == {"sources/licenses", "sources/stdlib"} and acc == {}
    # an untrained model is near uniform over the vocabulary
    assert all(abs(v - math.log(SMALL["vocab_size"])) < 1.0 for v in loss.values())


def test_environment_is_part_of_the_cache_key():
    p = generators.make_params("sources", SMALL)
    key = sources.environment_key()
    assert key == sources.environment_key()  # stable
    same = generators.fingerprint("sources", p, sources.VERSION, key)
    other = generators.fingerprint("sources", p, sources.VERSION, {"environment": "elsewhere"})
    assert same != other
    # the synthetic generators' cache folders keep their names
    lego = generators.make_params("lego", None)
    assert generators.fingerprint("lego", lego, 1) == generators.fingerprint("lego", lego, 1, None)
