"""Sweeps on Ray Tune: each trial is a full skillit-ray run (a TorchTrainer inside a trial).

Train V2 trainers cannot be handed to a Tuner; a Tune function trainable builds and fits the
TorchTrainer and forwards its per-round reports with TuneReportCallback (docs/decisions.md).
"""

from __future__ import annotations

import copy
import csv
import itertools
import json
import os
import re
import time
from dataclasses import dataclass

import numpy as np
import yaml

from skillit_ray import config as config_mod
from skillit_ray.config import Config
from skillit_ray.errors import ConfigError
from skillit_ray.loggers import tune_callbacks

SPACES = ("grid", "choice", "uniform", "loguniform")


@dataclass
class SweepSpec:
    """A sweep: the base config, the searched keys, and how trials are judged."""

    base: dict
    params: dict  # dotted key -> list (grid) or {"choice"|"uniform"|"loguniform": [...]}
    seeds: int = 1
    metric: str = "mean_eval_loss"
    num_samples: int = 1
    max_concurrent: int | None = None
    asha: bool = False
    budget_steps: int | None = None

    @property
    def mode(self) -> str:
        return "max" if "acc" in self.metric else "min"


def parse_param(text: str) -> tuple[str, list]:
    """'policy.params.eta=0.1,0.2' -> ('policy.params.eta', [0.1, 0.2])."""
    if "=" not in text:
        raise ConfigError(f"--param '{text}': expected dotted.key=v1,v2,...")
    key, values = text.split("=", 1)
    return key.strip(), [yaml.safe_load(v) for v in values.split(",")]


def search_space(spec: SweepSpec) -> dict:
    from ray import tune

    space = {}
    for key, value in spec.params.items():
        config_mod.set_key(Config(), key, None, "sweep.params")  # the key must exist
        if isinstance(value, list):
            space[key] = tune.grid_search(value)
        elif isinstance(value, dict) and len(value) == 1 and next(iter(value)) in SPACES:
            kind, args = next(iter(value.items()))
            space[key] = (
                tune.grid_search(args)
                if kind == "grid"
                else tune.choice(args)
                if kind == "choice"
                else getattr(tune, kind)(*args)
            )
        else:
            raise ConfigError(
                f"sweep.params.{key}: give a list (grid) or one of {{{', '.join(SPACES)}: [...]}}"
            )
    if spec.seeds > 1:
        space["train.seed"] = tune.grid_search(list(range(spec.seeds)))
    return space


def trial_config(base: dict, params: dict, budget_steps: int | None) -> Config:
    cfg = config_mod.from_dict(copy.deepcopy(base), "sweep base config")
    for key, value in params.items():
        config_mod.set_key(cfg, key, value, "sweep")
    if budget_steps:  # T changes at a fixed total budget: steps per round follow
        if budget_steps < cfg.train.rounds:
            raise ConfigError(
                f"sweep: budget_steps={budget_steps} is fewer steps than train.rounds="
                f"{cfg.train.rounds} in trial {params}: every round needs at least one step"
            )
        cfg.train.steps_per_round = budget_steps // cfg.train.rounds
    config_mod.validate(cfg)
    return cfg


def _listed(spec: SweepSpec, kinds: tuple[str, ...]) -> dict[str, list]:
    """Swept keys given as a plain list (a grid) or as {kind: [...]} for one of ``kinds``."""
    out = {}
    for key, value in spec.params.items():
        if isinstance(value, dict) and next(iter(value), None) in kinds:
            value = next(iter(value.values()))
        if isinstance(value, list):
            out[key] = value
    return out


def check_grid(spec: SweepSpec) -> list[Config]:
    """Build every grid point's config before any trial starts, so a bad value (e.g. more
    rounds than budget steps) is one clear error instead of a failed trial."""
    grid = _listed(spec, ("grid", "choice"))
    return [
        trial_config(spec.base, dict(zip(grid, point, strict=True)), spec.budget_steps)
        for point in itertools.product(*grid.values())
    ]


def preflight(spec: SweepSpec) -> None:
    """Every grid point's config, data, model and policy checked before Ray starts (each
    distinct data section prepared once)."""
    from skillit_ray.data.prepare import prepare
    from skillit_ray.preflight import check_config, check_run

    configs = check_grid(spec)
    for cfg in configs:
        check_config(cfg)
    prepared: dict[str, object] = {}
    for cfg in configs:
        key = json.dumps(cfg.to_dict()["data"], sort_keys=True, default=str)
        if key not in prepared:
            prepared[key] = prepare(cfg)
        check_run(cfg, prepared[key])


def count_trials(spec: SweepSpec) -> int:
    """Grid points x samples x seeds (choices and distributions are sampled, not crossed)."""
    n = spec.num_samples * spec.seeds
    for values in _listed(spec, ("grid",)).values():
        n *= len(values)
    return n


def _progress(total: int, metric: str):
    """A Tune callback printing each finished trial with its metric, elapsed time and ETA."""
    from ray import tune

    from skillit_ray.progress import fmt_duration

    class SweepProgress(tune.Callback):
        def __init__(self):
            self.t0, self.done = time.time(), 0

        def _line(self, trial, what: str) -> None:
            self.done += 1
            elapsed = time.time() - self.t0
            eta = elapsed / self.done * (total - self.done)
            params = ", ".join(f"{k}={v}" for k, v in (trial.config or {}).items())
            value = (trial.last_result or {}).get(metric)
            shown = f"{metric} {value:.4f}" if isinstance(value, float) else "no metric"
            print(
                f"sweep: trial {self.done}/{total} {what} ({params}): {shown} | "
                f"{fmt_duration(elapsed)} elapsed, ETA {fmt_duration(eta)}",
                flush=True,
            )

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._line(trial, "done")

        def on_trial_error(self, iteration, trials, trial, **info):
            self._line(trial, "failed")

    return SweepProgress()


_UNSAFE = re.compile(r"[^A-Za-z0-9._,=+-]")


def trial_name(params: dict, trial_id: str) -> str:
    """A trial's name and folder: its swept values and its index, e.g. 'eta=0.5,rounds=4_00001'
    (a key by its last part where that is unambiguous; any character outside letters, digits
    and ``._,=+-`` becomes '_', so the name is a folder name on any filesystem)."""
    short = [key.rsplit(".", 1)[-1] for key in params]
    parts = []
    for key, name in zip(params, short, strict=True):
        value = params[key]
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        parts.append(f"{name if short.count(name) == 1 else key}={text}")
    return f"{_UNSAFE.sub('_', ','.join(parts))[:120]}_{trial_id.rsplit('_', 1)[-1]}"


def _tune_trial_name(trial) -> str:
    """Tune's trial_name_creator and trial_dirname_creator: its folders, MLflow runs and our
    trials/ folders share the name."""
    return trial_name(trial.config, trial.trial_id)


def _report_steps():
    """Tune's TuneReportCallback, adding ``timesteps_total`` = the optimizer step: Tune's
    TensorBoard and MLflow callbacks plot against it when a result has it (else against the
    report count), so a sweep's logs share a single run's x-axis."""
    from ray.tune.integration.ray_train import TuneReportCallback

    class ReportSteps(TuneReportCallback):
        def after_report(self, run_context, metrics, checkpoint):
            first = {**metrics[0], "timesteps_total": metrics[0]["step"]}
            super().after_report(run_context, [first, *metrics[1:]], checkpoint)

    return ReportSteps()


def _trainable(spec: SweepSpec, sweep_dir: str):
    def trial(params: dict) -> None:
        from ray import tune

        from skillit_ray import launch

        cfg = trial_config(spec.base, params, spec.budget_steps)
        ctx = tune.get_context()
        cfg.run.name = f"trial_{ctx.get_trial_id()}"
        cfg.run.loggers = []  # a sweep logs through Tune's callbacks (tune_callbacks), once
        launch.run(
            cfg,
            out=os.path.join(sweep_dir, "trials", ctx.get_trial_name()),
            echo=False,
            callbacks=[_report_steps()],
        )

    return trial


def sweep(spec: SweepSpec, out: str, echo: bool = True) -> dict:
    """Run the sweep; writes results.csv, results.md, best_config.yaml and sweep.png to out."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    check_grid(spec)
    out = os.path.abspath(out)
    os.makedirs(out, exist_ok=True)
    # Tune's console reporter ignores verbose=0 unless the legacy output engine is chosen.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    base = config_mod.from_dict(copy.deepcopy(spec.base))
    workers = base.train.num_workers * base.train.cpus_per_worker
    import ray

    from skillit_ray.cluster import join_cluster
    from skillit_ray.data.prepare import prepare

    data = prepare(base)
    join_cluster(base, data, "a sweep")
    shared = base.run.storage_path
    if shared and "://" not in shared:  # Tune takes an absolute path or a URI
        shared = os.path.abspath(shared)
    # One token cache for the whole sweep: trials find it made (a trial that changes the
    # data settings makes its own).
    data.cache(echo)

    cpus = int(ray.cluster_resources().get("CPU", 1))
    # Each trial holds 0.01 CPU plus its workers'; one whole CPU must stay free for Ray Data
    # tasks, or the trials' pipelines starve and every trial hangs (docs/decisions.md).
    concurrent = spec.max_concurrent or max(1, int((cpus - 1) // (workers + 0.01)))
    scheduler = None
    if spec.asha:
        scheduler = ASHAScheduler(
            time_attr="training_iteration",
            max_t=base.train.rounds,
            grace_period=1,
            reduction_factor=2,
        )
    t0 = time.time()
    tuner = tune.Tuner(
        tune.with_resources(_trainable(spec, out), {"cpu": 0.01}),
        param_space=search_space(spec),
        tune_config=tune.TuneConfig(
            metric=spec.metric,
            mode=spec.mode,
            scheduler=scheduler,
            num_samples=spec.num_samples,
            max_concurrent_trials=concurrent,
            trial_name_creator=_tune_trial_name,
            trial_dirname_creator=_tune_trial_name,
        ),
        run_config=tune.RunConfig(
            # on shared storage, a name per sweep: a reused name resumes the old experiment
            name=f"tune-{os.path.basename(out)}" if shared else "tune",
            storage_path=shared or os.path.join(out, "ray"),
            verbose=0,
            callbacks=([_progress(count_trials(spec), spec.metric)] if echo else [])
            + tune_callbacks(base.run.loggers, out, base.run.name),
        ),
    )
    grid = tuner.fit()
    rows = _rows(grid, spec)
    best = _best(rows, spec)
    _write(out, rows, best, spec)
    summary = {
        "trials": len(rows),
        "finished": sum(r["status"] == "ok" for r in rows),
        "best_params": best,
        "wall_s": time.time() - t0,
        "concurrent": concurrent,
    }
    with open(os.path.join(out, "sweep_summary.json"), "w") as fh:
        json.dump(summary, fh, indent=1)
    if echo:
        print(results_table(rows, spec))
        print(f"best {spec.metric}: {best}; files in {out}")
    return summary


def _rows(grid, spec: SweepSpec) -> list[dict]:
    rows = []
    for res in grid:
        m = res.metrics or {}
        params = {k: v for k, v in (res.config or {}).items()}
        rows.append(
            {
                "params": params,
                "status": "error" if res.error else "ok",
                "rounds_done": (m.get("round", -1) or 0) + 1 if m else 0,
                "metric": m.get(spec.metric),
                "per_skill": {
                    k: v for k, v in m.items() if k.startswith(("eval_loss/", "eval_acc/"))
                },
            }
        )
    return rows


def _best(rows: list[dict], spec: SweepSpec) -> dict:
    """Parameters (seed excluded) with the best metric averaged over seeds."""
    groups: dict[str, list] = {}
    for r in rows:
        if r["metric"] is None or r["status"] != "ok":
            continue
        key = json.dumps(
            {k: v for k, v in r["params"].items() if k != "train.seed"}, sort_keys=True
        )
        groups.setdefault(key, []).append(r["metric"])
    if not groups:
        raise ConfigError(f"sweep: no trial reported '{spec.metric}'")
    pick = min if spec.mode == "min" else max
    return json.loads(pick(groups, key=lambda k: np.mean(groups[k])))


def results_table(rows: list[dict], spec: SweepSpec) -> str:
    keys = sorted({k for r in rows for k in r["params"]})
    head = "| " + " | ".join([*keys, spec.metric, "rounds", "status"]) + " |"
    lines = [head, "|" + "---|" * (len(keys) + 3)]
    for r in sorted(rows, key=lambda r: [str(r["params"].get(k)) for k in keys]):
        metric = "n/a" if r["metric"] is None else f"{r['metric']:.4f}"
        cells = [str(r["params"].get(k)) for k in keys] + [
            metric,
            str(r["rounds_done"]),
            r["status"],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _write(out: str, rows: list[dict], best: dict, spec: SweepSpec) -> None:
    with open(os.path.join(out, "results.md"), "w") as fh:
        fh.write(results_table(rows, spec) + "\n")
    skills = sorted({k for r in rows for k in r["per_skill"]})
    keys = sorted({k for r in rows for k in r["params"]})
    with open(os.path.join(out, "results.csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*keys, spec.metric, "rounds_done", "status", *skills])
        for r in rows:
            w.writerow(
                [r["params"].get(k) for k in keys]
                + [r["metric"], r["rounds_done"], r["status"]]
                + [r["per_skill"].get(s) for s in skills]
            )
    cfg = trial_config(spec.base, best, spec.budget_steps)
    with open(os.path.join(out, "best_config.yaml"), "w") as fh:
        fh.write(config_mod.to_yaml(cfg))
    plot(rows, spec, os.path.join(out, "sweep.png"))


def plot(rows: list[dict], spec: SweepSpec, path: str) -> None:
    """The metric (mean over seeds) over the first two swept keys: a heatmap, or a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in spec.params][:2]
    ok = [r for r in rows if r["metric"] is not None]
    xs = sorted({r["params"][keys[0]] for r in ok}, key=str)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    if len(keys) == 1:
        ys = [np.mean([r["metric"] for r in ok if r["params"][keys[0]] == x]) for x in xs]
        ax.plot(range(len(xs)), ys, marker="o")
        ax.set_xticks(range(len(xs)), [str(x) for x in xs])
        ax.set_xlabel(keys[0])
        ax.set_ylabel(spec.metric)
    else:
        zs = sorted({r["params"][keys[1]] for r in ok}, key=str)
        grid = np.full((len(zs), len(xs)), np.nan)
        for i, z in enumerate(zs):
            for j, x in enumerate(xs):
                vals = [
                    r["metric"]
                    for r in ok
                    if r["params"][keys[0]] == x and r["params"][keys[1]] == z
                ]
                if vals:
                    grid[i, j] = np.mean(vals)
        im = ax.imshow(grid, cmap="viridis_r" if spec.mode == "min" else "viridis")
        ax.set_xticks(range(len(xs)), [str(x) for x in xs])
        ax.set_yticks(range(len(zs)), [str(z) for z in zs])
        ax.set_xlabel(keys[0])
        ax.set_ylabel(keys[1])
        for i in range(len(zs)):
            for j in range(len(xs)):
                ax.text(j, i, f"{grid[i, j]:.3f}", ha="center", va="center", color="w")
        fig.colorbar(im, ax=ax, label=f"{spec.metric} (mean over seeds)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
