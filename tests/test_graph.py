"""Skills graph files, normalizations, .npy orientation, and learning a planted edge on Ray."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from skillit_ray import cli, config, launch
from skillit_ray.errors import GraphError
from skillit_ray.graph import SkillsGraph, normalize
from skillit_ray.graph_learning import learn, plan_runs

SK = ("a", "b", "c")


def test_file_round_trip_keeps_names_std_and_provenance(tmp_path):
    g = SkillsGraph(
        SK,
        ("a", "b"),
        np.arange(6.0).reshape(3, 2),
        np.full((3, 2), 0.1),
        {"method": "approximate", "steps": 5},
    )
    g.save(tmp_path / "g.json")
    h = SkillsGraph.load(str(tmp_path / "g.json"))
    assert h.train_skills == SK and h.eval_skills == ("a", "b")
    assert np.array_equal(h.matrix, g.matrix) and np.allclose(h.std, 0.1)
    assert h.provenance == {"method": "approximate", "steps": 5}


def _columns(line: str, n: int = 3) -> list[int]:
    """Where the last ``n`` cells of a table line end (the header's first cell has spaces)."""
    padded = line + " "
    ends = [i for i, c in enumerate(line) if c != " " and padded[i + 1] == " "]
    return ends[-n:]


def test_table_columns_align_and_one_seed_shows_no_spread(capsys, tmp_path):
    train = ("lego/depth1", "lego/depth2", "lego/depth10")
    eval_ = ("lego/depth1", "lego/a_long_skill_name", "other/depth1")
    m = np.array([[0.5, -12.25, 0.0], [1.0, 0.125, -0.5], [3.0, 0.0, 0.0]])
    one = SkillsGraph(train, eval_, m, np.zeros((3, 3)), {"method": "approximate", "seeds": 1})
    g = tmp_path / "g.json"
    one.save(str(g))
    assert cli.main(["graph", "show", str(g)]) == 0
    lines = capsys.readouterr().out.splitlines()[:4]
    assert lines == one.table().splitlines()
    assert "±" not in "".join(lines)  # one seed: the mean alone
    # the same column ends on every line; short names where the last part is unique
    assert len({tuple(_columns(line)) for line in lines}) == 1
    assert lines[0].split()[-3:] == ["lego/depth1", "a_long_skill_name", "other/depth1"]
    assert lines[2].split() == ["lego/depth2", "1.000", "0.125", "-0.500"]
    three = SkillsGraph(train, eval_, m, np.full((3, 3), 0.25), {"seeds": 3})
    lines = three.table().splitlines()
    assert "0.500±0.25" in lines[1] and "-12.250±0.25" in lines[1]
    assert len({tuple(_columns(line)) for line in lines}) == 1


def test_name_checks_say_what_is_missing(tmp_path):
    g = SkillsGraph(SK, SK, np.eye(3))
    with pytest.raises(GraphError, match=r"no eval skill\(s\) \['d'\]"):
        g.select(SK, ("a", "d"), "g.json")
    sub = g.select(("c", "a"), ("a",), "g.json")  # reordered to the run's order
    assert sub.matrix.tolist() == [[0.0], [1.0]]


@pytest.mark.parametrize(
    "content, words",
    [
        ({"train_skills": ["a"], "eval_skills": ["a", "b"], "matrix": [[1.0]]}, "shape (1, 1)"),
        ({"train_skills": ["a"], "eval_skills": ["a"], "matrix": [[float("nan")]]}, "finite"),
        ({"train_skills": ["a"], "eval_skills": ["a"], "matrix": [[float("inf")]]}, "finite"),
        ({"train_skills": ["a"], "matrix": [[1.0]]}, "lacks field(s) ['eval_skills']"),
    ],
)
def test_bad_graph_files(tmp_path, content, words):
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(content))
    with pytest.raises(GraphError) as err:
        SkillsGraph.load(str(p))
    assert "bad.json" in str(err.value) and words in str(err.value)


def test_npy_import_orientation(tmp_path):
    m = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])  # 2 train skills x 3 eval skills
    np.save(tmp_path / "m.npy", m)
    g = SkillsGraph.from_npy(str(tmp_path / "m.npy"), ("t1", "t2"), ("e1", "e2", "e3"))
    assert g.matrix[1, 2] == 6.0  # row = train skill t2, column = eval skill e3
    with pytest.raises(GraphError, match="its transpose fits: pass --transpose"):
        SkillsGraph.from_npy(str(tmp_path / "m.npy"), ("e1", "e2", "e3"), ("t1", "t2"))
    t = SkillsGraph.from_npy(str(tmp_path / "m.npy"), ("e1", "e2", "e3"), ("t1", "t2"), True)
    assert t.matrix[2, 1] == 6.0
    g.to_npy(str(tmp_path / "out.npy"))
    assert np.array_equal(np.load(tmp_path / "out.npy", allow_pickle=False), m)


@pytest.mark.ray
def test_graph_learn_console_is_ours_alone(tmp_path):
    """`skillit-ray graph learn` as a user runs it (its own Ray): a line per finished run, the
    aligned table (one seed: no spread), and no line of Ray's own."""
    import os
    import subprocess
    import sys

    import yaml

    planted_task(tmp_path / "d", rows=100, val=20)
    raw = {
        "data": {
            "train": str(tmp_path / "d/train"),
            "eval": str(tmp_path / "d/val"),
            "cache_dir": str(tmp_path / "cache"),
        },
        "model": {"preset": "gpt2-tiny"},
        "train": {"batch_size": 8, "lr": 1e-2},
    }
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(raw))
    exe = os.path.join(os.path.dirname(sys.executable), "skillit-ray")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    args = [exe, "graph", "learn", str(tmp_path / "g.yaml"), "--steps", "4"]
    proc = subprocess.run(
        [*args, "--out", str(tmp_path / "g.json")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    lines = (proc.stdout + proc.stderr).splitlines()
    assert proc.returncode == 0, "\n".join(lines[-30:])
    ours = ("token cache: ", "graph learn: ", "train \\ eval", "base ", "special ", "wrote ")
    assert not [x for x in lines if not x.startswith(ours)]  # nothing of Ray's
    assert sum(x.startswith("graph learn: ") for x in lines) == 2
    table = [x for x in lines if x.startswith(("train \\ eval", "base ", "special "))]
    assert len(table) == 3 and "±" not in "".join(table)
    assert len({tuple(_columns(x, 2)) for x in table}) == 1


def test_normalizations():
    delta = np.array([[0.4, -0.2], [0.05, 0.6]])
    base = np.array([[2.0, 1.0], [1.0, 2.0]])
    names = ("x", "y")
    assert np.allclose(normalize(delta, base, names, names, "raw", False, None, "keep"), delta)
    rel = normalize(delta, base, names, names, "relative", False, None, "keep")
    assert np.allclose(rel, [[0.2, -0.2], [0.05, 0.3]])
    clip = normalize(delta, base, names, names, "raw", True, None, "zero")
    assert np.allclose(clip, [[0.0, 0.0], [0.05, 0.0]])
    binary = normalize(delta, base, names, names, "raw", True, 0.01, "keep")
    assert np.allclose(binary, [[1.0, 0.0], [0.5, 1.0]])  # the paper's 0.5 off-diagonal edge


def test_run_counts():
    assert len(plan_runs("approximate", SK, SK, 2)) == 6
    assert len(plan_runs("brute-force", SK, SK, 1)) == 9  # k singles + k(k-1) pairs = k^2


def planted_task(root, rows=400, val=40):
    """Two skills where 'base' is, by construction, a prerequisite of 'special'.

    'base' rows ask for f(x) for any of 8 inputs x (a fixed random lookup table); 'special' rows
    ask for f(x1) only, one of base's facts. Training on base teaches the table, so the special
    answer becomes likely: an edge base -> special. Training on special teaches "always answer
    f(x1)", which moves probability away from the other 7 answers base needs: its loss on base
    rises, so no edge special -> base. Noise tokens make rows distinct.
    """
    rng = np.random.default_rng(0)
    f = 11 + rng.permutation(8)  # inputs 3..10 -> answers 11..18

    def rows_of(skill, n, seed):
        r = np.random.default_rng(seed)
        xs = r.integers(0, 8, n) if skill == "base" else np.zeros(n, dtype=int)
        noise = r.integers(20, 30, (n, 2))
        ids = [[1, 2, *map(int, nz), 3 + int(x), 19, int(f[x])] for x, nz in zip(xs, noise)]
        return {"skill": [skill] * n, "input_ids": ids, "loss_mask": [[0] * 6 + [1]] * n}

    for split, n, seed in (("train", rows, 1), ("val", val, 2)):
        (root / split).mkdir(parents=True)
        for k, skill in enumerate(("base", "special")):
            pq.write_table(
                pa.table(rows_of(skill, n, seed * 10 + k)), root / split / f"{skill}.parquet"
            )


def test_learns_the_planted_edge_not_its_reverse(ray_session, tmp_path):
    planted_task(tmp_path / "d")
    cfg = config.from_dict(
        {
            "data": {"train": str(tmp_path / "d/train"), "eval": str(tmp_path / "d/val")},
            "model": {"preset": "gpt2-tiny"},
            "train": {"batch_size": 16, "lr": 1e-2, "seed": 0},
            "graph": {"method": "approximate", "steps": 40, "seeds": 2},
        }
    )
    g = learn(cfg, cfg.graph, echo=False)
    i, j = g.train_skills.index("base"), g.eval_skills.index("special")
    assert g.matrix[i, j] > 0.3  # training on base lowers special's loss a lot
    assert g.matrix[j, i] < 0.0  # training on special raises base's loss
    assert g.std.shape == (2, 2) and g.provenance["seeds"] == 2
    assert g.provenance["runs"] == 4 and g.provenance["dataset_fingerprint"]
    # and, normalised as the paper's binary graph, the edge exists one way only
    binary = normalize(
        g.matrix, np.ones_like(g.matrix), g.train_skills, g.eval_skills, "raw", True, 0.05, "keep"
    )
    assert binary[i, j] == 0.5 and binary[j, i] == 0.0


def test_graph_cli_show_png_and_learn_in_run(ray_session, tmp_path, capsys):
    planted_task(tmp_path / "d", rows=200, val=20)
    raw = {
        "data": {"train": str(tmp_path / "d/train"), "eval": str(tmp_path / "d/val")},
        "model": {"preset": "gpt2-tiny"},
        "train": {"rounds": 2, "steps_per_round": 3, "batch_size": 8, "lr": 1e-2},
        "graph": {"steps": 10},
        "policy": {"name": "skillit", "params": {"graph": "learn"}},
    }
    out = tmp_path / "run"
    launch.run(config.from_dict(raw), out=str(out), echo=False)
    g = SkillsGraph.load(str(out / "graph.json"))
    assert g.train_skills == ("base", "special") and g.provenance["steps"] == 10
    rows = (out / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 2
    png = tmp_path / "g.png"
    assert cli.main(["graph", "show", str(out / "graph.json"), "--png", str(png)]) == 0
    shown = capsys.readouterr().out
    assert "base" in shown and "special" in shown and "method=approximate" in shown
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
