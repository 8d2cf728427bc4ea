import numpy as np
import pytest

from skillit_ray.errors import PolicyError
from skillit_ray.mixture import Mixture, validate_mixture

SK = ("a", "b", "c")


@pytest.mark.parametrize(
    "bad, words",
    [
        ({"a": 0.5, "b": 0.5}, "missing ['c']"),
        ({"a": 0.5, "b": 0.5, "c": 0.0, "z": 0.0}, "unknown ['z']"),
        (Mixture(SK, np.array([0.5, 0.7, -0.2])), "('c', -0.2)"),
        (Mixture(SK, np.array([0.5, np.nan, 0.5])), "nan"),
        (Mixture(SK, np.array([0.5, 0.5, 0.5])), "summing to 1.5"),
        ([0.3, 0.3, 0.4], "list"),
    ],
)
def test_invalid_mixtures_name_the_policy_and_value(bad, words):
    with pytest.raises(PolicyError) as err:
        validate_mixture(bad, SK, "mypolicy")
    assert "mypolicy" in str(err.value) and words in str(err.value)


def test_valid_dict_mixture():
    m = validate_mixture({"c": 0.2, "a": 0.5, "b": 0.3}, SK, "p")
    assert m.probs.tolist() == [0.5, 0.3, 0.2]
