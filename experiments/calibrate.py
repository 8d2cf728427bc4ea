"""Calibrate a skill benchmark before comparing policies on it (issue 17, item 2).

A plain PyTorch loop, no Ray: the recipe's data (its generator and settings), GPT-2 built from the
recipe's model preset, AdamW with the recipe's lr, warm-up and schedule, one torch thread. It
measures what a data-selection benchmark needs to be worth running:

- ``curves``: per-skill accuracy and loss every ``--eval-every`` steps under the stratified
  mixture and under the data's natural ("random") mixture, per seed;
- ``prereq``: the paper's prerequisite test (SKILL-IT section 2.2, Figure 3) per candidate edge
  i -> j: skill j trained alone vs trained 50/50 with skill i for twice the steps, so both see
  the same number of j rows; an edge is real when j ends better with i. The paired run also
  gets twice the optimizer steps, so ``--control`` adds j alone for those 2N steps: a gain
  that the control matches is optimisation, not skill i;
- ``budget``: from the stratified curves, the first step at which every skill is at or above
  ``--target`` accuracy, per seed (the budget a recipe needs; half of it should fall on the
  staircase where ordering can matter).

    nice -n 5 python experiments/calibrate.py experiments/lego_scratchpad.yaml --seeds 3

writes ``experiments/calibration/<recipe>.json``. ``--quick`` is a seconds-long smoke run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F

from skillit_ray import config as config_mod
from skillit_ray.data import generators
from skillit_ray.model import build_model
from skillit_ray.train.optim import build_optimizer, build_scheduler

HERE = os.path.dirname(os.path.abspath(__file__))


class Data:
    """Per skill: padded input ids, loss masks (answer tokens) of the train and val splits."""

    def __init__(self, folder: str):
        manifest = generators.read_manifest(folder)
        self.skills: list[str] = manifest["skills"]
        self.natural = np.array([manifest["natural_proportions"][s] for s in self.skills], float)
        self.natural /= self.natural.sum()
        self.vocab_size = len(manifest["vocab"])
        self.max_len = int(manifest["max_length"])
        self.split = {name: self._load(os.path.join(folder, name)) for name in ("train", "val")}

    def _load(self, folder: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        table = pq.read_table(folder).to_pylist()
        out = {}
        for skill in self.skills:
            rows = [r for r in table if r["skill"] == skill]
            ids = torch.zeros(len(rows), self.max_len, dtype=torch.long)
            mask = torch.zeros(len(rows), self.max_len, dtype=torch.bool)
            for k, r in enumerate(rows):
                ids[k, : len(r["input_ids"])] = torch.tensor(r["input_ids"])
                mask[k, : len(r["loss_mask"])] = torch.tensor(r["loss_mask"], dtype=torch.bool)
            out[skill] = (ids, mask)
        return out


def _scores(model, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: token-mean answer cross-entropy, and exact match of every answer token."""
    logits = model(input_ids=ids).logits[:, :-1]
    target, m = ids[:, 1:], mask[:, 1:].float()
    ce = F.cross_entropy(logits.transpose(1, 2), target, reduction="none")
    loss = (ce * m).sum(1) / m.sum(1)
    wrong = ((logits.argmax(-1) != target).float() * m).sum(1)
    return loss, (wrong == 0).float()


def evaluate(model, data: Data) -> dict:
    model.eval()
    acc, loss = {}, {}
    with torch.no_grad():
        for skill, (ids, mask) in data.split["val"].items():
            lo, ac = _scores(model, ids, mask)
            loss[skill], acc[skill] = float(lo.mean()), float(ac.mean())
    model.train()
    return {"acc": acc, "loss": loss}


def train(
    cfg,
    data: Data,
    mixture: np.ndarray,
    steps: int,
    seed: int,
    eval_every: int,
    curve: list | None = None,
    on_eval=None,
) -> list:
    """Train from scratch on a fixed mixture; the eval curve (step 0 included), appended to
    ``curve`` as it grows. ``on_eval`` is called after every evaluation (to save it so far)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_model(cfg.model, data.vocab_size, data.max_len)
    t = cfg.train
    opt = build_optimizer(model, float(t.lr), t.weight_decay)
    sched = build_scheduler(opt, t.warmup_steps, steps, t.lr_schedule)
    train_split = [data.split["train"][s] for s in data.skills]
    curve = [] if curve is None else curve
    curve.append({"step": 0, **evaluate(model, data)})
    for step in range(1, steps + 1):
        skills = rng.choice(len(mixture), size=t.batch_size, p=mixture)
        ids, mask = [], []
        for k in np.unique(skills):
            n = int((skills == k).sum())
            rows = rng.integers(0, len(train_split[k][0]), size=n)
            ids.append(train_split[k][0][rows])
            mask.append(train_split[k][1][rows])
        ids, mask = torch.cat(ids), torch.cat(mask)
        loss, _ = _scores(model, ids, mask)
        opt.zero_grad(set_to_none=True)
        loss.mean().backward()
        if t.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        opt.step()
        sched.step()
        if step % eval_every == 0 or step == steps:
            curve.append({"step": step, **evaluate(model, data)})
            if on_eval is not None:
                on_eval()
    return curve


def first_reach(curve: list, skills: list[str], target: float) -> int | None:
    for point in curve:
        if all(point["acc"][s] >= target for s in skills):
            return point["step"]
    return None


def _mixture(k: int, weights: dict[int, float]) -> np.ndarray:
    p = np.zeros(k)
    for i, w in weights.items():
        p[i] = w
    return p / p.sum()


def _ms(xs: list[float]) -> str:
    a = np.asarray(xs, float)
    return f"{a.mean():.2f} ± {a.std(ddof=1) if len(a) > 1 else 0.0:.2f}"


def merge(paths: list[str]) -> list[dict]:
    """Calibration files merged per setting (recipe, model, train, data): the runs of each
    mixture and the prerequisite tests of each edge, over the files' seeds."""
    merged: dict = {}
    for path in paths:
        with open(path) as fh:
            part = json.load(fh)
        key = json.dumps(
            [part["recipe"], part["overrides"], part["train"], part["generator_params"]],
            sort_keys=True,
        )
        into = merged.setdefault(key, {**part, "curves": {}, "prereq": []})
        for label, c in part.get("curves", {}).items():
            into["curves"].setdefault(label, {"mixture": c["mixture"], "runs": []})
            into["curves"][label]["runs"] += c["runs"]
        for e in part.get("prereq", []):
            same = [x for x in into["prereq"] if (x["from"], x["to"]) == (e["from"], e["to"])]
            if not same or same[0]["steps_alone"] != e["steps_alone"]:
                into["prereq"].append({**e, "runs": list(e["runs"])})
                continue
            seen = {r["seed"] for r in same[0]["runs"]}
            same[0]["runs"] += [r for r in e["runs"] if r["seed"] not in seen]
    for part in merged.values():
        part["prereq"].sort(key=lambda e: part["skills"].index(e["to"]))
    return list(merged.values())


def report(paths: list[str]) -> str:
    """Markdown tables of calibration files: accuracy per skill over steps (mean ± std over
    seeds) per mixture, the first step every skill reaches the target per seed, and the
    prerequisite tests."""
    lines = []
    for part in merge(paths):
        skills = part["skills"]
        setting = f"{part['recipe']} (model {part['model']} {part['overrides'] or ''})"
        for label, c in part["curves"].items():
            runs = sorted(c["runs"], key=lambda r: r["seed"])
            n = min(len(r["curve"]) for r in runs)
            steps = [pt["step"] for pt in runs[0]["curve"][:n]]
            marks = [s for s in steps if s and (s % 400 == 0 or s % 500 == 0 or s == steps[-1])]
            lines += [
                f"\n{setting}, {label} mixture {np.round(c['mixture'], 3).tolist()}, seeds "
                f"{[r['seed'] for r in runs]}: accuracy per skill, mean ± std over seeds",
                "",
                "| step | " + " | ".join(s.split("/")[-1] for s in skills) + " |",
                "|---" * (len(skills) + 1) + "|",
            ]
            for s in marks:
                i = steps.index(s)
                cells = [_ms([r["curve"][i]["acc"][sk] for r in runs]) for sk in skills]
                lines.append(f"| {s} | " + " | ".join(cells) + " |")
            reach = [first_reach(r["curve"], skills, part["target"]) for r in runs]
            lines.append(
                f"\nFirst eval with every skill >= {part['target']}, per seed: {reach} "
                f"(None: not within {[r['curve'][-1]['step'] for r in runs]} steps)"
            )
        if part["prereq"]:
            # The equal-steps control is shown when every run of every edge has it.
            arms = [("alone", "j alone"), ("with", "with i")]
            if all("alone_2n" in x for e in part["prereq"] for x in e["runs"]):
                arms.append(("alone_2n", "j alone 2N"))
            lines += [
                f"\n{setting}: prerequisite test, skill j alone for N steps vs j and i "
                "50/50 for 2N (equal j rows)"
                + (", and j alone for 2N (equal steps)" if len(arms) == 3 else "")
                + "; j's final accuracy and loss, mean ± std over seeds",
                "",
                "| edge i -> j | N | seeds | "
                + " | ".join(f"{name}: {m}" for m in ("acc", "loss") for _, name in arms)
                + " |",
                "|---" * (3 + 2 * len(arms)) + "|",
            ]
            for e in part["prereq"]:
                r = e["runs"]
                cells = [_ms([x[key][m] for x in r]) for m in ("acc", "loss") for key, _ in arms]
                lines.append(
                    f"| {e['from'].split('/')[-1]} -> {e['to'].split('/')[-1]} | "
                    f"{e['steps_alone']} | {len(r)} | " + " | ".join(cells) + " |"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "report":
        print(report(argv[1:]))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipe", help="YAML recipe whose data, model and train settings to use")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument(
        "--seed-list", default=None, help="seeds to run, comma-separated (default 0..seeds-1)"
    )
    ap.add_argument(
        "--mixtures", default="stratified,natural", help="curves: stratified and/or natural"
    )
    ap.add_argument("--steps", type=int, default=3000, help="steps of each curve run")
    ap.add_argument("--prereq-steps", type=int, default=1000, help="steps of skill j alone")
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--target", type=float, default=0.9)
    ap.add_argument("--parts", default="curves,prereq", help="curves, prereq (comma-separated)")
    ap.add_argument(
        "--edges", default=None, help="prereq: target skill indices j (0-based; default 1..k-1)"
    )
    ap.add_argument(
        "--prereq-from", type=int, default=None, help="prereq: candidate i (default j - 1)"
    )
    ap.add_argument(
        "--control",
        action="store_true",
        help="prereq: also train j alone for 2N steps (the paired run's step count)",
    )
    ap.add_argument("--set", action="append", default=[], help="config override key=value")
    ap.add_argument("--out", default=None, help="JSON path (default experiments/calibration/)")
    ap.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    args = ap.parse_args(argv)
    sets = list(args.set)
    if args.quick:
        sets += [
            "data.generator_params.rows_per_skill=60",
            "data.generator_params.val_rows_per_skill=20",
        ]
        args.seeds, args.steps, args.prereq_steps, args.eval_every = 1, 4, 2, 2
    cfg = config_mod.load(args.recipe, sets)
    name = os.path.splitext(os.path.basename(args.recipe))[0]
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "data")
        generators.generate(cfg.data.generator, folder, dict(cfg.data.generator_params))
        data = Data(folder)
    k = len(data.skills)
    parts = set(args.parts.split(","))
    seeds = [int(x) for x in args.seed_list.split(",")] if args.seed_list else range(args.seeds)
    out: dict = {
        "recipe": os.path.relpath(os.path.abspath(args.recipe), os.path.dirname(HERE)),
        "command": "python experiments/calibrate.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "skills": data.skills,
        "model": cfg.model.preset,
        "overrides": cfg.model.overrides,
        "train": {
            "batch_size": cfg.train.batch_size,
            "lr": cfg.train.lr,
            "warmup_steps": cfg.train.warmup_steps,
            "lr_schedule": cfg.train.lr_schedule,
        },
        "generator_params": dict(cfg.data.generator_params),
        "target": args.target,
        "seeds": list(seeds),
    }
    t0 = time.time()

    def log(msg: str) -> None:
        print(f"[{time.time() - t0:7.1f}s] {msg}", flush=True)

    path = args.out or os.path.join(HERE, "calibration", f"{name}.json")

    def save() -> None:
        """Written after every run, so an interrupted calibration keeps what it measured."""
        out["seconds"] = round(time.time() - t0, 1)
        if not args.quick or args.out:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as fh:
                json.dump(out, fh, indent=1)

    if "curves" in parts:
        mixtures = {"stratified": np.full(k, 1.0 / k), "natural": data.natural}
        out["curves"] = {}
        for label in args.mixtures.split(","):
            mix = mixtures[label]
            out["curves"][label] = {"mixture": mix.tolist(), "runs": []}
            for seed in seeds:
                run = {"seed": seed, "curve": [], "reach": None}
                out["curves"][label]["runs"].append(run)
                curve = train(cfg, data, mix, args.steps, seed, args.eval_every, run["curve"], save)
                run["reach"] = reach = first_reach(curve, data.skills, args.target)
                final = [round(curve[-1]["acc"][s], 3) for s in data.skills]
                log(f"{label} seed {seed}: final acc {final}, all >= {args.target} at {reach}")
                save()
    if "prereq" in parts:
        out["prereq"] = []
        n = args.prereq_steps
        targets = [int(x) for x in args.edges.split(",")] if args.edges else range(1, k)
        for j in targets:
            for i in (j - 1 if args.prereq_from is None else args.prereq_from,):
                edge = {"from": data.skills[i], "to": data.skills[j], "steps_alone": n, "runs": []}
                out["prereq"].append(edge)
                for seed in seeds:
                    only_j, paired = _mixture(k, {j: 1}), _mixture(k, {i: 1, j: 1})
                    finals = {
                        "alone": train(cfg, data, only_j, n, seed, n)[-1],
                        "with": train(cfg, data, paired, 2 * n, seed, 2 * n)[-1],
                    }
                    if args.control:
                        finals["alone_2n"] = train(cfg, data, only_j, 2 * n, seed, 2 * n)[-1]
                    run = {"seed": seed}
                    for key, final in finals.items():
                        run[key] = {m: final[m][data.skills[j]] for m in ("acc", "loss")}
                    edge["runs"].append(run)
                    log(
                        f"edge {data.skills[i]} -> {data.skills[j]} seed {seed}: {edge['runs'][-1]}"
                    )
                    save()
    save()
    log(f"wrote {path}")


if __name__ == "__main__":
    torch.set_num_threads(1)  # one thread per process: the machine is shared
    main()
