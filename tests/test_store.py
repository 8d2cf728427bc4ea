import numpy as np

from skillit_ray.data.store import SkillSampler, SkillStore


def test_no_row_repeats_within_an_epoch():
    s = SkillSampler({"a": 37, "b": 5}, seed=1)
    drawn = np.concatenate([s.take("a", k) for k in (3, 10, 1, 23)])
    assert sorted(drawn.tolist()) == list(range(37))  # exactly one epoch, each row once
    nxt = s.take("a", 37)
    assert sorted(nxt.tolist()) == list(range(37))
    assert not np.array_equal(drawn, nxt)  # a fresh permutation per epoch
    assert s.epoch["a"] == 2 and s.drawn["a"] == 74


def test_sampler_state_resumes_the_same_sequence():
    a = SkillSampler({"x": 11}, seed=5)
    a.take("x", 7)
    state = a.state_dict()
    rest = a.take("x", 20)
    b = SkillSampler({"x": 11}, seed=5)
    b.load_state_dict(state)
    assert np.array_equal(b.take("x", 20), rest)


def test_store_order_ignores_batch_order():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 50, size=(20, 6)).astype(np.int32)
    mask = np.ones((20, 6), np.uint8)
    key = rng.integers(-(2**62), 2**62, size=20)
    skills = np.array(["s"] * 10 + ["t"] * 10, dtype=object)
    batch = {"skill": skills, "input_ids": ids, "loss_mask": mask, "key": key}
    perm = rng.permutation(20)
    shuffled = {k: v[perm] for k, v in batch.items()}
    one = SkillStore.from_batches([batch], ("s", "t"), "train")
    two = SkillStore.from_batches([shuffled], ("s", "t"), "train")
    for sk in ("s", "t"):
        assert np.array_equal(one.ids[sk], two.ids[sk])


def test_pool_draws_only_eligible_rows_without_repeats():
    s = SkillSampler({"x": 50}, seed=2)
    eligible = np.array([3, 7, 11, 19, 23])
    first = s.take_pool("x", 5, eligible, round_=0)
    assert sorted(first.tolist()) == eligible.tolist()  # one pass: each pool row once
    more = s.take_pool("x", 7, eligible, round_=0)
    assert set(more.tolist()) <= set(eligible.tolist())
    state = s.state_dict()
    nxt = s.take_pool("x", 4, eligible, round_=1)
    t = SkillSampler({"x": 50}, seed=2)
    t.load_state_dict(state)
    assert np.array_equal(t.take_pool("x", 4, eligible, round_=1), nxt)


def test_spilled_store_serves_the_same_rows_as_in_memory():
    """Over its budget the store streams token arrays to files; every row,
    order, key and difficulty is the same as the in-memory store's."""
    rng = np.random.default_rng(0)
    batches = []
    for b in range(6):
        n = 50
        batches.append(
            {
                "skill": np.array(["a", "b/c"])[rng.integers(0, 2, n)],
                "key": rng.permutation(10**6)[:n].astype(np.uint64) + b * 10**6,
                "input_ids": rng.integers(0, 40, (n, 12)).astype(np.int32),
                "loss_mask": rng.integers(0, 2, (n, 12)).astype(np.uint8),
                "difficulty": rng.uniform(0, 3, n),
            }
        )
    mem = SkillStore.from_batches(batches, ("a", "b/c"), "train")
    spilled = SkillStore.from_batches(batches, ("a", "b/c"), "train", budget_bytes=2000)
    assert spilled.spill is not None and mem.spill is None
    assert type(spilled.ids["a"]).__name__ == "RowFile"
    for s in ("a", "b/c"):
        assert spilled.rows(s) == mem.rows(s)
        assert np.array_equal(spilled.row_keys(s), mem.row_keys(s))
        assert np.array_equal(spilled.row_keys(s, 7), mem.keys[s][:7])
        idx = rng.permutation(mem.rows(s))[:40]
        for x, y in zip(spilled.gather(s, idx), mem.gather(s, idx), strict=True):
            assert np.array_equal(x, y) and x.dtype == y.dtype
        assert np.array_equal(spilled.eligible(s, ("max", 1.0)), mem.eligible(s, ("max", 1.0)))
