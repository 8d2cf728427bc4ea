"""Run one experiment: every arm (policy) over N seeds, then tables and plots.

    python experiments/run.py lego_pt [--seeds 5] [--out DIR] [--arms a,b] [--set k=v] [--quick]

Steps: learn the skills graph once with ``graph learn`` (seed 0, the recipe's graph settings)
when an arm uses it, or reuse ``DIR/graph-<settings hash>.json``; run the arms as Ray tasks, as
many at once as the CPUs allow (each a full ``skillit-ray run`` with its own run directory under
``DIR/runs/<arm>/seed<k>``; one already finished with the same config is kept); write
``results.json``, ``results.md`` (mean +- std over seeds of the mean eval accuracy and loss at
half and full budget, per-skill final accuracy) and ``report/`` (``skillit-ray report`` over
every run, grouped by policy).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from experiments.suite import EXPERIMENTS, QUICK, Arm  # noqa: E402
from skillit_ray import cluster, launch  # noqa: E402
from skillit_ray import config as config_mod  # noqa: E402
from skillit_ray.records import read_metrics  # noqa: E402
from skillit_ray.report import mean_at  # noqa: E402


def arm_config(base: dict, arm: Arm, seed: int, graph: str | None, runs: dict) -> dict:
    cfg = json.loads(json.dumps(base))
    params = {}
    for key, value in arm.params.items():
        if value == "{graph}":
            value = graph
        elif isinstance(value, str) and value.startswith("{run:"):
            value = runs[(value[5:-1], seed)]
        params[key] = value
    cfg["policy"] = {"name": arm.policy, "params": params}
    cfg["train"]["seed"] = seed
    cfg["run"]["name"] = f"{arm.label}-s{seed}"
    return cfg


def dry_run(base: dict, arms: list[Arm], seeds: int) -> dict:
    """Build and validate every run's config and policy (a placeholder graph and reference)."""
    from skillit_ray.policy import build_policy

    planned = {}
    for a in arms:
        for s in range(seeds):
            cfg = arm_config(base, a, s, "GRAPH", {(b.label, s): "RUN" for b in arms})
            config_mod.validate(config_mod.from_dict(cfg))
            build_policy(a.policy, cfg["policy"]["params"])
            planned[(a.label, s)] = cfg
    print(f"{len(planned)} runs planned: {', '.join(a.label for a in arms)} x {seeds} seeds")
    return planned


def _remote_run():
    import ray

    @ray.remote(num_cpus=0.01)
    def run_arm(cfg: dict, out: str) -> dict:
        return launch.run(config_mod.from_dict(cfg), out=out, echo=False)

    return run_arm


def graph_path(out: str, base) -> str:
    """The experiment's graph file, named by its settings: rerunning with the same settings
    reuses it (so finished SKILL-IT runs stay valid); other settings learn a new one."""
    blob = json.dumps(base.to_dict(), sort_keys=True).encode()
    return os.path.join(out, f"graph-{hashlib.sha256(blob).hexdigest()[:12]}.json")


def is_finished(cfg: dict, folder: str) -> bool:
    """Whether ``folder`` holds a finished run of exactly this config (then it is not rerun)."""
    if not os.path.exists(os.path.join(folder, "summary.json")):
        return False
    try:
        done = config_mod.load(os.path.join(folder, "config.yaml"))
    except Exception:  # an unreadable old config: run again
        return False
    return done.to_dict() == config_mod.from_dict(cfg).to_dict()


def run_all(base: dict, arms: list[Arm], seeds: int, graph, out: str, parallel: int) -> dict:
    """Run every (arm, seed); arms that reference another arm's run wait for it. Runs already
    finished with the same config (an interrupted or extended experiment) are kept."""
    import ray

    from skillit_ray.progress import fmt_duration

    run_arm = _remote_run()
    dirs = {
        (a.label, s): os.path.join(out, "runs", a.label, f"seed{s}")
        for a in arms
        for s in range(seeds)
    }
    todo = [(a, s) for s in range(seeds) for a in arms]
    pending, done, t0, total, ran = {}, set(), time.time(), len(todo), 0
    while todo or pending:
        ready = [(a, s) for a, s in todo if all((ref, s) in done for ref in a.refs())]
        for a, s in ready[: max(0, parallel - len(pending))]:
            todo.remove((a, s))
            cfg = arm_config(base, a, s, graph, dirs)
            if is_finished(cfg, dirs[(a.label, s)]):
                done.add((a.label, s))
                total -= 1
                print(f"{a.label} seed {s}: finished earlier, kept", flush=True)
                continue
            pending[run_arm.remote(cfg, dirs[(a.label, s)])] = (a, s)
        if not pending:
            continue
        finished, _ = ray.wait(list(pending), num_returns=1)
        a, s = pending.pop(finished[0])
        summary = ray.get(finished[0])
        done.add((a.label, s))
        ran += 1
        elapsed = time.time() - t0
        eta = elapsed / ran * (total - ran)
        print(
            f"[{ran}/{total}] {a.label} seed {s}: mean eval loss "
            f"{summary['final_mean_eval_loss']:.4f}, acc {summary['final_mean_eval_acc'] or 0:.3f} "
            f"({summary['wall_s']:.0f}s) | {fmt_duration(elapsed)} elapsed, "
            f"ETA {fmt_duration(eta)}",
            flush=True,
        )
    return dirs


REFERENCE = "stratified"  # the arm data-efficiency and separations are measured against


def curve(rows: list) -> list[tuple[int, float]]:
    """(step, mean eval accuracy over skills) at every eval checkpoint of a run."""
    out = []
    for r in rows:
        for cp in r.eval_checkpoints:
            if cp["acc"]:
                out.append((cp["step"], float(np.mean(list(cp["acc"].values())))))
    return out


def steps_to_reach(points: list[tuple[int, float]], target: float) -> int | None:
    """The first eval step at which the mean accuracy reaches ``target`` (None: never)."""
    return next((step for step, acc in points if acc >= target - 1e-12), None)


def separation(a: dict, b: dict) -> dict:
    """Difference of two arms' means in pooled standard deviations, and whether their
    mean ± std intervals overlap (the project's 'inside the spread')."""
    diff = a["mean"] - b["mean"]
    pooled = float(np.sqrt((a["std"] ** 2 + b["std"] ** 2) / 2))
    overlap = abs(diff) <= a["std"] + b["std"]
    return {
        "diff": diff,
        "pooled_sd": pooled,
        "in_sd": diff / pooled if pooled else None,
        "overlap": bool(overlap),
    }


def compare(results: dict, curves: dict) -> None:
    """Adds, per arm, the steps to reach the reference arm's final accuracy (the paper's
    data-efficiency framing) and its separation from the reference at half and full budget."""
    ref = results.get(REFERENCE)
    if ref is None or not ref["acc_per_skill"]:
        return
    target = ref["acc_full"]["mean"]
    # Every arm is read on the steps that all arms evaluated: runs from before train.log_eval
    # covered eval_every evaluated only the policies that read eval loss inside a round, and a
    # finer grid alone would make an arm look faster.
    grid = set.intersection(*({step for step, _ in c} for cs in curves.values() for c in cs))
    for label, r in results.items():
        reached = [steps_to_reach([p for p in c if p[0] in grid], target) for c in curves[label]]
        hit = [x for x in reached if x is not None]
        r["steps_to_reference"] = {
            "target_acc": target,
            "grid": sorted(grid),
            "reached": len(hit),
            "of": len(reached),
            "mean": float(np.mean(hit)) if hit else None,
            "std": float(np.std(hit, ddof=1)) if len(hit) > 1 else 0.0 if hit else None,
            "per_seed": reached,
        }
        if label != REFERENCE:
            r["vs_reference"] = {
                k: separation(r[k], ref[k]) for k in ("acc_half", "acc_full", "loss_half")
            }


def aggregate(arms: list[Arm], seeds: int, dirs: dict) -> dict:
    """Per arm: mean and std over seeds of mean eval acc/loss at half and full budget, steps to
    reach the reference arm's final accuracy, and the separation from it."""
    out, curves = {}, {}
    for a in arms:
        per_seed = []
        curves[a.label] = []
        for s in range(seeds):
            rows = read_metrics(os.path.join(dirs[(a.label, s)], "metrics.jsonl"))
            curves[a.label].append(curve(rows))
            half = len(rows) // 2 - 1 if len(rows) > 1 else 0
            per_seed.append(
                {
                    "acc_half": mean_at(rows, half, "eval_acc"),
                    "acc_full": mean_at(rows, -1, "eval_acc"),
                    "loss_half": mean_at(rows, half, "eval_loss"),
                    "loss_full": mean_at(rows, -1, "eval_loss"),
                    "step_half": rows[half].step,
                    "step_full": rows[-1].step,
                    "acc_per_skill": rows[-1].eval_acc,
                    "loss_per_skill": rows[-1].eval_loss,
                }
            )
        stats = {}
        for k in ("acc_half", "acc_full", "loss_half", "loss_full"):
            v = np.array([p[k] for p in per_seed])
            stats[k] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0}
        skills = per_seed[0]["acc_per_skill"]
        stats["acc_per_skill"] = {
            sk: float(np.mean([p["acc_per_skill"][sk] for p in per_seed])) for sk in skills
        }
        # Text corpora have no accuracy: per-skill validation perplexity, exp(token-mean loss),
        # averaged over seeds (the paper's RedPajama run compares sources by perplexity).
        stats["ppl_per_skill"] = {
            sk: float(np.mean([np.exp(p["loss_per_skill"][sk]) for p in per_seed]))
            for sk in per_seed[0]["loss_per_skill"]
        }
        # Per seed too: arms share the model initialisation per seed, so paired differences
        # and bimodal outcomes (a plateau breaks within budget or not) show here, not in a std.
        stats["per_seed"] = {k: [p[k] for p in per_seed] for k in ("acc_half", "acc_full")}
        stats["steps"] = [per_seed[0]["step_half"], per_seed[0]["step_full"]]
        stats["seeds"] = seeds
        out[a.label] = stats
    compare(out, curves)
    return out


def _pm(stat: dict) -> str:
    return f"{stat['mean']:.3f} ± {stat['std']:.3f}"


def table(results: dict) -> str:
    f = _pm
    first = next(iter(results.values()))
    if not first["acc_per_skill"]:
        return _ppl_table(results)
    half, full = first["steps"]
    lines = [
        f"| policy | acc @ {half} steps | acc @ {full} steps | loss @ {half} | loss @ {full} | "
        f"steps to {REFERENCE}'s final acc | vs {REFERENCE} @ {half} | final acc per skill |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, r in results.items():
        per = " ".join(f"{s.split('/', 1)[-1]}={v:.2f}" for s, v in r["acc_per_skill"].items())
        lines.append(
            f"| {label} | {f(r['acc_half'])} | {f(r['acc_full'])} | {f(r['loss_half'])} | "
            f"{f(r['loss_full'])} | {_steps(r)} | {_sep(r)} | {per} |"
        )
    return "\n".join(lines)


def per_seed_table(results: dict) -> str:
    """Mean accuracy over the eval skills per seed, at half / full budget."""
    first = next(iter(results.values()))
    if not first["acc_per_skill"]:
        return ""
    n = len(first["per_seed"]["acc_full"])
    lines = [
        "| policy | " + " | ".join(f"seed {s}" for s in range(n)) + " |",
        "|---|" + "---|" * n,
    ]
    for label, r in results.items():
        half, full = r["per_seed"]["acc_half"], r["per_seed"]["acc_full"]
        cells = " | ".join(f"{h:.3f} / {f:.3f}" for h, f in zip(half, full, strict=True))
        lines.append(f"| {label} | {cells} |")
    return "\n".join(lines)


def _steps(r: dict) -> str:
    st = r.get("steps_to_reference")
    if st is None:
        return "-"
    if not st["reached"]:
        return f"not reached (0/{st['of']})"
    return f"{st['mean']:.0f} ± {st['std']:.0f} ({st['reached']}/{st['of']})"


def _sep(r: dict) -> str:
    """Accuracy difference at half budget, in pooled sd, and whether the spreads overlap."""
    v = (r.get("vs_reference") or {}).get("acc_half")
    if v is None:
        return "-"
    sd = "n/a" if v["in_sd"] is None else f"{v['in_sd']:+.1f} sd"
    return f"{v['diff']:+.3f} ({sd}{', overlap' if v['overlap'] else ''})"


def _ppl_table(results: dict) -> str:
    """Loss and per-skill validation perplexity, for data without accuracy (text)."""
    f = _pm
    first = next(iter(results.values()))
    half, full = first["steps"]
    skills = list(first["ppl_per_skill"])
    names = [s.split("/", 1)[-1] for s in skills]
    lines = [
        f"| policy | loss @ {half} | loss @ {full} | "
        + " | ".join(f"ppl {n}" for n in names)
        + " |",
        "|---|---|---|" + "---|" * len(skills),
    ]
    for label, r in results.items():
        ppl = " | ".join(f"{r['ppl_per_skill'][s]:.2f}" for s in skills)
        lines.append(f"| {label} | {f(r['loss_half'])} | {f(r['loss_full'])} | {ppl} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("experiment", choices=sorted(EXPERIMENTS))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out", default=None)
    ap.add_argument("--arms", default=None, help="comma-separated subset of arm labels")
    ap.add_argument("--set", action="append", default=[], help="config override key=value")
    ap.add_argument("--quick", action="store_true", help="tiny settings, for tests")
    ap.add_argument("--parallel", type=int, default=None, help="runs at once (default: CPUs)")
    ap.add_argument(
        "--dry-run", action="store_true", help="check every run's config and policy, run nothing"
    )
    args = ap.parse_args(argv)
    exp = EXPERIMENTS[args.experiment]
    out = os.path.abspath(args.out or os.path.join(ROOT, "experiments", "results", args.experiment))
    sets = [*exp.sets, *((*QUICK, *exp.quick_data) if args.quick else ()), *args.set]
    base = config_mod.load(os.path.join(ROOT, "experiments", exp.recipe), sets)
    arms = list(exp.arms)
    if args.arms:
        want = args.arms.split(",")
        arms = [a for a in arms if a.label in want]
        needed = set().union(*(a.refs() for a in arms))
        arms = [a for a in exp.arms if a.label in want or a.label in needed]
    if args.dry_run:
        return dry_run(base.to_dict(), arms, args.seeds)
    os.makedirs(out, exist_ok=True)
    cluster.ensure_ray(base)
    from skillit_ray.data.prepare import prepare

    prepare(base)  # generate the data once, before runs share the cache
    graph = None
    if exp.learn_graph and any("{graph}" in a.params.values() for a in arms):
        from skillit_ray.graph_learning import learn

        graph = graph_path(out, base)
        if os.path.exists(graph):
            print(f"graph: reusing {graph} (learned earlier for these settings)")
        else:
            learn(base, base.graph, echo=True).save(graph)
    import ray

    cpus = int(ray.cluster_resources().get("CPU", 1))
    parallel = args.parallel or max(1, cpus - 2)
    t0 = time.time()
    dirs = run_all(base.to_dict(), arms, args.seeds, graph, out, parallel)
    results = aggregate(arms, args.seeds, dirs)
    from skillit_ray.report import report

    report(
        [dirs[(a.label, s)] for a in arms for s in range(args.seeds)], os.path.join(out, "report")
    )
    meta = {
        "experiment": args.experiment,
        "doc": exp.doc,
        "sets": sets,
        "seeds": args.seeds,
        "wall_s": time.time() - t0,
        "graph": graph,
    }
    with open(os.path.join(out, "results.json"), "w") as fh:
        json.dump({"meta": meta, "results": results}, fh, indent=1)
    with open(os.path.join(out, "results.md"), "w") as fh:
        fh.write(
            f"# {args.experiment}\n\n{exp.doc}\n\n"
            f"Settings: {exp.recipe} with {sets}; {args.seeds} seeds.\n\n"
        )
        fh.write(table(results) + "\n")
        seeds = per_seed_table(results)
        if seeds:
            half, full = next(iter(results.values()))["steps"]
            fh.write(f"\nPer seed, mean accuracy at {half} / {full} steps:\n\n{seeds}\n")
    print(table(results))
    return results


if __name__ == "__main__":
    main()
