"""Property-based checks of the round plan and mixture validation (hypothesis)."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from skillit_ray.data.plan import make_plan
from skillit_ray.errors import PolicyError
from skillit_ray.mixture import Mixture, largest_remainder, validate_mixture

weights = st.lists(st.floats(0.0, 1e6, allow_nan=False), min_size=1, max_size=40).filter(
    lambda w: sum(w) > 0
)


@settings(max_examples=300, deadline=None)
@given(weights, st.integers(0, 100_000))
def test_any_valid_mixture_gives_exact_counts(w, total):
    p = np.array(w) / sum(w)
    c = largest_remainder(p, total)
    assert c.sum() == total and np.all(c >= 0)
    assert np.all(np.abs(c - p * total) < 1.0 + 1e-6)  # never off by a whole row or more


@settings(max_examples=100, deadline=None)
@given(weights, st.integers(1, 20), st.integers(1, 64), st.integers(0, 2**31))
def test_plan_slots_match_counts(w, steps, batch, seed):
    p = np.array(w) / sum(w)
    plan = make_plan(p, steps, batch, seed, 0)
    assert plan.slots.shape == (steps, batch)
    assert np.bincount(plan.slots.ravel(), minlength=len(w)).tolist() == plan.counts.tolist()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=2, max_size=10))
def test_invalid_mixtures_are_rejected(values):
    p = np.array(values)
    skills = tuple(f"s{i}" for i in range(len(values)))
    valid = bool(
        np.all(np.isfinite(p)) and np.all(p >= 0) and math.isclose(p.sum(), 1.0, abs_tol=1e-6)
    )
    try:
        validate_mixture(Mixture(skills, p), skills, "prop")
        accepted = True
    except PolicyError as exc:
        accepted = False
        assert "prop" in str(exc)
    assert accepted == valid
