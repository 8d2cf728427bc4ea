"""Peak worker memory on a train split 4x larger than ``data.memory_budget_mb``, side by side
with the same run holding everything in memory.

The worker reports its RSS after building the model (before the drain), its peak RSS (VmHWM)
at the end of each phase and overall. The target is peak < 1.5 x budget + the model; "the model"
is measured two ways: the RSS after building it, and the peak of a control run that trains it
for the same steps on 100 rows per skill.

    python benchmarks/spill_memory.py [--budget-mb 8] [--factor 4]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from skillit_ray import config as config_mod  # noqa: E402
from skillit_ray import launch  # noqa: E402
from skillit_ray.data.prepare import prepare  # noqa: E402


def recipe(rows_per_skill: int, budget_mb: float | None) -> config_mod.Config:
    return config_mod.from_dict(
        {
            "run": {"name": "spill"},
            "data": {
                "generator": "lego",
                "generator_params": {"rows_per_skill": rows_per_skill, "val_rows_per_skill": 100},
                "memory_budget_mb": budget_mb,
            },
            "model": {"preset": "gpt2-tiny"},
            "train": {"rounds": 2, "steps_per_round": 50, "batch_size": 32, "eval_every": None},
            "policy": {"name": "stratified"},
        }
    )


def measure(rows_per_skill: int, budget: float | None, row_bytes: int) -> dict:
    cfg = recipe(rows_per_skill, budget)
    data = prepare(cfg)
    with tempfile.TemporaryDirectory() as out:
        s = launch.run(cfg, out=out, echo=False)
    return {
        "budget_mb": budget,
        "train_split_token_mb": sum(data.train.rows_per_skill.values()) * row_bytes / 2**20,
        "rss_after_model_mb": s["worker_rss_after_model_mb"],
        "peak_rss_mb": s["worker_peak_rss_mb"],
        "rss_after_drain_mb": s["worker_rss_after_drain_mb"],
        "peak_rss_by_phase_mb": s["worker_peak_rss_by_phase_mb"],
        "train_samples_per_s": s["train_samples_per_s"],
        "drain_s": s["drain_s"],
    }


def phases(label: str, row: dict) -> str:
    steps, prev = [], row["rss_after_model_mb"]
    for phase, peak in row["peak_rss_by_phase_mb"].items():
        steps.append(f"{phase} {peak:.0f} (+{peak - prev:.0f})")
        prev = peak
    return f"peak RSS (MiB) at the end of each phase, {label}: " + ", ".join(steps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget-mb", type=float, default=8.0)
    ap.add_argument("--factor", type=float, default=4.0)
    args = ap.parse_args()
    probe = prepare(recipe(100, None))
    row_bytes = probe.max_len * (4 + 1)  # int32 ids + uint8 mask per token
    total_rows = args.factor * args.budget_mb * 2**20 / row_bytes
    per_skill = int(total_rows / sum(probe.natural.values()) * min(probe.natural.values())) + 1
    # The control trains the same model for the same steps on 100 rows per skill: its peak is
    # what training the model costs with (almost) no data.
    runs = {
        "control (tiny data)": (100, None),
        "in memory": (per_skill, None),
        "spilled": (per_skill, args.budget_mb),
    }
    rows = {}
    for label, (n, budget) in runs.items():
        rows[label] = measure(n, budget, row_bytes)
        print(label, json.dumps(rows[label]), flush=True)
    for label, row in rows.items():
        print(phases(label, row))
    ctl, mem, spill = rows.values()
    print(
        f"train split {spill['train_split_token_mb']:.1f} MiB of tokens = "
        f"{spill['train_split_token_mb'] / args.budget_mb:.1f}x the {args.budget_mb:.0f} MiB budget"
    )
    for what, base in (
        ("RSS after model", spill["rss_after_model_mb"]),
        ("control peak", ctl["peak_rss_mb"]),
    ):
        limit = 1.5 * args.budget_mb + base
        print(
            f"peak worker RSS: control {ctl['peak_rss_mb']:.0f}, in memory "
            f"{mem['peak_rss_mb']:.0f}, spilled {spill['peak_rss_mb']:.0f} MiB; target < 1.5 x "
            f"budget + {what} = {limit:.0f} MiB: "
            f"{'met' if spill['peak_rss_mb'] < limit else 'NOT met'}"
        )
    print(
        "throughput spilled/in-memory "
        f"{spill['train_samples_per_s'] / mem['train_samples_per_s']:.3f}x"
    )


if __name__ == "__main__":
    main()
