"""One training run, start to end: config -> data -> Ray -> what the policy needs before round
0 -> coordinator -> TorchTrainer -> outputs. Each step lives in a module of its own
(``cluster``, ``context``, ``remote``, ``rundir``, ``trainer``); this one puts them in order."""

from __future__ import annotations

import json
import os
import shlex
import signal
import time

from skillit_ray import config as config_mod
from skillit_ray import loggers, rundir
from skillit_ray.config import Config
from skillit_ray.errors import Interrupted, TrainingError
from skillit_ray.interrupt import StopOnSignal
from skillit_ray.preflight import check_config, check_run
from skillit_ray.remote import find_cause, policy_ref
from skillit_ray.rundir import RunIdentity
from skillit_ray.train import checkpoint


def run(
    cfg: Config, out: str | None = None, echo: bool = True, callbacks=None, resume: bool = False
) -> dict:
    """Run one training job; returns the summary (also written to <out>/summary.json).

    ``callbacks`` go to Ray Train's RunConfig (a sweep passes TuneReportCallback).
    ``resume`` continues the run in ``out`` from its newest checkpoint
    (``rundir.resume_config`` gives its config)."""
    try:
        return _run(cfg, out, echo, callbacks or [], resume)
    except Exception as exc:
        ours = find_cause(exc)
        if ours is not None and ours is not exc:
            raise ours from None
        raise


def _run(cfg: Config, out: str | None, echo: bool, callbacks: list, resume: bool) -> dict:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from skillit_ray.cluster import ensure_ray, join_cluster
    from skillit_ray.context import prepare_inputs
    from skillit_ray.coordinator import Coordinator
    from skillit_ray.data.cache import data_fingerprint
    from skillit_ray.data.prepare import prepare
    from skillit_ray.train.loop import RunMeta

    t0 = time.time()
    out = rundir.resolve_out(out or cfg.run.out, cfg)
    if resume:
        rundir.require_run_dir(out)
    os.makedirs(out, exist_ok=True)
    check_config(cfg)  # the policy's name and parameters, the model: before the data
    data = prepare(cfg)
    # The model and the policy's round 0 checked here, before Ray (preflight.py); the policy
    # says what it reads.
    needs = check_run(cfg, data)
    if echo:
        print(
            f"skillit-ray: {cfg.run.name}: policy {cfg.policy.name}, "
            f"{len(data.train_skills)} train / {len(data.eval_skills)} eval skills, "
            f"{cfg.train.rounds} rounds x {cfg.train.steps_per_round} steps, "
            f"{cfg.train.num_workers} worker(s)",
            flush=True,
        )
    meta = RunMeta(
        data.train_skills,
        data.eval_skills,
        data.vocab_size,
        data.max_len,
        data.with_accuracy,
        tuple(sorted(needs)),
        data.cache_root,
        data_fingerprint(data),
    )
    fp = checkpoint.fingerprint(cfg, meta)
    if resume:
        ident = RunIdentity.load(out)
        start = rundir.resume_round(ident, fp, cfg.train.rounds, out)
        # Elapsed time, ETA and wall_s count running time: the downtime is left out.
        before = rundir.running_time(out, start)
        t0 = time.time() - before.get(start - 1, 0.0)
        if echo:
            print(f"resuming {ident.run_name} at round {start + 1}", flush=True)
    else:
        before = {}
        ident = RunIdentity.create(cfg, out, t0)
        with open(os.path.join(out, "config.yaml"), "w") as fh:
            fh.write(config_mod.to_yaml(cfg))
    metrics_path = os.path.join(out, "metrics.jsonl")
    if not resume:  # a resume rewrites it once the checkpoint's history is back
        open(metrics_path, "w").close()
    t_ray = time.time()
    how = ensure_ray(cfg)
    if echo:
        print(f"Ray: {how} ({time.time() - t_ray:.1f}s)", flush=True)
    join_cluster(cfg, data, "a run")  # on several nodes the token cache moves to storage
    meta.cache = data.cache_root
    inputs = prepare_inputs(cfg, data, needs, out, resume, echo)
    # On the driver's node, as Ray Train's controller: losing another node leaves it running.
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    coord = Coordinator.options(
        name=f"skillit-coordinator-{ident.run_name}", scheduling_strategy=here
    ).remote(policy_ref(cfg.policy.name), cfg.policy.params, inputs.ctx)
    logs, status = None, "FAILED"
    try:
        first_step = (start if resume else 0) * cfg.train.steps_per_round + 1
        logs = loggers.start_run(cfg, out, ident.run_name, resume, first_step)
        if logs is not None:
            from skillit_ray.round_logger import RoundLogger

            callbacks = [*callbacks, RoundLogger(logs)]
        ray.get(coord.ready.remote())  # the policy's round-0 errors surface before training
        with StopOnSignal(coord, echo) as stop:
            args = (meta, fp, ident, coord, inputs.difficulty, t0, before)
            summary = _fit(cfg, out, echo, callbacks, *args)
        if summary.get("interrupted_after") is not None:
            r = summary["interrupted_after"]
            status = "KILLED"
            raise Interrupted(
                f"stopped by {signal.Signals(stop.signum or signal.SIGINT).name} after round "
                f"{r + 1}/{cfg.train.rounds}; its checkpoint is kept. Resume with: "
                f"skillit-ray run --resume {shlex.quote(out)}",
                stop.signum or signal.SIGINT,
            )
        status = "FINISHED"
        return summary
    finally:
        ray.kill(coord)
        loggers.end_run(logs, status)


def _fit(cfg, out, echo, callbacks, meta, fp, ident, coord, difficulty, t0, before) -> dict:
    import ray

    from skillit_ray.data.cache import token_summary
    from skillit_ray.trainer import fit, make_trainer

    trainer = make_trainer(cfg, meta, fp, ident, coord, difficulty, callbacks)
    metrics_path = os.path.join(out, "metrics.jsonl")
    done = fit(
        trainer, coord, metrics_path, cfg.train.rounds, t0, echo, before, cfg.train.max_failures
    )
    rundir.save_outputs(out, done.result, ray.get(coord.ranks.remote()))
    summary = rundir.summary(cfg, done.records, done.stats, t0, done.t_fit, done.t_done)
    summary["tokens"] = token_summary(meta.cache, done.stats)
    with open(os.path.join(out, "summary.json"), "w") as fh:
        json.dump(summary, fh, indent=1)
    if cfg.run.storage_path:  # a multi-node run keeps its outputs beside its checkpoints
        rundir.mirror(out, ident)
    if done.stats is not None and done.stats.stopped:
        ckpt = done.result.checkpoint
        where = ckpt.path if ckpt else ident.storage
        raise TrainingError(
            f"{done.stats.stopped}. Stopped; the rounds before it are in {metrics_path}, the "
            f"diverged state in checkpoint {where}"
        )
    if echo and summary["interrupted_after"] is None:
        loss = summary["final_mean_eval_loss"]
        print(
            f"done: {len(done.records)} rounds in {summary['wall_s']:.1f}s; final mean eval "
            f"loss {'n/a' if loss is None else f'{loss:.4f}'}; run dir {out}",
            flush=True,
        )
    return summary
