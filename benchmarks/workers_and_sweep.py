"""Throughput with 1 and 2 DDP workers, and sweep throughput (trials per hour).

    python benchmarks/workers_and_sweep.py [--config experiments/lego_pt.yaml]

Workers: the same job with train.num_workers = 1 and 2 (one torch thread per worker), training
samples/s in steady state (optimizer steps only) from each run's summary, side by side.
Sweep: a 2 x 2 grid (eta x T at a fixed step budget) of full runs on Ray Tune; trials per hour
= trials / wall time of the whole sweep.
"""

from __future__ import annotations

import argparse
import json
import tempfile

from skillit_ray import cluster, launch
from skillit_ray import config as config_mod
from skillit_ray.tune import SweepSpec, sweep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="experiments/lego_pt.yaml")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--sweep-steps", type=int, default=60, help="total steps of a sweep trial")
    args = ap.parse_args()
    base = [f"train.rounds={args.rounds}", f"train.steps_per_round={args.steps}"]
    report = {"config": args.config, "rounds": args.rounds, "steps_per_round": args.steps}
    for workers in (1, 2):
        cfg = config_mod.load(args.config, [*base, f"train.num_workers={workers}"])
        cluster.ensure_ray(cfg)
        with tempfile.TemporaryDirectory() as out:
            s = launch.run(cfg, out=out, echo=False)
        report[f"workers_{workers}"] = {
            "train_samples_per_s": s["train_samples_per_s"],
            "fit_s": s["fit_s"],
            "startup_s": s["startup_s"],
        }
    w1, w2 = (report[f"workers_{w}"]["train_samples_per_s"] for w in (1, 2))
    report["two_vs_one"] = w2 / w1
    cfg = config_mod.load(args.config, ["train.eval_every=null"])
    spec = SweepSpec(
        cfg.to_dict(),
        {"policy.params.eta": [0.1, 0.5], "train.rounds": [2, 4]},
        budget_steps=args.sweep_steps,
    )
    with tempfile.TemporaryDirectory() as out:
        sw = sweep(spec, out, echo=False)
    report["sweep"] = {
        "trials": sw["trials"],
        "finished": sw["finished"],
        "concurrent": sw["concurrent"],
        "wall_s": sw["wall_s"],
        "trial_steps": args.sweep_steps,
        "trials_per_hour": sw["trials"] / sw["wall_s"] * 3600,
    }
    print(json.dumps(report, indent=1))
    print(
        f"1 worker {w1:.0f} samples/s, 2 workers {w2:.0f} -> {report['two_vs_one']:.2f}x; "
        f"sweep {report['sweep']['trials_per_hour']:.0f} trials/hour "
        f"({args.sweep_steps}-step trials, {sw['concurrent']} at once)"
    )


if __name__ == "__main__":
    main()
