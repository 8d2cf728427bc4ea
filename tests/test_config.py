import pytest

from skillit_ray import config
from skillit_ray.errors import ConfigError


def test_unknown_key_suggests_nearest(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data: {generator: lego}\ntrain: {rouns: 3}\n")
    with pytest.raises(
        ConfigError, match="unknown config key 'train.rouns'; did you mean 'train.rounds'"
    ):
        config.load(str(p))


def test_overrides_parse_yaml_values(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data: {generator: lego}\n")
    cfg = config.load(
        str(p), ["train.rounds=4", "policy.params.eta=0.2", "data.train_skills=[a, b]"]
    )
    assert cfg.train.rounds == 4 and cfg.policy.params["eta"] == 0.2
    assert cfg.data.train_skills == ["a", "b"]


@pytest.mark.parametrize(
    "override, words",
    [
        ("train.batch_size=30", "divisible by train.num_workers=4"),
        ("train.rounds=0", "train.rounds must be an integer >= 1"),
        ("train.eval_every=0", "train.eval_every"),
    ],
)
def test_validation_names_the_field(tmp_path, override, words):
    p = tmp_path / "c.yaml"
    p.write_text("data: {generator: lego}\ntrain: {num_workers: 4}\n")
    with pytest.raises(ConfigError, match=words):
        config.load(str(p), [override])


def test_recipe_graph_path_is_relative_to_recipe():
    cfg = config.load("experiments/lego_pt.yaml")
    assert cfg.policy.params["graph"].endswith("experiments/graphs/lego_paper.json")
