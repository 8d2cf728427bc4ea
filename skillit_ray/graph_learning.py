"""Learn the skills graph from short ablation runs, run in parallel as Ray tasks.

approximate (k runs): from the shared starting model, train on train skill i alone for H steps;
  delta[i, j] = L_j(start) - L_j(after), for every eval skill j.
brute-force (k^2 runs): for each ordered pair, train on {i, j} and on {j} alone for H steps;
  delta[i, j] = L_j(j alone) - L_j(i and j); the diagonal is L_j(start) - L_j(j alone).
Every run of a seed starts from the same model and optimizer state (put once in the object
store): a fresh model (cold), a trained run's checkpoint, or W warm-up steps on the natural
mixture (``warm_start``); seeds change the starting model (not a checkpoint's) and the row
order; the graph is their mean and ``std`` their spread.
"""

from __future__ import annotations

import hashlib
import json
import time
import zlib
from dataclasses import asdict, dataclass

import numpy as np

from skillit_ray.config import Config, GraphLearnConfig
from skillit_ray.data.prepare import PreparedData
from skillit_ray.errors import ConfigError
from skillit_ray.graph import SkillsGraph, normalize
from skillit_ray.warm_start import StartPoint, check_fits, resolve


@dataclass(frozen=True)
class Ablation:
    """One short run: which skills it trains on (uniformly), with which seed."""

    seed: int
    skills: tuple[str, ...]


def plan_runs(method: str, train: tuple, eval_: tuple, seeds: int) -> list[Ablation]:
    runs = []
    for seed in range(seeds):
        if method == "approximate":
            runs += [Ablation(seed, (s,)) for s in train]
        elif method == "brute-force":
            runs += [Ablation(seed, (j,)) for j in eval_]
            runs += [Ablation(seed, (i, j)) for j in eval_ for i in train if i != j]
        else:
            raise ConfigError(f"graph.method: unknown '{method}'; use approximate or brute-force")
    return runs


def _run_ablation(spec: dict, run: Ablation, start: dict, cache, eval_store) -> dict:
    """Train a copy of the starting model for H steps on the run's skills; eval every skill.
    ``start``: {"model": state dict, "optimizer": AdamW state dict or None (cold: fresh)}."""
    import torch

    from skillit_ray.config import ModelConfig
    from skillit_ray.data.stream import SkillStreams
    from skillit_ray.model import build_model
    from skillit_ray.train.evaluate import evaluate
    from skillit_ray.train.local import train_round
    from skillit_ray.train.optim import build_optimizer

    torch.set_num_threads(1)
    # Seed per run: dropout must not depend on which worker process ran which runs before.
    torch.manual_seed(run.seed * 1_000_003 + zlib.crc32(",".join(run.skills).encode()))
    model = build_model(ModelConfig(**spec["model"]), spec["vocab_size"], spec["max_len"])
    model.load_state_dict(start["model"])
    model.train()
    opt = build_optimizer(model, spec["lr"], spec["weight_decay"])
    if start["optimizer"] is not None:
        _reuse_optimizer(opt, start["optimizer"], spec["lr"])
    skills = tuple(spec["train_skills"])
    probs = np.array([1.0 if s in run.skills else 0.0 for s in skills])
    streams = SkillStreams(cache, skills, run.seed)  # reads only the shards it draws from
    train_round(
        model,
        opt,
        None,
        streams,
        skills,
        probs / probs.sum(),
        spec["steps"],
        spec["batch_size"],
        run.seed,
        0,
        spec["grad_clip"],
    )
    loss, _ = evaluate(model, eval_store, spec["eval_batch_size"], torch.device("cpu"), False)
    return loss


def _reuse_optimizer(opt, saved: dict, lr: float) -> None:
    """Load a warm run's AdamW state (moments and step counts: warm_start says why), then set
    the graph's learning rate; the weight decay stays this config's."""
    decay = [g["weight_decay"] for g in opt.param_groups]
    opt.load_state_dict(saved)
    for group, wd in zip(opt.param_groups, decay):
        group["lr"], group["weight_decay"] = lr, wd


def _fresh_model(spec: dict, seed: int):
    """Graph seed ``seed``'s fresh model: the cold start, and a warm-up's beginning."""
    import torch

    from skillit_ray.config import ModelConfig
    from skillit_ray.model import build_model

    torch.manual_seed(spec["seed"] + seed)
    return build_model(ModelConfig(**spec["model"]), spec["vocab_size"], spec["max_len"])


def _warm_up(spec: dict, seed: int, cache, eval_store) -> tuple[dict, dict]:
    """Graph seed ``seed``'s fresh model after W steps on the natural mixture, with the run's
    optimizer and LR schedule; returns (start, its eval loss per skill). A Ray task."""
    import torch

    from skillit_ray.data.stream import SkillStreams
    from skillit_ray.train.evaluate import evaluate
    from skillit_ray.train.local import train_round
    from skillit_ray.train.optim import build_optimizer, build_scheduler

    torch.set_num_threads(1)
    model = _fresh_model(spec, seed)
    model.train()
    w = spec["warmup"]
    opt = build_optimizer(model, w["lr"], spec["weight_decay"])
    sched = build_scheduler(opt, w["lr_warmup"], w["total_steps"], w["lr_schedule"])
    skills = tuple(spec["train_skills"])
    # Its own row order and plan, so the ablations do not re-draw its first rows.
    streams = SkillStreams(cache, skills, WARMUP_SEED + seed)
    probs = np.array([w["natural"][s] for s in skills])
    train_round(
        model,
        opt,
        sched,
        streams,
        skills,
        probs / probs.sum(),
        w["steps"],
        spec["batch_size"],
        spec["seed"] + seed,
        WARMUP_SEED,
        spec["grad_clip"],
    )
    loss, _ = evaluate(model, eval_store, spec["eval_batch_size"], torch.device("cpu"), False)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    return {"model": state, "optimizer": opt.state_dict()}, loss


# Row-order seed offset and plan round of the warm-ups: apart from the ablations' (the graph
# seed 0..seeds-1, round 0).
WARMUP_SEED = 1_000_000


def _start_states(
    spec: dict, seeds: int, eval_store, start: StartPoint, cache
) -> tuple[list[dict], list[dict]]:
    """Per graph seed, the ablations' start ({"model", "optimizer"}) and its eval loss."""
    import torch

    from skillit_ray.train.evaluate import evaluate

    def measured(model) -> dict:
        return evaluate(model, eval_store, spec["eval_batch_size"], torch.device("cpu"), False)[0]

    if start.kind == "warmup":
        import ray

        task = ray.remote(num_cpus=1)(_warm_up).options(num_returns=2)
        refs = [task.remote(spec, seed, cache, eval_store) for seed in range(seeds)]
        return ray.get([r[0] for r in refs]), ray.get([r[1] for r in refs])
    if start.kind == "checkpoint":  # one trained model for every seed
        from skillit_ray.train import checkpoint

        saved = checkpoint.read(start.checkpoint).state
        model = _fresh_model(spec, 0)
        model.load_state_dict(saved["model"])
        one = {"model": saved["model"], "optimizer": saved["optimizer"]}
        return [one] * seeds, [measured(model)] * seeds
    states, base = [], []
    for seed in range(seeds):
        model = _fresh_model(spec, seed)
        states.append(
            {"model": {k: v.clone() for k, v in model.state_dict().items()}, "optimizer": None}
        )
        base.append(measured(model))
    return states, base


def _deltas(method, train, eval_, results: dict, base: dict) -> tuple[np.ndarray, np.ndarray]:
    """(delta, reference loss) for one seed, from its runs' eval losses."""
    delta = np.zeros((len(train), len(eval_)))
    ref = np.zeros_like(delta)
    for a, i in enumerate(train):
        for b, j in enumerate(eval_):
            if method == "approximate":
                before, after = base[j], results[(i,)][j]
            elif i == j:
                before, after = base[j], results[(j,)][j]
            else:
                before, after = results[(j,)][j], results[(i, j)][j]
            delta[a, b], ref[a, b] = before - after, before
    return delta, ref


def fingerprint(data) -> str:
    blob = json.dumps(
        {
            "train": data.train.rows_per_skill,
            "eval": data.eval.rows_per_skill,
            "files": data.train.files + data.eval.files,
            "manifest": (data.manifest or {}).get("fingerprint"),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def learn(
    cfg: Config,
    g: GraphLearnConfig,
    echo: bool = True,
    data: PreparedData | None = None,
) -> SkillsGraph:
    """Run the ablations on the Ray cluster (``cluster.ensure_ray`` first) and build the
    graph; ``data``: the run's own, when a run learns its graph before round 0. Every
    ablation reads the one token cache (made here on first use)."""
    from skillit_ray.data.prepare import prepare

    data = data or prepare(cfg)
    start = resolve(cfg)
    check_fits(start, cfg, data.vocab_size, data.max_len)
    cache = data.cache(echo)
    eval_store = data.local_store("eval")  # held in memory, put once in the object store
    t = cfg.train
    spec = {
        "model": asdict(cfg.model),
        "vocab_size": data.vocab_size,
        "max_len": data.max_len,
        "lr": float(g.lr or t.lr),
        "weight_decay": t.weight_decay,
        "grad_clip": t.grad_clip,
        "steps": g.steps,
        "batch_size": t.batch_size,
        "eval_batch_size": t.eval_batch_size,
        "seed": t.seed,
        "train_skills": list(data.train_skills),
        "warmup": {  # the run's first W steps, on the natural mixture
            "steps": g.warmup_steps,
            "lr": float(t.lr),
            "lr_warmup": t.warmup_steps,
            "lr_schedule": t.lr_schedule,
            "total_steps": cfg.total_steps,
            "natural": dict(data.natural),
        },
    }
    t0 = time.time()
    states, base = _start_states(spec, g.seeds, eval_store, start, cache)
    start_s = time.time() - t0
    if echo and start.kind != "cold":
        print(f"graph learn: start ready ({start.kind}, {start_s:.1f}s)", flush=True)
    runs = plan_runs(g.method, data.train_skills, data.eval_skills, g.seeds)
    t0 = time.time()
    results = _execute(spec, runs, states, cache, eval_store, g.max_parallel, echo)
    ablation_s = time.time() - t0
    per_seed = []
    for seed in range(g.seeds):
        mine = {r.skills: results[r] for r in runs if r.seed == seed}
        delta, ref = _deltas(g.method, data.train_skills, data.eval_skills, mine, base[seed])
        per_seed.append(
            normalize(
                delta,
                ref,
                data.train_skills,
                data.eval_skills,
                g.normalize,
                g.clip_negative,
                g.binarize,
                g.diagonal,
            )
        )
    stack = np.array(per_seed)
    prov = {
        "method": g.method,
        "steps": g.steps,
        "seeds": g.seeds,
        "runs": len(runs),
        "model": asdict(cfg.model),
        "lr": spec["lr"],
        "batch_size": t.batch_size,
        "dataset_fingerprint": fingerprint(data),
        "normalization": {
            "how": g.normalize,
            "clip_negative": g.clip_negative,
            "binarize": g.binarize,
            "diagonal": g.diagonal,
        },
        "start": start.to_json(),
        "start_loss": [dict(b) for b in base],
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "start_wall_s": start_s,
        "ablation_wall_s": ablation_s,
    }
    return SkillsGraph(data.train_skills, data.eval_skills, stack.mean(0), stack.std(0), prov)


def _execute(spec, runs, states, cache, eval_store, max_parallel, echo) -> dict:
    """Submit the runs as Ray tasks, at most max_parallel at once, with a progress line."""
    import ray

    task = ray.remote(num_cpus=1)(_run_ablation)
    state_refs = [ray.put(s) for s in states]
    eval_ref = ray.put(eval_store)
    pending, results, queue, t0 = {}, {}, list(runs), time.time()
    limit = max_parallel or len(runs)
    while queue or pending:
        while queue and len(pending) < limit:
            run = queue.pop(0)
            ref = task.remote(spec, run, state_refs[run.seed], cache, eval_ref)
            pending[ref] = run
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            results[pending.pop(ref)] = ray.get(ref)
        if echo:
            n, total = len(results), len(runs)
            eta = (time.time() - t0) / n * (total - n)
            print(
                f"graph learn: {n}/{total} runs done, {time.time() - t0:.1f}s, eta {eta:.0f}s",
                flush=True,
            )
    return results
