"""User data (Parquet/JSONL, input_ids or text) and errors that name the culprit."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from skillit_ray import config
from skillit_ray.data.pipeline import tokenize_batch
from skillit_ray.data.prepare import prepare
from skillit_ray.data.source import inspect
from skillit_ray.errors import DataError


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_text_jsonl_through_ray_data(ray_session, tmp_path, word_tokenizer):
    rows = [
        {"skill": "es", "text": "hola mundo que"},
        {"skill": "en", "text": "hello world"},
        {"skill": "en", "text": "what world hello"},
    ]
    write_jsonl(tmp_path / "d/train/a.jsonl", rows)
    write_jsonl(tmp_path / "d/val/a.jsonl", rows[:2])
    cfg = config.from_dict(
        {
            "data": {
                "train": str(tmp_path / "d/train"),
                "eval": str(tmp_path / "d/val"),
                "tokenizer": word_tokenizer,
                "packing": False,
                "cache_dir": str(tmp_path / "cache"),
            }
        }
    )
    data = prepare(cfg)
    assert data.train.format == "jsonl" and data.train.rows_per_skill == {"en": 2, "es": 1}
    assert data.natural == {"en": 2 / 3, "es": 1 / 3} and not data.with_accuracy
    train = data.local_store("train")  # the cache, built by the Ray Data pipeline
    by_text = {}
    for skill in train.skills:
        ids, mask = train.gather(skill, range(train.rows(skill)))
        by_text.update({tuple(i[m > 0]): skill for i, m in zip(ids, mask, strict=True)})
    assert by_text == {(2, 5, 6): "es", (3, 4): "en", (7, 4, 3): "en"}


def test_parquet_input_ids_vocab_and_length_from_data(ray_session, tmp_path):
    t = pa.table(
        {"skill": ["a", "b"], "input_ids": [[1, 2, 9], [4, 5]], "loss_mask": [[0, 0, 1], [0, 1]]}
    )
    for split in ("train", "val"):
        (tmp_path / split).mkdir()
        pq.write_table(t, tmp_path / split / "p.parquet")
    cfg = config.from_dict(
        {
            "data": {
                "train": str(tmp_path / "train"),
                "eval": str(tmp_path / "val"),
                "cache_dir": str(tmp_path / "cache"),
            }
        }
    )
    data = prepare(cfg)
    assert (data.vocab_size, data.max_len, data.with_accuracy) == (10, 3, True)
    ids, mask = data.local_store("eval").gather("b", [0])
    assert ids.tolist() == [[4, 5, 0]] and mask.tolist() == [[0, 1, 0]]


def test_missing_skill_column_names_file(tmp_path):
    write_jsonl(tmp_path / "t/x.jsonl", [{"text": "a"}])
    with pytest.raises(DataError, match=r"x.jsonl: missing the 'skill' column"):
        inspect(str(tmp_path / "t"), "auto", "train", False)


def test_malformed_jsonl_names_file(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t/bad.jsonl").write_text('{"skill": "a", "text": "x"}\n{"skill": \n')
    with pytest.raises(DataError, match=r"bad.jsonl: line 2: not valid JSON"):
        inspect(str(tmp_path / "t"), "auto", "train", False)


def test_corrupt_parquet_names_file(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t/bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=r"bad.parquet: unreadable parquet file"):
        inspect(str(tmp_path / "t"), "auto", "train", False)


def test_null_skill_names_row(tmp_path):
    write_jsonl(tmp_path / "t/x.jsonl", [{"skill": "a", "text": "q"}, {"skill": None, "text": "r"}])
    with pytest.raises(DataError, match=r"x.jsonl: line 2: no skill"):
        inspect(str(tmp_path / "t"), "auto", "train", False)


def test_missing_path_and_empty_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        inspect(str(tmp_path / "nope"), "auto", "train", False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .parquet or .jsonl files"):
        inspect(str(tmp_path / "empty"), "auto", "train", False)


def test_requested_skill_without_rows_is_named(tmp_path):
    write_jsonl(tmp_path / "t/x.jsonl", [{"skill": "a", "input_ids": [1, 2]}])
    write_jsonl(tmp_path / "v/x.jsonl", [{"skill": "a", "input_ids": [1, 2]}])
    cfg = config.from_dict(
        {
            "data": {
                "train": str(tmp_path / "t"),
                "eval": str(tmp_path / "v"),
                "train_skills": ["a", "b"],
            }
        }
    )
    with pytest.raises(DataError, match=r"data.train_skills: skill\(s\) \['b'\] have no rows"):
        prepare(cfg)


@pytest.mark.parametrize(
    "row, words",
    [
        ({"input_ids": [[1, 99]], "loss_mask": [[0, 1]]}, "token id 99 outside the vocabulary"),
        ({"input_ids": [[1, 2]], "loss_mask": [[0, 1, 1]]}, "loss_mask has 3 entries"),
        ({"input_ids": [[1, 2]], "loss_mask": [[0, 0]]}, "no token has loss"),
    ],
)
def test_bad_rows_name_file_row_and_skill(row, words):
    t = pa.table({"row_id": [7], "skill": ["s"], "path": ["/data/f.parquet"], **row})
    with pytest.raises(DataError) as err:
        tokenize_batch(t, ["s"], 8, 10, None)
    msg = str(err.value)
    assert "/data/f.parquet (row_id 7)" in msg and "skill 's'" in msg and words in msg


def test_rows_of_other_skills_are_dropped_and_lists_kept():
    t = pa.table({"skill": ["s", "x", "s"], "input_ids": [[1, 2], [3], [4, 5, 6]]})
    out = tokenize_batch(t, ["s"], 8, 10, None)
    assert out.column("skill").to_pylist() == ["s", "s"]
    assert out.column("input_ids").to_pylist() == [[1, 2], [4, 5, 6]]
    assert "loss_mask" not in out.column_names


def test_short_loss_mask_is_caught_before_training_naming_line_and_skill(tmp_path):
    rows = [
        {"skill": "a", "input_ids": [1, 2, 3], "loss_mask": [0, 1, 1]},
        {"skill": "b", "input_ids": [1, 2, 3], "loss_mask": [0, 1]},
    ]
    write_jsonl(tmp_path / "t/x.jsonl", rows)
    with pytest.raises(DataError) as err:
        inspect(str(tmp_path / "t"), "auto", "train", True)
    assert str(err.value).endswith(
        "x.jsonl: line 2, skill 'b': loss_mask has 2 entries, input_ids has 3; expected equal "
        "lengths"
    )


def test_rows_without_a_loss_mask_beside_rows_with_one():
    """A JSONL file where only some rows carry loss_mask: the others (null) train on every
    token; a given mask of the wrong length is still refused, naming its skill."""
    t = pa.table(
        {
            "skill": ["a", "b", "a"],
            "input_ids": [[1, 2, 3], [1, 2, 3, 4], [2, 2]],
            "loss_mask": [None, [0, 0, 1, 1], None],
        }
    )
    out = tokenize_batch(t, None, 8, 10, None)
    assert out.column("loss_mask").to_pylist() == [[1, 1, 1], [0, 0, 1, 1], [1, 1]]
    bad = t.set_column(2, "loss_mask", pa.array([None, [0, 1], None], pa.list_(pa.int64())))
    with pytest.raises(DataError, match="skill 'b': loss_mask has 2 entries, input_ids has 4"):
        tokenize_batch(bad, None, 8, 10, None)


def test_our_error_is_found_in_a_ray_data_task_traceback():
    """Ray Data re-raises a failed map task as UserCodeException without our error object;
    the error is rebuilt from the task's traceback text, class and message."""
    from ray.exceptions import RayTaskError

    from skillit_ray.remote import find_cause

    text = (
        'Traceback (most recent call last):\n  File "pipeline.py", line 1, in f\n'
        "skillit_ray.errors.DataError: x.jsonl: skill 'b': no token has loss\n"
    )
    wrapped = RayTaskError("MapBatches(tokenize_batch)", text, RuntimeError("UDF failed"))
    found = find_cause(wrapped)
    assert isinstance(found, DataError) and str(found) == "x.jsonl: skill 'b': no token has loss"
    assert find_cause(RayTaskError("f", "Traceback ...\nValueError: other\n", ValueError())) is None
