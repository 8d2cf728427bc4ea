import numpy as np
import pytest

from skillit_ray.data.plan import make_plan
from skillit_ray.mixture import largest_remainder


def test_largest_remainder_by_hand():
    # 10 * [0.16, 0.35, 0.49] = [1.6, 3.5, 4.9]: floors [1, 3, 4], 2 left go to .9 and .6
    assert largest_remainder(np.array([0.16, 0.35, 0.49]), 10).tolist() == [2, 3, 5]
    # ties (.5 each) go to the earlier skill
    assert largest_remainder(np.array([0.25, 0.25, 0.25, 0.25]), 2).tolist() == [1, 1, 0, 0]


@pytest.mark.parametrize("total", [1, 7, 100, 3200])
def test_counts_exact_and_close(total):
    rng = np.random.default_rng(total)
    for _ in range(50):
        p = rng.dirichlet(np.ones(5))
        c = largest_remainder(p, total)
        assert c.sum() == total
        assert np.all(np.abs(c - p * total) < 1.0)


def test_plan_is_deterministic_and_matches_counts():
    p = np.array([1, 1, 1, 3, 5]) / 11
    a = make_plan(p, steps=10, global_batch=32, seed=3, round_=2)
    b = make_plan(p, steps=10, global_batch=32, seed=3, round_=2)
    c = make_plan(p, steps=10, global_batch=32, seed=3, round_=3)
    assert np.array_equal(a.slots, b.slots)
    assert not np.array_equal(a.slots, c.slots)
    assert np.bincount(a.slots.ravel(), minlength=5).tolist() == a.counts.tolist()
    assert a.counts.tolist() == largest_remainder(p, 320).tolist()


def test_rank_slices_partition_the_global_batch():
    plan = make_plan(np.array([0.5, 0.5]), steps=4, global_batch=8, seed=0, round_=0)
    parts = [plan.rank_slots(r, 2) for r in range(2)]
    assert np.array_equal(np.concatenate(parts, axis=1), plan.slots)
