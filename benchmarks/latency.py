"""Per-round costs that grow with the number of skills, measured side by side in one run.

- coordinator round trip: rank 0's ``report`` (its round record, with eval and train losses,
  checkpoints and sampler state for every skill; the policy update) + ``get_mixture`` on the
  real coordinator actor of a local Ray cluster, SKILL-IT with a dense graph;
- policy update: SKILL-IT's ``update`` in-process, dense K x K graph (identity above
  ``--dense-max``), K = 10 .. 10,000;
- round plan: ``make_plan`` (largest-remainder counts + shuffled slots), K = 10 .. 10,000.

    python benchmarks/latency.py [--skills 10,100,1000,10000] [--repeats 50]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from skillit_ray.data.plan import make_plan  # noqa: E402
from skillit_ray.graph import SkillsGraph  # noqa: E402
from skillit_ray.mixture import Mixture, PolicyContext  # noqa: E402
from skillit_ray.policy import build_policy  # noqa: E402
from skillit_ray.records import RoundRecord  # noqa: E402


def context(k: int) -> PolicyContext:
    skills = tuple(f"s{i}" for i in range(k))
    return PolicyContext(
        skills, skills, {s: 1.0 / k for s in skills}, 10, 100, 32, 0, {s: 1000 for s in skills}
    )


def dense_graph(k: int, d: str) -> str:
    skills = [f"s{i}" for i in range(k)]
    rng = np.random.default_rng(0)
    path = os.path.join(d, f"graph{k}.json")
    SkillsGraph(tuple(skills), tuple(skills), rng.uniform(0, 1, (k, k))).save(path)
    return path


def record(ctx: PolicyContext, r: int) -> RoundRecord:
    """A round as rank 0 reports it; the sampler's per-skill state rides along every round."""
    rng = np.random.default_rng(r)
    loss = dict(zip(ctx.eval_skills, rng.uniform(0.5, 2.0, len(ctx.eval_skills)).tolist()))
    state = {s: r for s in ctx.train_skills}
    return RoundRecord(
        round=r,
        step=100 * (r + 1),
        mixture=Mixture.uniform(ctx.train_skills),
        samples={},
        eval_loss=loss,
        eval_acc={},
        train_loss=loss,
        eval_checkpoints=[{"step": 100 * (r + 1), "loss": loss, "acc": {}}],
        consumed={"epoch": state, "cursor": state, "drawn": state},
    )


def ms(times: list[float]) -> dict:
    a = np.array(times) * 1e3
    return {"median_ms": float(np.median(a)), "p95_ms": float(np.percentile(a, 95))}


def policy_update(k: int, graph: str, repeats: int) -> dict:
    ctx = context(k)
    pol = build_policy("skillit", {"graph": graph, "eta": 0.5})
    pol.init(ctx)
    obs = [record(ctx, r).observation() for r in range(repeats)]
    times = []
    for o in obs:
        t = time.perf_counter()
        pol.update(o)
        times.append(time.perf_counter() - t)
    return ms(times)


def round_plan(k: int, repeats: int) -> dict:
    probs = np.random.default_rng(k).dirichlet(np.ones(k))
    times = []
    for r in range(repeats):
        t = time.perf_counter()
        make_plan(probs, 100, 32, 0, r)
        times.append(time.perf_counter() - t)
    out = ms(times)
    out["plans_per_s"] = 1e3 / out["median_ms"]
    return out


def coordinator_round_trip(k: int, graph: str, repeats: int) -> dict:
    import ray

    from skillit_ray.coordinator import Coordinator, pack

    ctx = context(k)
    coord = Coordinator.remote("skillit", {"graph": graph, "eta": 0.5}, ctx)
    ray.get(coord.get_mixture.remote(0))
    times = []
    for r in range(repeats):
        rec = record(ctx, r)
        t = time.perf_counter()
        ray.get(coord.report.remote(pack(rec)))
        ray.get(coord.get_mixture.remote(r + 1))
        times.append(time.perf_counter() - t)
    ray.kill(coord)
    return ms(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skills", default="10,100,1000,10000")
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--dense-max", type=int, default=2000)
    args = ap.parse_args()
    ks = [int(k) for k in args.skills.split(",")]
    import ray

    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="warning",
    )
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for k in ks:
            # A dense JSON graph of 10,000 skills would be ~2 GB of text: above --dense-max the
            # identity graph (graph: null, the paper's no-graph ablation) is used.
            graph = dense_graph(k, d) if k <= args.dense_max else None
            row = {"skills": k, "graph": "dense" if graph else "identity"}
            row["policy_update"] = policy_update(k, graph, args.repeats)
            row["round_plan"] = round_plan(k, args.repeats)
            row["coordinator_round_trip"] = coordinator_round_trip(k, graph, args.repeats)
            rows.append(row)
            print(
                f"K={k:>6} ({row['graph']} graph): SKILL-IT update "
                f"{row['policy_update']['median_ms']:.3f} ms "
                f"(p95 {row['policy_update']['p95_ms']:.3f}); round plan "
                f"{row['round_plan']['median_ms']:.3f} ms; coordinator report+get_mixture "
                f"{row['coordinator_round_trip']['median_ms']:.2f} ms "
                f"(p95 {row['coordinator_round_trip']['p95_ms']:.2f})",
                flush=True,
            )
    ray.shutdown()
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
