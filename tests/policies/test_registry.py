import numpy as np
import pytest

from skillit_ray.errors import PolicyError
from skillit_ray.mixture import PolicyContext
from skillit_ray.policy import available, build_policy, describe_policy

CTX = PolicyContext(
    ("a", "b", "c"), ("a", "b", "c"), {"a": 1 / 11, "b": 3 / 11, "c": 7 / 11}, 3, 10, 8
)


def test_builtins_found_through_entry_points():
    assert {"random", "stratified", "skillit"} <= set(available())
    assert "eta" in [f["name"] for f in describe_policy("skillit")["fields"]]


def test_unknown_policy_lists_available():
    with pytest.raises(PolicyError, match="unknown policy 'nope'; available: .*skillit"):
        build_policy("nope")


def test_unknown_parameter_lists_valid_ones():
    with pytest.raises(PolicyError, match=r"no parameter\(s\) \['etta'\].*eta"):
        build_policy("skillit", {"etta": 0.1})


def test_random_uses_natural_or_given_proportions():
    assert np.allclose(build_policy("random").init(CTX).probs, [1 / 11, 3 / 11, 7 / 11])
    given = build_policy("random", {"proportions": {"a": 1, "b": 1, "c": 2}}).init(CTX)
    assert np.allclose(given.probs, [0.25, 0.25, 0.5])


def test_stratified_is_uniform():
    assert np.allclose(build_policy("stratified").init(CTX).probs, [1 / 3] * 3)
