"""The token cache: what `prepare` writes, its reuse and rebuild, packing, and bad shards.

Built in this process (no Ray: the pipeline's same per-batch function runs file by file)."""

import json
import os

import numpy as np
import pytest

from skillit_ray import config
from skillit_ray.data import cache as cache_mod
from skillit_ray.data.prepare import prepare
from skillit_ray.errors import DataError
from tests.conftest import token_rows, write_split
from tests.test_data_source import write_jsonl


def build(raw: dict, shard_bytes: int = 8 * 8 * 3):
    """The recipe's cache, with tiny shards (8 rows of 8 uint16 tokens + mask per shard)."""
    data = prepare(config.from_dict(raw))
    parts = cache_mod.fingerprint_parts(data, data.packing)
    return data, cache_mod.build(data, data.cache_root, parts, shard_bytes=shard_bytes)


def padded(row: dict, L: int, pad: int = 0) -> tuple[list, list]:
    ids, mask = row["input_ids"][-L:], row["loss_mask"][-L:]
    return ids + [pad] * (L - len(ids)), mask + [0] * (L - len(mask))


def test_prepare_writes_fixed_length_shards_per_skill(token_data):
    raw, rows = token_data
    data, cache = build(raw)
    m = cache.manifest
    assert m["dtype"] == "uint16" and m["max_length"] == 8 and m["shard_rows"] == 8
    assert cache.skills("train") == ["a", "b/c"]
    shards = cache.shards("train", "a")
    assert [s.rows for s in shards] == [8] * 13 + [6]  # 110 rows, fixed-size shards
    assert shards[0].file == "train/0/00000.tok"
    index = json.loads(open(os.path.join(data.cache_root, "index.json")).read())
    assert index["train"]["b/c"][0]["crc32"] == cache.shards("train", "b/c")[0].crc32
    # rows keep the sources' file order per skill, padded right, cut from the left
    view = data.local_store("train")
    for skill in ("a", "b/c"):
        want = [padded(r, 8) for r in rows if r["skill"] == skill]
        ids, mask = view.gather(skill, np.arange(view.rows(skill)))
        assert ids.tolist() == [w[0] for w in want] and mask.tolist() == [w[1] for w in want]
    t = cache.counts("train")
    read = sum(len(r["input_ids"]) for r in rows)
    assert (t.rows, t.read) == (155, read)
    assert t.dropped == sum(max(0, len(r["input_ids"]) - 8) for r in rows) > 0
    assert t.kept == read - t.dropped and t.padding == 155 * 8 - t.kept


def test_cache_is_reused_then_rebuilt_when_stale(token_data, tmp_path, capsys):
    raw, _ = token_data
    data = prepare(config.from_dict(raw))
    first = data.cache()
    stamp = os.stat(os.path.join(data.cache_root, "manifest.json")).st_mtime_ns
    again = prepare(config.from_dict(raw))
    assert again.cache_root == data.cache_root
    assert again.cache().fingerprint == first.fingerprint
    assert os.stat(os.path.join(data.cache_root, "manifest.json")).st_mtime_ns == stamp
    assert "stale" not in capsys.readouterr().err
    write_split(tmp_path / "train", {"1.parquet": token_rows(30, "a", 9) + token_rows(5, "b/c", 8)})
    changed = prepare(config.from_dict(raw))
    rebuilt = changed.cache()
    err = capsys.readouterr().err.strip().splitlines()
    assert [e for e in err if "stale" in e] == [
        f"skillit-ray: token cache {data.cache_root} is stale (train changed); rebuilding it"
    ]
    assert rebuilt.fingerprint != first.fingerprint and rebuilt.rows("train", "a") == 90


def test_file_uri_cache(token_data, tmp_path):
    raw, rows = token_data
    raw["data"]["token_cache"] = f"file://{tmp_path}/uri-cache"
    data = prepare(config.from_dict(raw))
    cache = data.cache()
    assert cache.root.startswith("file://") and os.path.exists(tmp_path / "uri-cache/manifest.json")
    ids, _ = data.local_store("train").gather("b/c", [0])
    assert ids.tolist() == [padded([r for r in rows if r["skill"] == "b/c"][0], 8)[0]]


def test_bad_shards_stop_with_the_shard_named(token_data):
    raw, _ = token_data
    data, cache = build(raw)
    root = data.cache_root
    shard = os.path.join(root, "train/1/00002.tok")
    blob = open(shard, "rb").read()
    with open(shard, "r+b") as fh:  # same size, one byte changed
        fh.seek(3)
        fh.write(bytes([blob[3] ^ 0xFF]))
    cache.check_files()  # sizes still fine
    with pytest.raises(DataError, match=r"token cache shard .*train/1/00002.tok: checksum"):
        cache.read_shard("train", "b/c", 2)
    with open(shard, "wb") as fh:
        fh.write(blob[:-5])
    fresh = prepare(config.from_dict(raw))
    with pytest.raises(DataError, match=r"shard .*train/1/00002.tok has \d+ bytes, the index says"):
        fresh.cache()
    with pytest.raises(DataError, match=r"shard .*train/1/00002.tok has \d+ bytes"):
        cache.read_shard("train", "b/c", 2)
    os.remove(shard)
    with pytest.raises(DataError, match=r"token cache shard .*train/1/00002.tok is missing"):
        prepare(config.from_dict(raw)).cache()


def test_text_is_packed_with_eos_and_nothing_dropped(tmp_path, word_tokenizer):
    docs = ["hola mundo que", "hello world", "what world hello hello", "que"] * 3
    rows = [{"skill": "en", "text": d} for d in docs]
    write_jsonl(tmp_path / "d/train/a.jsonl", rows)
    write_jsonl(tmp_path / "d/val/a.jsonl", rows[:2])
    raw = {
        "data": {
            "train": str(tmp_path / "d/train"),
            "eval": str(tmp_path / "d/val"),
            "tokenizer": word_tokenizer,
            "max_length": 5,
            "cache_dir": str(tmp_path / "cache"),
        }
    }
    data, cache = build(raw)
    assert cache.manifest["packing"] == {"train": True, "eval": True}
    ids, mask = data.local_store("train").gather("en", np.arange(cache.rows("train", "en")))
    stream = ids[mask > 0].tolist()
    words = ["[PAD]", "[UNK]", "hola", "hello", "world", "mundo", "que", "what"]
    eos = 0  # the tokenizer has no EOS: documents are joined with its pad id
    want = []
    for d in docs:
        want += [words.index(w) for w in d.split()] + [eos]
    assert stream == want  # every token, in order, each document closed
    t = cache.counts("train")
    assert t.dropped == 0 and t.read == t.kept == len(want)
    assert t.rows == -(-len(want) // 5) and t.padding == t.rows * 5 - len(want)
    assert mask[:-1].all()  # only the last row holds padding

    raw["data"]["packing"] = False  # padded instead: long rows lose tokens, and say so
    raw["data"]["max_length"] = 3
    data, cache = build(raw)
    t = cache.counts("train")
    assert cache.manifest["packing"]["train"] is False and t.rows == len(docs)
    assert t.dropped == 3 * 1  # "what world hello hello": 4 tokens, the first one cut


def test_dropped_tokens_are_said(token_data, capsys):
    raw, _ = token_data
    build(raw)
    err = capsys.readouterr().err
    assert "train tokens cut from rows longer than max_length=8" in err
