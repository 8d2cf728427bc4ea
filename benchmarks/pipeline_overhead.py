"""Ray pipeline overhead: a skillit-ray run against a plain PyTorch loop, side by side.

Both train the same model on the same data with the same mixture schedule (the plain loop
replays the mixtures the Ray run's policy chose), the same round plans, sampler, loss, optimizer
and evaluation cadence, with the same number of torch threads. Printed:
  - steady state: training samples/s (optimizer steps only) of each, and their ratio;
  - the Ray run's fixed costs: start-up (fit() call -> loop ready, of which data drain),
    and tear-down (loop end -> fit() returns);
  - end to end: wall time of the whole job, the ratio plain / Ray.
The plain loop runs once before and once after the Ray run; both figures are printed. With
``train.num_workers=2`` the Ray run is DDP over two 1-thread workers (gloo) and the plain loop
one process with two torch threads on the same global batch. With ``train.use_gpu=true`` both
train on the GPU with bf16 autocast (the Ray run's one-worker process group is NCCL).

    python benchmarks/pipeline_overhead.py [--config experiments/lego_pt.yaml] [--set k=v ...]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
import torch

from skillit_ray import config as config_mod
from skillit_ray import launch
from skillit_ray.data.plan import make_plan
from skillit_ray.data.prepare import prepare
from skillit_ray.data.stream import SkillSampler
from skillit_ray.model import build_model
from skillit_ray.train.evaluate import evaluate
from skillit_ray.train.local import batch, step
from skillit_ray.train.optim import build_optimizer, build_scheduler


def train_block(model, opt, sched, store, sampler, skills, probs, n, t, r, lo, device):
    """Steps lo..lo+n of round r: the round's plan rows for those steps, as the Ray run
    (on a GPU with bf16 autocast, as the Ray run)."""
    plan = make_plan(np.asarray(probs), t.steps_per_round, t.batch_size, t.seed, r)
    cuda = device.type == "cuda"
    for s in range(lo, lo + n):
        take = lambda skill, c: store.gather(skill, sampler.take(skill, c))  # noqa: E731
        ids, mask, _ = batch(skills, plan.slots[s], take)
        ids, mask = (torch.from_numpy(a).to(device, non_blocking=cuda) for a in (ids, mask))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            step(model, opt, sched, ids, mask, t.grad_clip)
    if cuda:  # the block's queued kernels belong to its time
        torch.cuda.synchronize()


def plain_run(cfg, mixtures: list[np.ndarray]) -> dict:
    """The same job as a single-process PyTorch loop with no Ray anywhere."""
    t0 = time.time()
    t = cfg.train
    # The plain process gets every CPU the Ray workers hold: one process, the global batch.
    torch.set_num_threads(t.num_workers * t.cpus_per_worker)
    torch.manual_seed(t.seed)
    data = prepare(cfg)
    train, ev = data.local_store("train"), data.local_store("eval")
    device = torch.device("cuda" if t.use_gpu else "cpu")
    model = build_model(cfg.model, data.vocab_size, data.max_len).to(device)
    opt = build_optimizer(model, float(t.lr), t.weight_decay)
    sched = build_scheduler(opt, t.warmup_steps, cfg.total_steps)
    # The cache's rows held in memory, drawn in the Ray run's order (rank 0 of 1).
    sampler = SkillSampler(train.sizes, t.seed, 0)
    train_s = eval_s = 0.0
    for r, probs in enumerate(mixtures):
        # Train in eval_every blocks so evaluation happens where the Ray run evaluates.
        block = t.eval_every or t.steps_per_round
        for lo in range(0, t.steps_per_round, block):
            n = min(block, t.steps_per_round - lo)
            t1 = time.perf_counter()
            train_block(
                model, opt, sched, train, sampler, data.train_skills, probs, n, t, r, lo, device
            )
            train_s += time.perf_counter() - t1
            t1 = time.perf_counter()
            loss_by_skill, _ = evaluate(model, ev, t.eval_batch_size, device, data.with_accuracy)
            eval_s += time.perf_counter() - t1
    samples = cfg.total_steps * t.batch_size
    return {
        "wall_s": time.time() - t0,
        "train_s": train_s,
        "eval_s": eval_s,
        "train_samples_per_s": samples / train_s,
        "final_mean_eval_loss": float(np.mean(list(loss_by_skill.values()))),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="experiments/lego_pt.yaml")
    ap.add_argument("--set", action="append", default=[])
    args = ap.parse_args()
    cfg = config_mod.load(args.config, args.set)
    prepare(cfg)  # generate cached data up front so neither side pays for it
    with tempfile.TemporaryDirectory() as out:
        t_job = time.time()
        ray_summary = launch.run(cfg, out=out, echo=False)
        ray_summary["job_s"] = time.time() - t_job  # includes ray.init, as the CLI pays it
        with open(os.path.join(out, "metrics.jsonl")) as fh:
            recs = [json.loads(line) for line in fh]
    import ray

    ray.shutdown()
    mixtures = [np.array(list(r["mixture"].values())) for r in recs]
    before = plain_run(cfg, mixtures)
    after = plain_run(cfg, mixtures)
    plain_sps = (before["train_samples_per_s"] + after["train_samples_per_s"]) / 2
    plain_wall = (before["wall_s"] + after["wall_s"]) / 2
    rs = ray_summary
    report = {
        "device": rs["device"],
        "process_group": rs["process_group"],
        "config": args.config,
        "overrides": args.set,
        "ray_workers": cfg.train.num_workers,
        "torch_threads_per_ray_worker": cfg.train.cpus_per_worker,
        "plain_torch_threads": cfg.train.num_workers * cfg.train.cpus_per_worker,
        "steps": cfg.total_steps,
        "batch_size": cfg.train.batch_size,
        "plain_train_samples_per_s": [before["train_samples_per_s"], after["train_samples_per_s"]],
        "ray_train_samples_per_s": rs["train_samples_per_s"],
        "steady_state_ratio": rs["train_samples_per_s"] / plain_sps,
        "ray_startup_s": rs["startup_s"],
        "ray_worker_start_s": rs["worker_start_s"],
        "ray_model_s": rs["model_s"],
        "ray_drain_s": rs["drain_s"],
        "ray_teardown_s": rs["teardown_s"],
        "ray_job_s": rs["job_s"],
        "plain_wall_s": [before["wall_s"], after["wall_s"]],
        "end_to_end_ratio": plain_wall / rs["job_s"],
        "ray_eval_s": sum(r["eval_s"] for r in recs),
        "eval_share_of_job": sum(r["eval_s"] for r in recs) / rs["job_s"],
        # what fit() spent outside start-up, training, evaluation and tear-down: the per-round
        # reports, coordinator round trips and checkpoints
        "ray_round_overhead_s": rs["fit_s"]
        - rs["startup_s"]
        - rs["train_s"]
        - sum(r["eval_s"] for r in recs)
        - rs["teardown_s"],
        "final_mean_eval_loss": {
            "ray": rs["final_mean_eval_loss"],
            "plain": before["final_mean_eval_loss"],
        },
    }
    print(json.dumps(report, indent=1))
    print(
        f"steady state: Ray {rs['train_samples_per_s']:.0f} samples/s vs plain "
        f"{plain_sps:.0f} -> {report['steady_state_ratio']:.3f}x"
    )
    print(
        f"fixed: start-up {rs['startup_s']:.1f}s (worker start {rs['worker_start_s']:.1f}s, "
        f"model {rs['model_s']:.1f}s, drain {rs['drain_s']:.1f}s), "
        f"tear-down {rs['teardown_s']:.1f}s"
    )
    print(
        f"evaluation: {report['ray_eval_s']:.1f}s = {report['eval_share_of_job']:.1%} of the job; "
        f"reports, coordinator and checkpoints: {report['ray_round_overhead_s']:.1f}s"
    )
    print(
        f"end to end: Ray job {rs['job_s']:.1f}s vs plain {plain_wall:.1f}s -> "
        f"{report['end_to_end_ratio']:.3f}x"
    )


if __name__ == "__main__":
    main()
