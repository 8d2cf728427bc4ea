"""Config -> a running TorchTrainer: Ray start-up, coordinator, run directory, progress lines."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from dataclasses import asdict

from skillit_ray import config as config_mod
from skillit_ray.config import Config
from skillit_ray.errors import CheckpointError, SkillitError, TrainingError
from skillit_ray.mixture import PolicyContext
from skillit_ray.progress import MetricsWriter
from skillit_ray.train import checkpoint

LOCAL_ENV = {
    "RAY_DATA_DISABLE_PROGRESS_BARS": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    # The controller polls workers at this period; the default 2 s makes each report cost ~1 s.
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2",
    "RAY_TRAIN_METRICS_ENABLED": "0",
    "TOKENIZERS_PARALLELISM": "false",
    # Ray Data's Parquet reader starts 32 footer-reader actors per read by default; on a small
    # machine their process start-up dominated the drain (31 s -> see docs/decisions.md).
    "RAY_DATA_PARQUET_FOOTER_NUM_ACTORS": "1",
    "PYTHONWARNINGS": "ignore::DeprecationWarning,ignore::FutureWarning",
}


def ensure_ray(cfg: Config) -> None:
    """Join the cluster in RAY_ADDRESS (ray job submit sets it), else start an embedded one."""
    import ray

    if not cfg.run.ray_logs:  # Ray Data logs each execution at INFO on the driver
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        logging.getLogger("ray.tune").setLevel(logging.WARNING)
    if ray.is_initialized():
        return
    for key, value in LOCAL_ENV.items():
        os.environ.setdefault(key, value)
    kwargs = {
        "log_to_driver": cfg.run.ray_logs,
        "logging_level": "info" if cfg.run.ray_logs else "warning",
        "configure_logging": True,
    }
    if os.environ.get("RAY_ADDRESS"):
        ray.init(**kwargs)
        return
    # A private local cluster; token auth only guards network clients, which this one has none of.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    t = cfg.train
    # Logical headroom: Ray Data tasks need a whole free CPU beside the training workers.
    cpus = max(os.cpu_count() or 1, t.num_workers * t.cpus_per_worker) + 2
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, **kwargs)


def default_out(cfg: Config) -> str:
    return os.path.join("runs", f"{cfg.run.name}-{time.strftime('%Y%m%d-%H%M%S')}")


def policy_ref(name: str):
    """What the coordinator needs to build the policy: its name, or, for a class registered
    with @register_policy in this process (a notebook, a test), the class itself by value,
    since the actor's process never ran that registration."""
    from ray import cloudpickle

    from skillit_ray.policy import registered_here

    cls = registered_here(name)
    if cls is None:
        return name
    if cls.__module__ != "__main__":
        cloudpickle.register_pickle_by_value(sys.modules[cls.__module__])
    return (name, cls)


def find_cause(exc: BaseException) -> SkillitError | None:
    """Our own error inside Ray's wrappers (task errors, worker-group failures), if any."""
    from ray.exceptions import RayError

    seen, stack = set(), [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, SkillitError) and not isinstance(e, RayError):
            return e
        failures = getattr(e, "worker_failures", None) or {}
        failures = failures.values() if isinstance(failures, dict) else failures
        # RayTaskError keeps the original exception in .cause
        stack += [getattr(e, "cause", None), e.__cause__, e.__context__, *failures]
    return None


def run(
    cfg: Config, out: str | None = None, echo: bool = True, callbacks=None, resume: bool = False
) -> dict:
    """Run one training job; returns the summary (also written to <out>/summary.json).

    ``callbacks`` go to Ray Train's RunConfig (a sweep passes TuneReportCallback).
    ``resume`` continues the run in ``out`` from its newest checkpoint (see ``resume_config``)."""
    try:
        return _run(cfg, out, echo, callbacks or [], resume)
    except Exception as exc:
        ours = find_cause(exc)
        if ours is not None and ours is not exc:
            raise ours from None
        raise


def resume_config(run_dir: str, overrides: list[str] | None = None) -> Config:
    """The config a run directory was started with (plus overrides), to resume it."""
    _require_run_dir(run_dir)
    return config_mod.load(os.path.join(run_dir, "config.yaml"), overrides)


def _require_run_dir(run_dir: str) -> None:
    if not all(os.path.exists(os.path.join(run_dir, f)) for f in (RUN_FILE, "config.yaml")):
        raise CheckpointError(
            f"{run_dir}: not a skillit-ray run directory (no {RUN_FILE} or config.yaml); "
            "--resume takes the --out directory of an earlier run"
        )


RUN_FILE = "run.json"


def _run_identity(cfg: Config, out: str, resume: bool, t0: float) -> dict:
    """Ray Train run name, storage and start time: new for a run, read back for a resume (a
    fresh name per run, so a new run in an old directory never silently resumes the old one)."""
    path = os.path.join(out, RUN_FILE)
    if resume:
        with open(path) as fh:
            return json.load(fh)
    storage = cfg.run.storage_path or os.path.join(out, "ray")
    if "://" not in storage:  # a pyarrow filesystem URI goes to Ray Train as it is
        storage = os.path.abspath(storage)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(t0))
    ident = {
        "run_name": f"{cfg.run.name}-{os.path.basename(out)}-{stamp}",
        "storage": storage,
        "t0": t0,
    }
    with open(path, "w") as fh:
        json.dump(ident, fh, indent=1)
    return ident


def _check_resumable(ident: dict, fp: dict, rounds: int) -> int:
    """The round the resumed run starts at, after checking the newest checkpoint fits."""
    found = checkpoint.latest(ident["storage"], ident["run_name"])
    if found is None:
        raise CheckpointError(
            f"no checkpoint of run '{ident['run_name']}' in {ident['storage']}: nothing to resume"
        )
    path, meta = found
    checkpoint.check_fingerprint(meta.get("fingerprint", {}), fp, path)
    if "://" not in ident["storage"]:  # every file readable, before workers start on it
        checkpoint.read(path, mmap=True)
    if meta.get("diverged"):
        raise CheckpointError(
            f"the newest checkpoint {path} holds a diverged state ({meta['diverged']}); "
            "start a new run instead"
        )
    if meta["round"] + 1 >= rounds:
        raise CheckpointError(f"run '{ident['run_name']}' already finished all {rounds} rounds")
    return meta["round"] + 1


def _run(cfg: Config, out: str | None, echo: bool, callbacks: list, resume: bool) -> dict:
    import ray

    from skillit_ray.coordinator import Coordinator
    from skillit_ray.data.prepare import prepare
    from skillit_ray.train.loop import RunMeta

    t0 = time.time()
    out = os.path.abspath(out or cfg.run.out or default_out(cfg))
    if resume:
        _require_run_dir(out)
    os.makedirs(out, exist_ok=True)
    data = prepare(cfg)
    if echo:
        print(
            f"skillit-ray: {cfg.run.name}: policy {cfg.policy.name}, "
            f"{len(data.train_skills)} train / {len(data.eval_skills)} eval skills, "
            f"{cfg.train.rounds} rounds x {cfg.train.steps_per_round} steps, "
            f"{cfg.train.num_workers} worker(s); starting Ray ...",
            flush=True,
        )
    meta = RunMeta(
        data.train_skills, data.eval_skills, data.vocab_size, data.max_len, data.with_accuracy
    )
    fp = checkpoint.fingerprint(cfg, meta)
    ident = _run_identity(cfg, out, resume, t0)
    if resume:
        start = _check_resumable(ident, fp, cfg.train.rounds)
        t0 = ident["t0"]
        if echo:
            print(f"resuming {ident['run_name']} at round {start + 1}", flush=True)
    else:
        with open(os.path.join(out, "config.yaml"), "w") as fh:
            fh.write(config_mod.to_yaml(cfg))
    metrics_path = os.path.join(out, "metrics.jsonl")
    if not resume:  # a resume rewrites it once the checkpoint's history is back
        open(metrics_path, "w").close()
    ensure_ray(cfg)
    if cfg.policy.params.get("graph") == "learn":
        cfg = _graph_for(cfg, out, echo, resume)
    t = cfg.train
    ctx = PolicyContext(
        data.train_skills,
        data.eval_skills,
        data.natural,
        t.rounds,
        t.steps_per_round,
        t.batch_size,
        t.seed,
        data.train.rows_per_skill,
    )
    run_name = ident["run_name"]
    coord = Coordinator.options(name=f"skillit-coordinator-{run_name}").remote(
        policy_ref(cfg.policy.name), cfg.policy.params, ctx
    )
    try:
        return _fit(cfg, out, echo, callbacks, data, meta, fp, ident, coord, t0)
    finally:
        ray.kill(coord)


def _fit(cfg, out, echo, callbacks, data, meta, fp, ident, coord, t0) -> dict:
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from skillit_ray.train.loop import train_loop_per_worker

    t = cfg.train
    run_name, storage = ident["run_name"], ident["storage"]
    meta.needs = tuple(ray.get(coord.needs.remote()))  # policy errors surface before training
    datasets = data.datasets(cfg.data.tokenizer, cfg.data.memory_budget_mb)
    if "difficulty" in meta.needs:
        datasets["train"] = _score_difficulty(cfg, data, datasets["train"], coord)
    metrics_path = os.path.join(out, "metrics.jsonl")
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "config": cfg.to_dict(),
            "meta": asdict(meta),
            "coordinator": coord,
            "fingerprint": fp,
        },
        scaling_config=ScalingConfig(
            num_workers=t.num_workers,
            use_gpu=t.use_gpu,
            resources_per_worker={"CPU": t.cpus_per_worker},
        ),
        run_config=RunConfig(
            name=run_name,
            storage_path=storage,
            callbacks=callbacks,
            checkpoint_config=CheckpointConfig(num_to_keep=t.keep_checkpoints),
            failure_config=FailureConfig(max_failures=t.max_failures),
        ),
        datasets=datasets,
    )
    writer = MetricsWriter(coord, metrics_path, t.rounds, t0, echo)
    writer.start()
    t_fit = time.time()
    try:
        result = trainer.fit()
    finally:
        writer.stop_event.set()
        writer.join()
    t_done = time.time()
    writer.poll(0.0)
    _save_outputs(out, result, ray.get(coord.ranks.remote()))
    ret = result.return_value or {}
    summary = _summary(cfg, writer.records, ret, t0, t_fit, t_done)
    with open(os.path.join(out, "summary.json"), "w") as fh:
        json.dump(summary, fh, indent=1)
    if cfg.run.storage_path:  # a multi-node run keeps its outputs beside its checkpoints
        _mirror(out, storage, run_name)
    if ret.get("stopped"):
        where = result.checkpoint.path if result.checkpoint else storage
        raise TrainingError(
            f"{ret['stopped']}. Stopped; the rounds before it are in {metrics_path}, the "
            f"diverged state in checkpoint {where}"
        )
    if echo:
        print(
            f"done: {len(writer.records)} rounds in {summary['wall_s']:.1f}s; "
            f"final mean eval loss {_num(summary['final_mean_eval_loss'])}; run dir {out}",
            flush=True,
        )
    return summary


def _mirror(out: str, storage: str, run_name: str) -> None:
    """Copy the run directory's files to <storage>/<run name>/outputs (local path or URI)."""
    import pyarrow.fs as pafs

    fs, root = checkpoint.storage_fs(storage)
    dest = f"{root.rstrip('/')}/{run_name}/outputs"
    fs.create_dir(dest, recursive=True)
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "ranks.jsonl", "graph.json"):
        src = os.path.join(out, name)
        if os.path.exists(src):
            pafs.copy_files(src, f"{dest}/{name}", destination_filesystem=fs)


def _graph_for(cfg: Config, out: str, echo: bool, resume: bool) -> Config:
    """``graph: learn``: learn it now, or on resume reuse the graph the run learned."""
    from skillit_ray.graph_learning import with_learned_graph

    learned = os.path.join(out, "graph.json")
    if resume and os.path.exists(learned):
        cfg = config_mod.from_dict(cfg.to_dict())
        cfg.policy.params["graph"] = learned
        return cfg
    return with_learned_graph(cfg, out, echo)


def _save_outputs(out: str, result, ranks: list[dict]) -> None:
    """The final model (from the last checkpoint in Ray Train's storage), per-rank records."""
    ckpt = result.checkpoint
    if ckpt is not None:
        with ckpt.as_directory() as d:
            src = os.path.join(d, "model")
            if os.path.isdir(src):
                shutil.copytree(src, os.path.join(out, "model"), dirs_exist_ok=True)
    with open(os.path.join(out, "ranks.jsonl"), "w") as fh:
        for rec in ranks:
            fh.write(json.dumps(rec) + "\n")


def _score_difficulty(cfg: Config, data, train_ds, coord):
    """Batch inference with the initial model over the train rows; the policy gets the summary."""
    import ray

    from skillit_ray.data.difficulty import score, summarize

    scored = score(
        train_ds,
        asdict(cfg.model),
        data.vocab_size,
        data.max_len,
        cfg.train.seed,
        cfg.train.cpus_per_worker,
    )
    ray.get(coord.set_difficulty.remote(summarize(scored)))
    return scored


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def _summary(
    cfg: Config, records: list[dict], ret: dict, t0: float, t_fit: float, t_done: float
) -> dict:
    last = records[-1] if records else {}
    mean = lambda d: sum(d.values()) / len(d) if d else None  # noqa: E731
    out = {
        "name": cfg.run.name,
        "policy": cfg.policy.name,
        "rounds": len(records),
        "steps": last.get("step", 0),
        "final_eval_loss": last.get("eval_loss", {}),
        "final_eval_acc": last.get("eval_acc", {}),
        "final_mean_eval_loss": mean(last.get("eval_loss", {})),
        "final_mean_eval_acc": mean(last.get("eval_acc", {})),
        "samples": {s: sum(r["samples"][s] for r in records) for s in last.get("samples", {})},
        "wall_s": time.time() - t0,
        "fit_s": t_done - t_fit,
        "start_round": ret.get("start_round", 0),
    }
    if ret:
        out.update(
            {
                "startup_s": ret["t_loop"]
                - t_fit,  # fit() call -> loop ready (workers, model, drain)
                "worker_start_s": ret["t_enter"] - t_fit,
                "model_s": ret["t_model"] - ret["t_enter"],
                "drain_train_s": ret["t_train_drained"] - ret["t_model"],
                "drain_s": ret["drain_s"],
                "teardown_s": t_done - ret["t_end"],
                "train_s": ret["train_s"],
                "train_samples_per_s": ret["train_samples_per_s"],
                "worker_rss_after_model_mb": ret.get("rss_model_mb"),
                "worker_peak_rss_mb": ret.get("peak_rss_mb"),
                "worker_rss_after_drain_mb": ret.get("rss_after_drain_mb"),
                "worker_peak_rss_by_phase_mb": ret.get("peak_rss_by_phase_mb"),
                "train_store_spilled": ret.get("spilled"),
                "device": ret.get("device"),
                "process_group": ret.get("process_group"),
            }
        )
    return out
