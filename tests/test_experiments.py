"""Experiment scripts: every experiment's runs are valid configs and policies, and the quick
mode of one runs end to end (graph learning, a run that depends on another, tables, report)."""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from experiments import run
from experiments.suite import EXPERIMENTS
from skillit_ray.records import read_metrics
from tests.parallel import Outcome, at_once


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_every_run_of_every_experiment_is_valid(name, capsys):
    planned = run.main([name, "--quick", "--seeds", "2", "--dry-run"])
    assert len(planned) == 2 * len(EXPERIMENTS[name].arms)
    assert f"{len(planned)} runs planned" in capsys.readouterr().out
    arms = {cfg["policy"]["name"] for cfg in planned.values()}
    assert "skillit" in arms and arms & {"random", "target", "stratified"}


# Arms each quick run trains (default: one SKILL-IT arm, whose graph is learned for the
# experiment's own train/eval skills). lego_pt's doremi pulls in random, its reference run.
QUICK_ARMS = {"lego_pt": "doremi,skillit"}


@dataclass
class Quick:
    args: list[str]
    out: Path
    outcome: Outcome  # of run.main

    def results(self) -> dict:
        return self.outcome.get()


def run_main(args: list[str]) -> dict:
    return run.main(args)


@pytest.fixture(scope="module")
def quick(ray_session, tmp_path_factory) -> dict[str, Quick]:
    """Every experiment's quick mode, two at a time (tests/parallel.py): each `run.main` is a
    Ray task (its graph learning and runs are nested tasks) running one arm at a time, so at
    most two runs hold CPUs. Each experiment has its own data cache: no two tasks generate one
    folder."""
    root = tmp_path_factory.mktemp("experiments")
    jobs = {}
    for name in sorted(EXPERIMENTS):
        args = [name, "--quick", "--seeds", "1", "--arms", QUICK_ARMS.get(name, "skillit")]
        args += ["--parallel", "1"]
        args += ["--out", str(root / name), "--set", f"data.cache_dir={root / 'cache' / name}"]
        jobs[name] = (args,)
    done = at_once(run_main, jobs)
    return {name: Quick(args, root / name, done[name]) for name, (args,) in jobs.items()}


def test_quick_lego_experiment(quick):
    q = quick["lego_pt"]
    results, out = q.results(), q.out
    assert list(results) == ["random", "skillit", "doremi"]
    for r in results.values():
        assert 0.0 <= r["acc_full"]["mean"] <= 1.0 and r["loss_full"]["mean"] > 0
        assert r["steps"] == [4, 8]
    saved = json.loads((out / "results.json").read_text())
    assert saved["results"] == json.loads(json.dumps(results))
    md = (out / "results.md").read_text()
    assert all(f"| {label} |" in md for label in results)
    doremi = yaml.safe_load((out / "runs/doremi/seed0/config.yaml").read_text())
    assert doremi["policy"]["params"]["reference"] == str(out / "runs/random/seed0")
    assert len(list(out.glob("graph-*.json"))) == 1 and (out / "report" / "graph.png").exists()


def test_quick_ood_experiment_and_rerun_keeps_finished_runs(quick):
    # out of domain: a rectangular graph (5 train skills x 1 eval skill) feeds SKILL-IT
    q = quick["instruct_ood"]
    first, out = q.results(), q.out
    (graph,) = out.glob("graph-*.json")
    g = json.loads(graph.read_text())
    assert len(g["train_skills"]) == 5 and g["eval_skills"] == ["instruct/es/sort"]
    mixtures = [
        json.loads(line)["mixture"] for line in open(out / "runs/skillit/seed0/metrics.jsonl")
    ]
    assert all(set(m) == set(g["train_skills"]) for m in mixtures)
    stamp = (out / "runs/skillit/seed0/summary.json").stat().st_mtime_ns
    # the same command again keeps the finished run and the graph: nothing retrains
    assert run.main(q.args) == first
    assert (out / "runs/skillit/seed0/summary.json").stat().st_mtime_ns == stamp
    assert list(out.glob("graph-*.json")) == [graph]


@pytest.mark.parametrize("name", sorted(set(EXPERIMENTS) - {"lego_pt", "instruct_ood"}))
def test_quick_mode_of_each_other_experiment(name, quick):
    q = quick[name]
    results, out = q.results(), q.out
    assert list(results) == ["skillit"] and results["skillit"]["steps"] == [4, 8]
    cfg = yaml.safe_load((out / "runs/skillit/seed0/config.yaml").read_text())
    learned = list(out.glob("graph-*.json"))
    if EXPERIMENTS[name].learn_graph:
        assert [str(p) for p in learned] == [cfg["policy"]["params"]["graph"]]
    else:  # the calibrated formats: a chain graph from experiments/graphs
        assert not learned and "/experiments/graphs/" in cfg["policy"]["params"]["graph"]
        assert cfg["data"]["generator_params"]["format"] in ("scratchpad", "reversed")
    g = json.loads(open(cfg["policy"]["params"]["graph"]).read())
    evals = cfg["data"]["eval_skills"]
    if EXPERIMENTS[name].learn_graph:  # learned for exactly the run's eval skills
        assert g["eval_skills"] == evals or evals is None
    else:  # a measured graph over every skill; SKILL-IT reads the eval skills' columns
        assert set(evals or g["eval_skills"]) <= set(g["eval_skills"])
    for sk in results["skillit"]["acc_per_skill"]:
        assert sk in g["eval_skills"]
    assert (out / "report" / "index.html").exists()


def test_steps_to_reference_and_separation_from_golden_runs(tmp_path):
    """The data-efficiency and separation columns, computed from real (golden) runs."""
    from experiments.suite import Arm
    from tests.golden import golden_run_dir

    dirs = {
        ("stratified", 0): golden_run_dir("skillit_5_rounds", tmp_path / "s0", "stratified"),
        ("stratified", 1): golden_run_dir("skillit_5_rounds", tmp_path / "s1", "stratified"),
        ("skillit", 0): golden_run_dir("skillit_5_rounds", tmp_path / "k0", "skillit"),
        ("skillit", 1): golden_run_dir("skillit_5_rounds", tmp_path / "k1", "skillit"),
    }
    # Stratified's seed 0 as the code before 2026-12-07 logged it (policies that read no eval
    # loss were evaluated at round ends only; evaluation does not change training, so the
    # round-end records are the same).
    metrics = Path(dirs[("stratified", 0)]) / "metrics.jsonl"
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    for r in rows:
        r["eval_checkpoints"] = [c for c in r["eval_checkpoints"] if c["step"] == r["step"]]
    metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))
    arms = [Arm("stratified", "stratified"), Arm("skillit", "skillit")]
    results = run.aggregate(arms, 2, dirs)
    ref = results["stratified"]
    target = ref["acc_full"]["mean"]
    assert results["skillit"]["steps_to_reference"]["target_acc"] == target
    # Every arm is read on the steps all runs evaluated: the golden stratified runs (recorded
    # when only policies reading eval loss were evaluated inside a round) are evaluated at
    # round ends, SKILL-IT's every eval_every steps too; the finer grid must not count.
    grid = set(results["skillit"]["steps_to_reference"]["grid"])
    runs = {key: read_metrics(f"{d}/metrics.jsonl") for key, d in dirs.items()}
    steps = {}
    for key, rows in runs.items():
        points = run.curve(rows)
        assert len(points) == sum(len(r.eval_checkpoints) for r in rows)
        steps[key] = {step for step, _ in points}
    assert grid == set.intersection(*steps.values())
    assert grid == {r.step for r in read_metrics(str(metrics))}  # the round ends
    assert steps[("skillit", 1)] - grid  # the case the common grid exists for
    for label in ("stratified", "skillit"):
        per_seed = results[label]["steps_to_reference"]["per_seed"]
        for s, got in enumerate(per_seed):
            points = [p for p in run.curve(runs[(label, s)]) if p[0] in grid]
            assert points
            if got is None:
                assert all(acc < target for _, acc in points)
            else:  # the first checkpoint at or above the target, none before it
                assert dict(points)[got] >= target
                assert all(acc < target for step, acc in points if step < got)
    sep = results["skillit"]["vs_reference"]["acc_full"]
    a, b = results["skillit"]["acc_full"], ref["acc_full"]
    assert sep["diff"] == pytest.approx(a["mean"] - b["mean"])
    assert sep["overlap"] == (abs(a["mean"] - b["mean"]) <= a["std"] + b["std"])
    for (label, s), rows in runs.items():
        full = float(np.mean(list(rows[-1].eval_acc.values())))
        assert results[label]["per_seed"]["acc_full"][s] == pytest.approx(full)
    seeds = run.per_seed_table(results)
    assert seeds.splitlines()[0] == "| policy | seed 0 | seed 1 |"
    assert f"{results['skillit']['per_seed']['acc_half'][0]:.3f} / " in seeds
    md = run.table(results)
    assert "steps to stratified's final acc" in md and "| skillit |" in md


def test_calibration_quick_mode_writes_curves_prereq_and_report(tmp_path):
    """experiments/calibrate.py (plain PyTorch, no Ray): curves per mixture and seed, the
    prerequisite test per edge, the first step every skill reaches the target, the tables."""
    from experiments import calibrate

    path = tmp_path / "cal.json"
    calibrate.main(
        ["experiments/lego_scratchpad.yaml", "--quick", "--edges", "1", "--control"]
        + ["--out", str(path)]
    )
    cal = json.loads(path.read_text())
    assert cal["skills"] == [f"lego/depth{d}" for d in range(1, 6)]
    assert cal["train"]["lr_schedule"] == "constant"
    for label in ("stratified", "natural"):
        (r,) = cal["curves"][label]["runs"]
        assert [p["step"] for p in r["curve"]] == [0, 2, 4]
        assert r["reach"] == calibrate.first_reach(r["curve"], cal["skills"], cal["target"])
    assert cal["curves"]["stratified"]["mixture"] == [0.2] * 5
    (edge,) = cal["prereq"]
    assert (edge["from"], edge["to"], len(edge["runs"])) == ("lego/depth1", "lego/depth2", 1)
    (r,) = edge["runs"]
    assert set(r) == {"seed", "alone", "with", "alone_2n"}
    assert r["alone_2n"] != r["alone"]  # twice the steps of the same seed: another model
    md = calibrate.report([str(path)])
    assert "| depth1 -> depth2 | 2 | 1 |" in md and "| 4 |" in md
    assert "j alone 2N: acc" in md and "(equal steps)" in md
    # A run without the control (an older file) hides the column rather than mixing seeds.
    del cal["prereq"][0]["runs"][0]["alone_2n"]
    path.write_text(json.dumps(cal))
    assert "j alone 2N" not in calibrate.report([str(path)])
    curve = [{"step": 0, "acc": {"a": 0.5}}, {"step": 9, "acc": {"a": 0.95}}]
    assert calibrate.first_reach(curve, ["a"], 0.9) == 9
    assert calibrate.first_reach(curve[:1], ["a"], 0.9) is None
