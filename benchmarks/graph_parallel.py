"""Graph learning: wall time of the k ablation runs in parallel on Ray vs one after another.

Both modes run the same runs (same starting models, data and steps) as Ray tasks in one
invocation; "sequential" allows one task at a time, "parallel" as many as the cluster's CPUs.

    python benchmarks/graph_parallel.py [--config experiments/lego_pt.yaml] [--steps 50]
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from skillit_ray import cluster
from skillit_ray import config as config_mod
from skillit_ray.graph_learning import learn


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="experiments/lego_pt.yaml")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--method", default="approximate")
    ap.add_argument("--set", action="append", default=[])
    args = ap.parse_args()
    cfg = config_mod.load(
        args.config, [f"graph.steps={args.steps}", f"graph.method={args.method}", *args.set]
    )
    cluster.ensure_ray(cfg)
    import ray

    cpus = int(ray.cluster_resources().get("CPU", 1))
    walls, graphs = {}, {}
    for mode, limit in (("sequential", 1), ("parallel", None), ("sequential again", 1)):
        cfg.graph.max_parallel = limit
        graphs[mode] = learn(cfg, cfg.graph, echo=False)
        walls[mode] = graphs[mode].provenance["ablation_wall_s"]  # the runs, not data loading
    seq = (walls["sequential"] + walls["sequential again"]) / 2
    report = {
        "config": args.config,
        "method": args.method,
        "steps": args.steps,
        "runs": graphs["parallel"].provenance["runs"],
        "logical_cpus": cpus,
        "physical_cores": os.cpu_count(),
        "wall_s": walls,
        "speedup": seq / walls["parallel"],
        "same_graph": bool(np.allclose(graphs["parallel"].matrix, graphs["sequential"].matrix)),
    }
    print(json.dumps(report, indent=1))
    print(
        f"parallel {walls['parallel']:.1f}s vs sequential {seq:.1f}s -> "
        f"{report['speedup']:.2f}x on {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
