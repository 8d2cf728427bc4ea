"""`skillit-ray report` on real run directories: the page names every PNG, each a valid image
of the fixed size; several runs of one policy become one group with a spread."""

import re
import struct

import numpy as np

from skillit_ray import cli, report
from skillit_ray.graph import SkillsGraph
from tests.golden import golden_run_dir


def png_size(path) -> tuple[int, int]:
    with open(path, "rb") as fh:
        head = fh.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def test_report_of_one_run(checkpointed_run, tmp_path, capsys):
    out = tmp_path / "one"
    assert cli.main(["report", checkpointed_run, "--out", str(out)]) == 0
    assert "index.html" in capsys.readouterr().out
    page = (out / "index.html").read_text()
    shown = re.findall(r'<img src="([^"]+)"', page)
    assert set(shown) == {"mixture.png", "eval_loss.png", "eval_acc.png", "samples.png"}
    for name in shown:
        assert png_size(out / name) == report.SIZE
    assert checkpointed_run in page and "skillit" in page


def test_report_groups_runs_by_policy(tmp_path):
    """Two runs of one policy: one group, mean line and min-max band over both runs (the
    golden runs' real numbers; no training)."""
    first = golden_run_dir("skillit_5_rounds", tmp_path / "a", "skillit", seed=0)
    second = golden_run_dir("tiny_lego_cli", tmp_path / "b", "skillit", seed=1)
    other = golden_run_dir("signals_random", tmp_path / "c", "random")
    runs = [report.load_run(p) for p in (first, second)]
    steps, vals = report._curves(runs, "eval_loss")
    assert steps.tolist() == [40, 80, 120]  # the first run's steps, cut to the shorter run
    assert all(v.shape == (2, 3) for v in vals.values())
    assert vals["lego/depth1"][1].tolist() == [r.eval_loss["lego/depth1"] for r in runs[1].rows]
    written = report.report([first, second, other], str(tmp_path / "both"))
    page = open(written["index"]).read()
    assert page.count("<td>skillit</td>") == 2 and page.count("<td>random</td>") == 1
    assert second in page
    assert set(written) == {"index", "mixture", "eval_loss", "eval_acc", "samples"}
    for name, path in written.items():
        if name != "index":
            assert png_size(path) == report.SIZE


def test_graph_heatmap_size(tmp_path):
    g = SkillsGraph(("a", "b", "c"), ("a", "b", "c"), np.eye(3) * 0.5 + 0.1)
    g.save(str(tmp_path / "g.json"))
    report.plot_graph(str(tmp_path / "g.json"), str(tmp_path / "g.png"))
    assert png_size(tmp_path / "g.png") == report.SIZE


def test_curves_have_every_eval_checkpoint_from_step_0_and_shared_y(tmp_path):
    """The golden run evaluates every 20 steps: 10 checkpoints over 5 rounds, plus the initial
    model's evaluation at step 0 when the run directory has it."""
    import json

    run = golden_run_dir("skillit_5_rounds", tmp_path / "a", "skillit")
    first = report.load_run(run)
    steps, _ = report._checkpoint_curves([first], "loss")
    assert steps.tolist() == list(range(20, 201, 20))
    step0 = {"step": 0, "loss": {s: 3.5 for s in first.skills}, "acc": {}}
    (tmp_path / "a" / "eval_step0.json").write_text(json.dumps(step0))
    steps, vals = report._checkpoint_curves([report.load_run(run)], "loss")
    assert steps.tolist() == [0, *range(20, 201, 20)]
    assert all(v[0, 0] == 3.5 for v in vals.values())
    assert cli.main(["report", run, "--out", str(tmp_path / "r"), "--shared-y"]) == 0
    assert png_size(tmp_path / "r" / "eval_loss.png") == report.SIZE
    # --shared-y: every skill's panel on one y-range (each its own without it)
    groups = {"skillit": [report.load_run(run)]}
    own = report.plot_metric(groups, "loss", "eval loss", str(tmp_path / "own.png"))
    shared = report.plot_metric(groups, "loss", "eval loss", str(tmp_path / "s.png"), True)
    assert len(set(own)) == len(own) > 1 and len(set(shared)) == 1
    assert shared[0] == (min(lo for lo, _ in own), max(hi for _, hi in own))
