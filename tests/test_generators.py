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
            "lego",
            {
                "variables": 5,
                "format": "scratchpad",
                "rows_per_skill": 40,
                "proportions": [1, 1, 1, 3, 5],
                "val_rows_per_skill": 20,
            },
        ),
        (
            "addition",
            {"digits": 3, "format": "reversed", "rows_per_skill": 30, "val_rows_per_skill": 20},
        ),
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


def test_lego_scratchpad_semantics():
    rows = _rows_of(
        "lego",
        {"format": "scratchpad", "rows_per_skill": 30, "val_rows_per_skill": 5, "seed": 3},
    )
    assert {r["skill"] for r in rows} == {f"lego/depth{d}" for d in range(1, 6)}
    for r in rows:
        depth = int(r["skill"][len("lego/depth") :])
        clauses, query = r["text"].split(" . ? ")
        clauses = [c.split() for c in clauses.split(" , ")]
        # chain order: the root first, each next clause reads the variable defined before it
        assert clauses[0][2] == "val" and clauses[0][3] in ("0", "1")
        names = [c[0] for c in clauses]
        assert all(c[3] == names[i] for i, c in enumerate(clauses[1:]))
        values = [int(clauses[0][3])]
        for c in clauses[1:]:
            values.append(1 - values[-1] if c[2] == "not" else values[-1])
        # the query names the depth-D variable; the scratchpad is the values of depths 1..D
        name, colon, *pad = query.split()
        assert (name, colon) == (names[depth - 1], ":")
        assert pad == [str(v) for v in values[:depth]]
        # loss (the answer) is the last value only; the earlier ones are teacher-forced input
        assert sum(r["loss_mask"]) == 1 and r["loss_mask"][-1] == 1
        assert r["answer"] == str(values[depth - 1])


def test_lego_paper_format_is_unchanged_by_the_scratchpad_option():
    # the default stays the paper's format and vocabulary (golden runs depend on its token ids)
    assert generators.make_params("lego", {}).format == "paper"
    assert ":" not in lego.vocab().symbols
    assert lego.vocab(generators.make_params("lego", {})).symbols == lego.vocab().symbols
    rows = _rows_of("lego", {"rows_per_skill": 5, "val_rows_per_skill": 2})
    assert all(" = " in r["text"].split(" ? ")[1] for r in rows)


def _carries(a: int, b: int, digits: int) -> int:
    carry = n = 0
    for i in range(digits):
        carry = int(a // 10**i % 10 + b // 10**i % 10 + carry >= 10)
        n += carry
    return n


def test_addition_reversed_semantics():
    rows = _rows_of(
        "addition",
        {"format": "reversed", "digits": 3, "rows_per_skill": 40, "val_rows_per_skill": 5},
    )
    assert {r["skill"] for r in rows} == {f"addition/carries{c}" for c in range(4)}
    for r in rows:
        tokens = r["text"].split()
        plus, eq = tokens.index("+"), tokens.index("=")
        assert plus == 3 and eq == 7  # zero-padded operands, least significant digit first
        a, b = int("".join(tokens[:plus][::-1])), int("".join(tokens[plus + 1 : eq][::-1]))
        total = tokens[eq + 1 :]
        assert int("".join(total[::-1])) == a + b and len(total) == 4
        assert r["skill"] == f"addition/carries{_carries(a, b, 3)}"
        # every sum digit is an answer token, nothing else
        assert r["loss_mask"] == [0] * (eq + 2) + [1] * 4
        assert r["answer"] == " ".join(total)


def test_addition_reversed_natural_proportions_count_the_pairs():
    # the default natural mixture is how often each carry count occurs among all operand pairs
    p = generators.make_params("addition", {"format": "reversed", "digits": 2})
    counts = [0, 0, 0]
    for a in range(100):
        for b in range(100):
            counts[_carries(a, b, 2)] += 1
    assert addition.natural_proportions(p) == counts
    paper = generators.make_params("addition", {})
    assert addition.natural_proportions(paper) == [13, 14, 18]


def test_format_settings_are_checked():
    from skillit_ray.errors import ConfigError

    with pytest.raises(ConfigError, match="format must be one of \\['paper', 'scratchpad'\\]"):
        generators.generate("lego", "/tmp/unused-lego", {"format": "reversed"})
    with pytest.raises(ConfigError, match="proportions must be 4 values > 0 .*'reversed'"):
        generators.generate(
            "addition", "/tmp/unused-add", {"format": "reversed", "proportions": [1, 2, 3]}
        )


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


@pytest.mark.parametrize(
    "args, summary",
    [
        (["lego", "--format", "scratchpad", "--variables", "3"], "3 skills, 30 train rows"),
        (["addition", "--format", "reversed", "--digits", "2"], "3 skills, "),
    ],
)
def test_data_command_takes_the_formats(tmp_path, capsys, args, summary):
    from skillit_ray import cli

    rest = ["--out", str(tmp_path / "d"), "--rows-per-skill", "10", "--val-rows-per-skill", "4"]
    if args[0] == "lego":
        rest += ["--proportions", "[1, 1, 1]"]
    assert cli.main(["data", *args, *rest]) == 0
    assert summary in capsys.readouterr().out
    manifest = generators.read_manifest(str(tmp_path / "d"))
    assert manifest["params"]["format"] == args[2]
