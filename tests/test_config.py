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


def test_policy_name_override_starts_from_the_new_policys_defaults(capsys):
    """The README's invocation on a SKILL-IT recipe: the recipe's parameters are dropped (one
    line names them) and policy.params overrides apply, before or after policy.name."""
    cfg = config.load(
        "experiments/lego_pt.yaml",
        ["policy.params.power=3", "policy.name=hardest_first", "train.rounds=2"],
    )
    assert cfg.policy.name == "hardest_first" and cfg.policy.params == {"power": 3}
    line = capsys.readouterr().err.strip()
    assert line == (
        "skillit-ray: policy.name=hardest_first: dropped the recipe's skillit parameters "
        "(eta, graph, window, window_unit); hardest_first starts from its defaults"
    )
    same = config.load("experiments/lego_pt.yaml", ["policy.name=skillit", "policy.params.eta=1"])
    assert same.policy.params["eta"] == 1 and "graph" in same.policy.params
    assert capsys.readouterr().err == ""


def test_run_rejects_a_bad_policy_parameter_before_ray_starts(capsys):
    from skillit_ray import cli

    args = ["run", "experiments/lego_pt.yaml", "--set", "policy.name=odm"]
    assert cli.main([*args, "--set", "policy.params.alpah=0.5"]) == 2
    err = capsys.readouterr().err
    assert "dropped the recipe's skillit parameters" in err
    assert "policy 'odm' has no parameter(s) ['alpah']; its parameters are: alpha" in err


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.lr=fast", "train.lr must be a number > 0, got 'fast'"),
        ("train.weight_decay=abc", "train.weight_decay must be a number >= 0, got 'abc'"),
        ("train.grad_clip=-1", "train.grad_clip must be a number >= 0, got -1"),
        ("train.rounds=2.5", "train.rounds must be an integer >= 1, got 2.5"),
        ("train.use_gpu=maybe", "train.use_gpu must be true or false, got 'maybe'"),
        ("train.eval_every=0", "train.eval_every must be an integer >= 1, got 0"),
        ("data.max_length=[1]", "data.max_length must be an integer >= 1 (or null), got [1]"),
        ("graph.method=exact", "graph.method: unknown 'exact'; expected one of"),
        ("model.overrides=3", "model.overrides must be a mapping, got 3"),
    ],
)
def test_every_field_is_checked_for_type_and_range(override, message):
    with pytest.raises(ConfigError) as err:
        config.load("experiments/lego_pt.yaml", [override])
    assert str(err.value).startswith(message)


def test_a_number_written_as_text_is_read_as_a_number():
    cfg = config.load("experiments/lego_pt.yaml", ["train.lr=1e-3"])  # YAML reads '1e-3'
    assert cfg.train.lr == 1e-3 and isinstance(cfg.train.lr, float)
