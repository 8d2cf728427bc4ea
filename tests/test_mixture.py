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
        # non-numeric entries: a string or None, in the probabilities or in a row filter bound
        ({"a": 0.5, "b": "0.5", "c": 0.0}, "non-numeric probabilities [('b', '0.5')]"),
        ({"a": 0.5, "b": None, "c": 0.5}, "non-numeric probabilities [('b', None)]"),
        (Mixture(SK, [0.5, 0.5, "x"]), "non-numeric probabilities [('c', 'x')]"),
        (Mixture(SK, [None, 0.5, 0.5]), "non-numeric probabilities [('a', None)]"),
        (Mixture(SK, np.array([0.5, 0.5, 0.0]), ("max", "0.3")), "row_filter ('max', '0.3')"),
        (Mixture(SK, np.array([0.5, 0.5, 0.0]), ("min", None)), "row_filter ('min', None)"),
    ],
)
def test_invalid_mixtures_name_the_policy_and_value(bad, words):
    with pytest.raises(PolicyError) as err:
        validate_mixture(bad, SK, "mypolicy")
    assert "mypolicy" in str(err.value) and words in str(err.value)


def test_valid_dict_mixture():
    m = validate_mixture({"c": 0.2, "a": 0.5, "b": 0.3}, SK, "p")
    assert m.probs.tolist() == [0.5, 0.3, 0.2]
