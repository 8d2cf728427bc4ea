"""``skillit-ray report``: one HTML page and PNGs for one run or many (grouped by policy).

Per policy group: the mixture over rounds (stacked area, mean over the group's runs), per-skill
eval loss and accuracy against steps (mean line, min-max band over seeds), rows drawn per skill,
and the skills graph the runs used. Every PNG has a fixed pixel size (``SIZE``) so pages line up.
"""

from __future__ import annotations

import html
import json
import os
import warnings
from dataclasses import dataclass, field

import numpy as np

from skillit_ray.errors import DataError, GraphError
from skillit_ray.records import RoundRecord, read_metrics

SIZE = (1200, 700)  # pixels of every PNG
DPI = 100


@dataclass
class RunData:
    path: str
    policy: str
    seed: int
    rows: list[RoundRecord]
    summary: dict
    graph: str | None = None
    skills: list[str] = field(default_factory=list)
    step0: dict | None = None  #: the initial model's evaluation, when the run wrote it


def load_run(path: str) -> RunData:
    """A run directory's config, metrics and summary; errors name the file."""
    import yaml

    metrics = os.path.join(path, "metrics.jsonl")
    try:
        with open(os.path.join(path, "config.yaml")) as fh:
            cfg = yaml.safe_load(fh)
        rows = read_metrics(metrics)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise DataError(f"{path}: not a readable run directory ({exc})") from None
    rows = [r for r in rows if r.stopped is None]
    if not rows:
        raise DataError(f"{metrics}: no finished rounds to report")
    summary = _json_or_none(os.path.join(path, "summary.json")) or {}
    step0 = _step0(path, cfg)
    return RunData(
        path,
        cfg["policy"]["name"],
        cfg["train"].get("seed", 0),
        rows,
        summary,
        _graph_of(path, cfg.get("policy", {}).get("params", {})),
        list(rows[0].mixture.skills),
        step0,
    )


STEP0_FILE = "eval_step0.json"


def _step0(run_dir: str, raw: dict) -> dict | None:
    """The initial model's evaluation ({"step": 0, "loss", "acc"}): the first point of the
    curves. Computed here, on the run's own config and data (the same seeded model the workers
    start from), and kept in the run directory; None when the data is not at hand. Training
    never computes it: an extra evaluation before round 0 moved the run's numbers in the 7th
    digit (memory layout), and the golden runs must stay bit-identical."""
    path = os.path.join(run_dir, STEP0_FILE)
    found = _json_or_none(path)
    if found is not None:
        return found
    from skillit_ray import config
    from skillit_ray.context import initial_eval
    from skillit_ray.data.prepare import prepare
    from skillit_ray.errors import SkillitError

    try:
        cfg = config.from_dict(raw)
        config.validate(cfg)
        loss, acc = initial_eval(cfg, prepare(cfg))
    except (SkillitError, OSError, ValueError, KeyError):
        return None
    step0 = {"step": 0, "loss": loss, "acc": acc}
    with open(path, "w") as fh:
        json.dump(step0, fh)
    return step0


def _json_or_none(path: str):
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        return json.load(fh)


def _graph_of(run_dir: str, params: dict) -> str | None:
    """The graph a run used: the one it learned (graph.json in its directory), else the first
    policy parameter that names a readable graph file."""
    from skillit_ray.graph import SkillsGraph

    learned = os.path.join(run_dir, "graph.json")
    if os.path.exists(learned):
        return learned
    for value in params.values():
        if isinstance(value, str) and value.endswith(".json") and os.path.isfile(value):
            try:
                SkillsGraph.load(value)
            except GraphError:
                continue
            return value
    return None


def _per_skill(row: RoundRecord, key: str) -> dict[str, float]:
    value = getattr(row, key)
    return value.to_dict() if key == "mixture" else value


def _curves(runs: list[RunData], key: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Steps and, per skill, an array (runs x rounds) of a per-round metric."""
    n = min(len(r.rows) for r in runs)
    steps = np.array([row.step for row in runs[0].rows[:n]])
    skills = sorted({s for r in runs for row in r.rows for s in _per_skill(row, key)})
    vals = {
        s: np.array([[_per_skill(row, key).get(s, np.nan) for row in r.rows[:n]] for r in runs])
        for s in skills
    }
    return steps, vals


def _checkpoint_curves(runs: list[RunData], key: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Steps and, per skill, an array (runs x checkpoints) of ``key`` ("loss" or "acc") at
    every eval checkpoint, from step 0 when the runs wrote it."""

    def points(r: RunData) -> list[dict]:
        first = [r.step0] if r.step0 and all(r2.step0 for r2 in runs) else []
        return first + [cp for row in r.rows for cp in row.eval_checkpoints]

    per_run = [points(r) for r in runs]
    n = min(len(p) for p in per_run)
    steps = np.array([cp["step"] for cp in per_run[0][:n]])
    skills = sorted({s for p in per_run for cp in p[:n] for s in cp.get(key) or {}})
    vals = {
        s: np.array([[(cp.get(key) or {}).get(s, np.nan) for cp in p[:n]] for p in per_run])
        for s in skills
    }
    return steps, vals


def _fig(nplots: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(nplots, 3)
    rows = -(-nplots // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(SIZE[0] / DPI, SIZE[1] / DPI), dpi=DPI, squeeze=False
    )
    for ax in axes.flat[nplots:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:nplots])


def _save(fig, path: str) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)  # no bbox_inches: the size stays SIZE
    import matplotlib.pyplot as plt

    plt.close(fig)


def plot_mixtures(groups: dict[str, list[RunData]], path: str) -> None:
    fig, axes = _fig(len(groups))
    for ax, (policy, runs) in zip(axes, groups.items(), strict=True):
        _, mix = _curves(runs, "mixture")
        # round r's mixture spans [r, r + 1): repeat the last value so it has a width too
        means = [np.append(m.mean(0), m.mean(0)[-1]) for m in mix.values()]
        rounds = np.arange(1, len(means[0]) + 1)
        ax.stackplot(rounds, *means, labels=list(mix), step="post")
        ax.set(title=f"{policy} (n={len(runs)})", xlabel="round", ylabel="mixture", ylim=(0, 1))
    axes[0].legend(fontsize=7, loc="upper left")
    _save(fig, path)


def plot_metric(
    groups: dict[str, list[RunData]], key: str, label: str, path: str, shared_y: bool = False
) -> list[tuple[float, float]]:
    """One panel per skill; one line per policy (mean over runs) with a min-max band, at every
    eval checkpoint; ``shared_y``: every panel on the same y-range. Returns the panels'
    y-ranges as drawn."""
    curves = {p: _checkpoint_curves(runs, key) for p, runs in groups.items()}
    skills = sorted({s for _, vals in curves.values() for s in vals})
    fig, axes = _fig(len(skills))
    for ax, skill in zip(axes, skills, strict=True):
        for policy, (steps, vals) in curves.items():
            if skill not in vals:
                continue
            v = vals[skill]
            # A step no run of this policy evaluated (runs on other grids) is all NaN: a gap
            # in the line, as intended, not a warning.
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "(Mean of empty slice|All-NaN)", RuntimeWarning)
                mean, lo, hi = np.nanmean(v, 0), np.nanmin(v, 0), np.nanmax(v, 0)
            ax.plot(steps, mean, label=policy, marker=".", markersize=3)
            if len(v) > 1:
                ax.fill_between(steps, lo, hi, alpha=0.2)
        ax.set(title=skill, xlabel="step", ylabel=label)
    if shared_y:
        lims = [ax.get_ylim() for ax in axes]
        for ax in axes:
            ax.set_ylim(min(lo for lo, _ in lims), max(hi for _, hi in lims))
    axes[0].legend(fontsize=7)
    drawn = [ax.get_ylim() for ax in axes]
    _save(fig, path)
    return drawn


def plot_samples(groups: dict[str, list[RunData]], path: str) -> None:
    fig, (ax,) = _fig(1)
    skills = sorted({s for runs in groups.values() for r in runs for s in r.skills})
    width = 0.8 / len(groups)
    for i, (policy, runs) in enumerate(groups.items()):
        drawn = [[sum(x.samples.get(s, 0) for x in r.rows) for s in skills] for r in runs]
        totals = np.mean(drawn, axis=0)
        ax.bar(np.arange(len(skills)) + i * width, totals, width, label=policy)
    ax.set_xticks(np.arange(len(skills)) + 0.4 - width / 2, skills, rotation=20, fontsize=8)
    ax.set(ylabel="rows drawn (mean over runs)", title="samples per skill")
    ax.legend(fontsize=7)
    _save(fig, path)


def plot_graph(graph_path: str, path: str) -> None:
    from skillit_ray.graph import SkillsGraph

    fig, (ax,) = _fig(1)
    g = SkillsGraph.load(graph_path)
    im = ax.imshow(g.matrix, cmap="viridis")
    ax.set_xticks(range(len(g.eval_skills)), g.eval_skills, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(g.train_skills)), g.train_skills, fontsize=8)
    ax.set(xlabel="eval skill", ylabel="train skill", title=os.path.basename(graph_path))
    fig.colorbar(im, ax=ax)
    _save(fig, path)


def mean_at(rows: list[RoundRecord], i: int, key: str) -> float:
    """Mean over skills of a per-skill metric in round record ``i`` (nan when absent)."""
    vals = getattr(rows[i], key)
    return float(np.mean(list(vals.values()))) if vals else float("nan")


def _table(groups: dict[str, list[RunData]]) -> str:
    head = "<tr><th>policy</th><th>run</th><th>seed</th><th>rounds</th><th>steps</th>"
    head += "<th>final mean eval loss</th><th>final mean eval acc</th><th>wall s</th></tr>"
    body = []
    for policy, runs in groups.items():
        for r in runs:
            cells = [
                policy,
                r.path,
                r.seed,
                len(r.rows),
                r.rows[-1].step,
                f"{mean_at(r.rows, -1, 'eval_loss'):.4f}",
                f"{mean_at(r.rows, -1, 'eval_acc'):.3f}",
                f"{r.summary.get('wall_s', float('nan')):.1f}",
            ]
            tds = "".join(f"<td>{html.escape(str(c))}</td>" for c in cells)
            body.append(f"<tr>{tds}</tr>")
    return f"<table>{head}{''.join(body)}</table>"


def report(run_dirs: list[str], out: str, shared_y: bool = False) -> dict[str, str]:
    """Write index.html and the PNGs to ``out``; returns {name: path} of what was written.
    ``shared_y``: the per-skill panels of a figure share one y-range."""
    runs = [load_run(p) for p in run_dirs]
    groups: dict[str, list[RunData]] = {}
    for r in runs:
        groups.setdefault(r.policy, []).append(r)
    os.makedirs(out, exist_ok=True)
    pngs = {"mixture": "mixture over rounds", "eval_loss": "per-skill eval loss"}
    plot_mixtures(groups, os.path.join(out, "mixture.png"))
    plot_metric(groups, "loss", "eval loss", os.path.join(out, "eval_loss.png"), shared_y)
    if any(r.rows[-1].eval_acc for r in runs):
        path = os.path.join(out, "eval_acc.png")
        plot_metric(groups, "acc", "eval accuracy", path, shared_y)
        pngs["eval_acc"] = "per-skill eval accuracy"
    plot_samples(groups, os.path.join(out, "samples.png"))
    pngs["samples"] = "rows drawn per skill"
    graph = next((r.graph for r in runs if r.graph), None)
    if graph:
        plot_graph(graph, os.path.join(out, "graph.png"))
        pngs["graph"] = "skills graph"
    figures = "".join(
        f'<h2>{html.escape(title)}</h2><img src="{name}.png" width="{SIZE[0]}">'
        for name, title in pngs.items()
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>skillit-ray report</title>"
        "<style>body{font-family:sans-serif} td,th{padding:2px 8px;border-bottom:1px solid #ccc}"
        "</style></head><body><h1>skillit-ray report</h1>"
        f"{_table(groups)}{figures}</body></html>"
    )
    index = os.path.join(out, "index.html")
    with open(index, "w") as fh:
        fh.write(page)
    written = {name: os.path.join(out, f"{name}.png") for name in pngs}
    written["index"] = index
    return written
