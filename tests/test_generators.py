import os

import pyarrow.parquet as pq
import pytest

from skillit_ray.data import generators
from skillit_ray.data.generators import addition, instruct, lego

CHECK = {"lego": lego.answer, "addition": addition.answer, "instruct": instruct.answer}


def _rows(folder, split):
    return pq.read_table(os.path.join(folder, split)).to_pylist()


@pytest.mark.parametrize(
    "name, params",
    [
        (
            "lego",
            {
                "variables": 4,
                "rows_per_skill": 60,
                "proportions": [1, 1, 2, 3],
                "val_rows_per_skill": 20,
            },
        ),
        ("addition", {"digits": 3, "rows_per_skill": 60, "val_rows_per_skill": 20}),
        (
            "instruct",
            {
                "languages": ["en", "es", "fr"],
                "rows_per_skill": 30,
                "proportions": [1, 1, 2, 1, 1, 1, 1, 3, 1],
                "val_rows_per_skill": 10,
            },
        ),
    ],
)
def test_deterministic_correct_and_disjoint(tmp_path, name, params):
    a = generators.generate(name, str(tmp_path / "a"), params)
    generators.generate(name, str(tmp_path / "b"), params)
    for split in ("train", "val"):
        assert _rows(tmp_path / "a", split) == _rows(tmp_path / "b", split)
    train, val = _rows(tmp_path / "a", "train"), _rows(tmp_path / "a", "val")
    vocab = a["vocab"]
    for row in train + val:
        # The stored answer is right (recomputed from the text) and is exactly the loss tokens.
        assert row["answer"] == CHECK[name](row["text"])
        answer_ids = [t for t, m in zip(row["input_ids"], row["loss_mask"], strict=True) if m]
        assert " ".join(vocab[t] for t in answer_ids) == row["answer"]
        assert " ".join(vocab[t] for t in row["input_ids"][1:]) == row["text"]
    # no held-out row appears in training, and no row twice within a skill
    keys = lambda rows: {(r["skill"], tuple(r["input_ids"])) for r in rows}  # noqa: E731
    assert not keys(train) & keys(val)
    assert len(keys(train)) == len(train)
    counts = a["train_rows"]
    w = a["natural_proportions"]
    per = params["rows_per_skill"]
    assert all(counts[s] == round(per * w[s] / min(w.values())) for s in counts)


def test_lego_depth_semantics():
    # depth-1 rows ask the root, whose value is stated literally
    row = _rows_of(
        "lego",
        {"variables": 3, "rows_per_skill": 5, "val_rows_per_skill": 2, "proportions": [1, 1, 1]},
    )
    for r in row:
        if r["skill"] == "lego/depth1":
            var = r["text"].split("? ")[1].split()[0]
            assert f"{var} = val {r['answer']}" in r["text"]


def _rows_of(name, params):
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        generators.generate(name, d + "/x", params)
        return _rows(d + "/x", "train")


def test_cache_regenerates_when_settings_change(tmp_path):
    p = {"variables": 3, "rows_per_skill": 10, "proportions": [1, 1, 1], "val_rows_per_skill": 5}
    a = generators.cached("lego", p, str(tmp_path))
    assert generators.cached("lego", p, str(tmp_path)) == a
    b = generators.cached("lego", {**p, "rows_per_skill": 11}, str(tmp_path))
    assert a != b and os.path.exists(os.path.join(b, "manifest.json"))


def test_bad_generator_settings_are_named():
    from skillit_ray.errors import ConfigError

    with pytest.raises(ConfigError, match=r"no setting\(s\) \['depth'\]"):
        generators.make_params("lego", {"depth": 3})
    with pytest.raises(ConfigError, match="proportions has 2 entries, expected 5"):
        generators.generate("lego", "/tmp/unused-lego", {"proportions": [1, 2]})


def test_instruct_grid_semantics():
    rows = _rows_of("instruct", {"rows_per_skill": 20, "val_rows_per_skill": 5, "words": 8})
    assert {r["skill"] for r in rows} == {
        f"instruct/{lang}/{task}" for lang in ("en", "es") for task in ("copy", "reverse", "sort")
    }
    for r in rows:
        _, lang, task = r["skill"].split("/")
        prompt, answer = r["text"].split(" : ")
        words = prompt.split()[2:]
        assert prompt.split()[:2] == [lang, task] and answer == r["answer"]
        # every word is of the row's language, drawn without repeats
        assert all(w.startswith(lang) for w in words + answer.split())
        assert len(set(words)) == len(words) == 4
        assert sorted(answer.split()) == sorted(words)


def test_instruct_bad_settings_are_named():
    from skillit_ray.errors import ConfigError

    with pytest.raises(ConfigError, match=r"unknown tasks \['translate'\]"):
        generators.generate("instruct", "/tmp/unused-instruct", {"tasks": ["translate"]})
    with pytest.raises(ConfigError, match="proportions must be 6 values"):
        generators.generate("instruct", "/tmp/unused-instruct", {"proportions": [1, 2]})


def test_data_command_takes_every_generator_setting(tmp_path, capsys):
    from skillit_ray import cli

    args = ["data", "instruct", "--out", str(tmp_path / "i"), "--languages", "[en, fr, de]"]
    args += ["--tasks", "[sort]", "--proportions", "[1, 2, 3]", "--rows-per-skill", "10"]
    assert cli.main([*args, "--val-rows-per-skill", "4"]) == 0
    assert "3 skills, 60 train rows, 12 validation rows" in capsys.readouterr().out
    rows = _rows(tmp_path / "i", "train")
    assert sum(r["skill"] == "instruct/de/sort" for r in rows) == 30
