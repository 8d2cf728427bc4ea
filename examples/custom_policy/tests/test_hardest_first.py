"""The plugin's own contract test: runs against the installed skillit-ray, no checkout needed."""

from skillit_ray.testing import check_policy


def test_hardest_first_honours_the_contract():
    check_policy("hardest_first", power=3.0)
