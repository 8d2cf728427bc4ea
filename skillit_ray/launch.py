"""Config -> a running TorchTrainer: Ray start-up, coordinator, run directory, progress lines."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from dataclasses import asdict

from skillit_ray import config as config_mod
from skillit_ray.config import Config
from skillit_ray.coordinator import OBS_FIELDS
from skillit_ray.errors import SkillitError
from skillit_ray.mixture import PolicyContext

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


def _fmt_round(rec: dict, rounds: int, t0: float) -> str:
    loss = rec["eval_loss"]
    acc = rec["eval_acc"]
    mean = lambda d: sum(d.values()) / len(d) if d else float("nan")  # noqa: E731
    short = lambda s: s.rsplit("/", 1)[-1]  # noqa: E731
    mix = " ".join(f"{short(s)}={p:.2f}" for s, p in rec["mixture"].items())
    acc_s = f" acc {mean(acc):.3f}" if acc else ""
    loss_s = f" | eval loss {mean(loss):.4f}" if loss else ""
    return (
        f"round {rec['round'] + 1}/{rounds} step {rec['step']}{loss_s}"
        f"{acc_s} | train loss {mean(rec['train_loss']):.4f} | mixture {mix} | "
        f"{time.time() - t0:.1f}s"
    )


class MetricsWriter(threading.Thread):
    """Streams round records from the coordinator into metrics.jsonl and prints one line each."""

    KEYS = (*OBS_FIELDS, "row_filter", "next_mixture", "lr", "train_s", "eval_s", "consumed")

    def __init__(self, coord, path: str, rounds: int, t0: float, echo: bool):
        super().__init__(daemon=True)
        self.coord, self.path, self.rounds, self.t0, self.echo = coord, path, rounds, t0, echo
        self.records: list[dict] = []
        self.stop_event = threading.Event()

    def poll(self, timeout: float) -> None:
        import ray

        new, _ = ray.get(self.coord.records.remote(len(self.records), timeout))
        with open(self.path, "a") as fh:
            for rec in new:
                row = {k: rec[k] for k in self.KEYS if k in rec}
                row["wall_s"] = rec["t_report"] - self.t0
                fh.write(json.dumps(row) + "\n")
                self.records.append(row)
                if self.echo:
                    print(_fmt_round(rec, self.rounds, self.t0), flush=True)

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.poll(1.0)
            except Exception:  # the actor is gone once the run ends; the final poll reports it
                time.sleep(0.5)


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


def run(cfg: Config, out: str | None = None, echo: bool = True, callbacks=None) -> dict:
    """Run one training job; returns the summary (also written to <out>/summary.json).

    ``callbacks`` go to Ray Train's RunConfig (a sweep passes TuneReportCallback)."""
    try:
        return _run(cfg, out, echo, callbacks or [])
    except Exception as exc:
        ours = find_cause(exc)
        if ours is not None and ours is not exc:
            raise ours from None
        raise


def _run(cfg: Config, out: str | None, echo: bool, callbacks: list) -> dict:
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from skillit_ray.coordinator import Coordinator
    from skillit_ray.data.prepare import prepare
    from skillit_ray.train.loop import RunMeta, train_loop_per_worker

    t0 = time.time()
    out = os.path.abspath(out or cfg.run.out or default_out(cfg))
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
    with open(os.path.join(out, "config.yaml"), "w") as fh:
        fh.write(config_mod.to_yaml(cfg))
    metrics_path = os.path.join(out, "metrics.jsonl")
    open(metrics_path, "w").close()
    ensure_ray(cfg)
    if cfg.policy.params.get("graph") == "learn":
        from skillit_ray.graph_learning import with_learned_graph

        cfg = with_learned_graph(cfg, out, echo)
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
    coord = Coordinator.remote(policy_ref(cfg.policy.name), cfg.policy.params, ctx)
    needs = tuple(ray.get(coord.needs.remote()))  # policy errors surface here, before training
    datasets = data.datasets(cfg.data.tokenizer)
    if "difficulty" in needs:
        datasets["train"] = _score_difficulty(cfg, data, datasets["train"], coord)
    meta = RunMeta(
        data.train_skills,
        data.eval_skills,
        data.vocab_size,
        data.max_len,
        data.with_accuracy,
        needs,
    )
    run_name = f"{cfg.run.name}-{os.path.basename(out)}"
    storage = cfg.run.storage_path or os.path.join(out, "ray")
    if "://" not in storage:  # a pyarrow filesystem URI goes to Ray Train as it is
        storage = os.path.abspath(storage)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"config": cfg.to_dict(), "meta": asdict(meta), "coordinator": coord},
        scaling_config=ScalingConfig(
            num_workers=t.num_workers,
            use_gpu=t.use_gpu,
            resources_per_worker={"CPU": t.cpus_per_worker},
        ),
        run_config=RunConfig(
            name=run_name,
            storage_path=storage,
            callbacks=callbacks,
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
    summary = _summary(cfg, writer.records, result.return_value or {}, t0, t_fit, t_done)
    with open(os.path.join(out, "summary.json"), "w") as fh:
        json.dump(summary, fh, indent=1)
    if cfg.run.storage_path:  # a multi-node run keeps its outputs beside its checkpoints
        _mirror(out, storage, run_name)
    ray.kill(coord)
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

    if "://" in storage:
        fs, root = pafs.FileSystem.from_uri(storage)
    else:
        fs, root = pafs.LocalFileSystem(), storage
    dest = f"{root.rstrip('/')}/{run_name}/outputs"
    fs.create_dir(dest, recursive=True)
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "ranks.jsonl", "graph.json"):
        src = os.path.join(out, name)
        if os.path.exists(src):
            pafs.copy_files(src, f"{dest}/{name}", destination_filesystem=fs)


def _save_outputs(out: str, result, ranks: list[dict]) -> None:
    """The final model (from Ray Train's checkpoint storage) and the per-rank record."""
    if result.checkpoint is not None:
        result.checkpoint.to_directory(os.path.join(out, "model"))
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
            }
        )
    return out
