"""Per-skill streams over the token cache: shard-then-row epochs, resume, disjoint ranks,
bounded open shards."""

import numpy as np
import pytest

from skillit_ray.data.stream import RankShards, SkillSampler, SkillStreams
from skillit_ray.errors import DataError
from tests.test_cache import build


def test_no_row_repeats_within_an_epoch_and_shards_stay_together():
    layout = {"a": np.array([5, 0, 7, 3]), "b": np.array([5])}
    s = SkillSampler(layout, seed=1)
    drawn = np.concatenate([s.take("a", k) for k in (3, 6, 1, 5)])
    assert sorted(drawn.tolist()) == list(range(15))  # exactly one epoch, each row once
    offsets = np.array([0, 5, 5, 12, 15])
    shard_of = np.searchsorted(offsets, drawn, side="right") - 1
    assert (np.diff(shard_of) != 0).sum() == 2  # three non-empty shards, one visit each
    nxt = s.take("a", 15)
    assert sorted(nxt.tolist()) == list(range(15))
    assert not np.array_equal(drawn, nxt)  # fresh permutations per epoch
    assert s.epoch["a"] == 2 and s.cursor["a"] == 0 and s.drawn["a"] == 30


def test_sampler_state_resumes_the_same_sequence():
    layout = {"x": np.array([4, 4, 3])}
    a = SkillSampler(layout, seed=5)
    a.take("x", 7)
    state = a.state_dict()
    rest = a.take("x", 20)
    b = SkillSampler(layout, seed=5)
    b.load_state_dict(state)
    assert np.array_equal(b.take("x", 20), rest)


def test_pool_draws_only_eligible_rows_without_repeats():
    s = SkillSampler({"x": np.array([50])}, seed=2)
    eligible = np.array([3, 7, 11, 19, 23])
    first = s.take_pool("x", 5, eligible, round_=0)
    assert sorted(first.tolist()) == eligible.tolist()  # one pass: each pool row once
    more = s.take_pool("x", 7, eligible, round_=0)
    assert set(more.tolist()) <= set(eligible.tolist())
    state = s.state_dict()
    nxt = s.take_pool("x", 4, eligible, round_=1)
    t = SkillSampler({"x": np.array([50])}, seed=2)
    t.load_state_dict(state)
    assert np.array_equal(t.take_pool("x", 4, eligible, round_=1), nxt)


def test_ranks_take_disjoint_rows_that_cover_the_skill(token_data):
    data, cache = build(token_data[0])
    full = RankShards(cache, "train", ("a", "b/c"), open_shards=None)
    for skill in ("a", "b/c"):
        all_ids = full.gather(skill, np.arange(full.rows(skill)))[0]
        seen = []
        for rank in range(3):
            view = RankShards(cache, "train", ("a", "b/c"), rank, 3)
            keys = view.row_keys(skill)
            seen += keys.tolist()
            ids, _ = view.gather(skill, np.arange(view.rows(skill)))
            assert np.array_equal(ids, all_ids[keys])  # a row's key is its cache row
        assert sorted(seen) == list(range(cache.rows("train", skill)))  # disjoint, complete


def test_streams_read_lazily_with_bounded_open_shards(token_data):
    data, cache = build(token_data[0])
    full = RankShards(cache, "train", ("a",), open_shards=None)
    st = SkillStreams(cache, ("a", "b/c"), seed=3)
    assert not st.shards.open["a"]  # nothing read before the first draw
    got, rows = [], []
    for _ in range(40):
        before = dict(st.sampler.state_dict()["cursor"])
        ids, _ = st.take("a", 7)
        got.append(ids)
        assert len(st.shards.open["a"]) <= 2 and len(st.shards.pending) <= 1
        rows.append((before["a"], ids))
    st.close()
    # the same rows as a replay of the sampler over the whole skill held in memory
    replay = SkillSampler(full.sizes, seed=3)
    want = [full.gather("a", replay.take("a", 7))[0] for _ in range(40)]
    assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))


def test_a_corrupt_shard_met_while_streaming_names_it(token_data):
    data, cache = build(token_data[0])
    path = f"{data.cache_root}/train/0/00000.tok"
    with open(path, "r+b") as fh:
        fh.write(b"\xff\xff")
    st = SkillStreams(cache, ("a",), seed=0)
    with pytest.raises(DataError, match=r"train/0/00000.tok: checksum does not match"):
        for _ in range(20):
            st.take("a", 8)
