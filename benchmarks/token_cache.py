"""Start-up at any size: the token cache's lazy streams against the old full drain, side by side.

For 1x, 10x and 100x the README demo's train rows (experiments/lego_pt.yaml: 5 LEGO skills,
2000 rows per proportion unit), each code base runs the same one-round job in a fresh process:

- ``new`` (this checkout): ``prepare`` builds the token cache (timed: rows/s and tokens/s per
  core), then the run opens per-skill streams;
- ``old`` (``--old PATH``, a checkout of the code before the cache, e.g. /work/main at the
  merge base): every worker drains its shard of both splits into memory before step 1.

Printed per size and code: model built -> loop ready (the drain, or opening the streams),
model built -> first step done (new code only: the old code does not stamp it), and the
worker's peak RSS. The eval split stays the demo's (1000 rows) at every size.

    python benchmarks/token_cache.py [--old /path/to/old/checkout] [--scales 1,10,100]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def recipe(scale: int, cache_dir: str, steps: int) -> dict:
    return {
        "run": {"name": f"scale{scale}"},
        "data": {
            "generator": "lego",
            "cache_dir": cache_dir,
            "generator_params": {
                "variables": 5,
                "rows_per_skill": 2000 * scale,
                "proportions": [1, 1, 1, 3, 5],
                "val_rows_per_skill": 200,
                "seed": 0,
            },
        },
        "model": {"preset": "gpt2-small-cpu"},
        "train": {
            "rounds": 1,
            "steps_per_round": steps,
            "batch_size": 32,
            "eval_every": None,
            "num_workers": 1,
            "cpus_per_worker": 1,
            "seed": 0,
        },
        "policy": {"name": "stratified", "params": {}},
    }


def child(scale: int, cache_dir: str, steps: int, out_json: str) -> None:
    """One job in this process (the code on sys.path: old or new)."""
    from skillit_ray import config, launch
    from skillit_ray.cluster import ensure_ray
    from skillit_ray.data.prepare import prepare

    cfg = config.from_dict(recipe(scale, cache_dir, steps))
    data = prepare(cfg)  # generates (cached across runs) and inspects
    res: dict = {"train_rows": sum(data.train.rows_per_skill.values())}
    ensure_ray(cfg)
    if hasattr(data, "cache"):  # new code: build the token cache, timed
        import shutil

        shutil.rmtree(data.cache_root, ignore_errors=True)
        t0 = time.time()
        cache = data.cache()
        res["prepare_s"] = time.time() - t0
        res["tokens"] = cache.counts("train").read + cache.counts("eval").read
        res["rows"] = cache.counts("train").rows + cache.counts("eval").rows
    with tempfile.TemporaryDirectory() as out:
        s = launch.run(cfg, out=out, echo=False)
    res.update(
        {
            "model_to_loop_s": s["startup_s"] - s["worker_start_s"] - s["model_s"],
            "model_to_first_step_s": s.get("model_to_first_step_s"),
            "startup_s": s["startup_s"],
            "worker_peak_rss_mb": s["worker_peak_rss_mb"],
            "worker_rss_after_model_mb": s["worker_rss_after_model_mb"],
            "train_samples_per_s": s["train_samples_per_s"],
        }
    )
    with open(out_json, "w") as fh:
        json.dump(res, fh)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", default=None, help="checkout of the code before the cache")
    ap.add_argument("--scales", default="1,10,100")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--cache-dir", default=os.path.join(tempfile.gettempdir(), "skillit-bench"))
    ap.add_argument("--child", nargs=2, metavar=("SCALE", "OUT_JSON"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(int(args.child[0]), args.cache_dir, args.steps, args.child[1])
        return
    codes = [("new", HERE)] + ([("old", os.path.abspath(args.old))] if args.old else [])
    results: dict = {}
    with open("/proc/loadavg") as fh:
        load_before = fh.read().split()[:3]
    for scale in map(int, args.scales.split(",")):
        for code, path in codes:
            with tempfile.NamedTemporaryFile(suffix=".json") as tmp:
                env = dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS="1")
                cmd = [sys.executable, __file__, "--child", str(scale), tmp.name]
                cmd += ["--steps", str(args.steps), "--cache-dir", args.cache_dir]
                subprocess.run(cmd, env=env, check=True, cwd=path)
                with open(tmp.name) as fh:
                    results[f"{code}@{scale}x"] = json.load(fh)
            print(f"{code}@{scale}x: {results[f'{code}@{scale}x']}", flush=True)
    with open("/proc/loadavg") as fh:
        load_after = fh.read().split()[:3]
    cores = os.cpu_count() or 1
    print(json.dumps({"load_before": load_before, "load_after": load_after, **results}, indent=1))
    print(
        "| rows (train) | code | model -> loop ready (s) | model -> first step (s) "
        "| peak worker RSS (MiB) | prepare (s) | prepare rows/s/core | prepare tokens/s/core |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for key, r in results.items():
        code = key.split("@")[0]
        first = r["model_to_first_step_s"]
        prep = r.get("prepare_s")
        cells = [
            f"{r['train_rows']:,}",
            code,
            f"{r['model_to_loop_s']:.2f}",
            "-" if first is None else f"{first:.2f}",
            f"{r['worker_peak_rss_mb']:.0f}",
            "-" if prep is None else f"{prep:.1f}",
            "-" if prep is None else f"{r['rows'] / prep / cores:,.0f}",
            "-" if prep is None else f"{r['tokens'] / prep / cores:,.0f}",
        ]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
