"""Graph learning end to end: `skillit-ray graph learn` wall time, token cache against the drain.

Each code base runs the whole command in a fresh process (Ray start-up, data, the ablation runs,
evaluation, the graph file) on the same recipe and method:

- ``new`` (this checkout), twice: with an empty cache folder (the command prepares the token
  cache first) and again with the cache it left (what every later ablation, run or sweep on the
  same data pays);
- ``old`` (``--old PATH``, a checkout of the code before the token cache): every ablation run
  reads and tokenizes its data again.

    python benchmarks/graph_learn_wall.py [--old /path/to/old/checkout] \
        [--config experiments/lego_pt.yaml] [--method brute-force] [--steps 20]
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


def learn(code_path: str, config: str, method: str, steps: int, cache_dir: str) -> dict:
    """One `graph learn` in a fresh process with code_path first on sys.path."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "graph.json")
        cmd = [sys.executable, "-m", "skillit_ray.cli", "graph", "learn", config]
        cmd += ["--method", method, "--steps", str(steps), "--out", out, "--quiet"]
        cmd += ["--set", f"data.cache_dir={cache_dir}"]
        env = dict(os.environ, PYTHONPATH=code_path, OMP_NUM_THREADS="1")
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, cwd=code_path, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        with open(out) as fh:
            graph = json.load(fh)
    prov = graph.get("provenance", {})
    return {
        "wall_s": wall,
        "ablation_wall_s": prov.get("ablation_wall_s"),
        "runs": prov.get("runs"),
        "matrix": graph.get("matrix"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", default=None, help="checkout of the code before the token cache")
    ap.add_argument("--config", default="experiments/lego_pt.yaml")
    ap.add_argument("--method", default="brute-force")
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    config = os.path.abspath(args.config)
    with open("/proc/loadavg") as fh:
        load_before = fh.read().split()[:3]
    results: dict = {}
    with tempfile.TemporaryDirectory() as new_cache, tempfile.TemporaryDirectory() as old_cache:
        results["new, empty cache"] = learn(HERE, config, args.method, args.steps, new_cache)
        results["new, cache reused"] = learn(HERE, config, args.method, args.steps, new_cache)
        if args.old:
            old = os.path.abspath(args.old)
            results["old (no cache)"] = learn(old, config, args.method, args.steps, old_cache)
    with open("/proc/loadavg") as fh:
        load_after = fh.read().split()[:3]
    print(json.dumps({"load_before": load_before, "load_after": load_after, **results}, indent=1))
    print("| code | runs | whole command (s) | ablation runs (s) |")
    print("|---|---|---|---|")
    for key, r in results.items():
        abl = r["ablation_wall_s"]
        cells = [key, str(r["runs"]), f"{r['wall_s']:.1f}", "-" if abl is None else f"{abl:.1f}"]
        print("| " + " | ".join(cells) + " |")
    if args.old:
        base = results["old (no cache)"]["wall_s"]
        for key in ("new, empty cache", "new, cache reused"):
            print(f"{key}: {base / results[key]['wall_s']:.2f}x faster than the old code")


if __name__ == "__main__":
    main()
