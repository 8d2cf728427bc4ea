"""The run directory: who the run is (run.json), whether it can resume, and what it leaves
behind (config, metrics, ranks, summary, the final model, a mirror in the run's storage)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from dataclasses import asdict, dataclass

from skillit_ray import config as config_mod
from skillit_ray.config import Config
from skillit_ray.errors import CheckpointError, ConfigError
from skillit_ray.records import RankRecord, RoundRecord, WorkerStats

RUN_FILE = "run.json"
# What a run directory holds that is worth keeping beside the checkpoints on shared storage
# (the last two: folders of the experiment loggers, run.loggers).
OUTPUT_FILES = (
    "config.yaml",
    "metrics.jsonl",
    "summary.json",
    "ranks.jsonl",
    "graph.json",
    "tensorboard",
    "mlruns",
)


def default_out(cfg: Config) -> str:
    return os.path.join("runs", f"{cfg.run.name}-{time.strftime('%Y%m%d-%H%M%S')}")


# Set in the entrypoint of a job started with `ray job submit` (Ray's job supervisor).
JOB_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"


def resolve_out(out: str | None, cfg: Config, what: str = "--out") -> str:
    """The run directory, absolute. Inside a submitted job the working directory is Ray's
    temporary copy of --working-dir, deleted with the job's session: a relative directory is
    placed under a local run.storage_path, else refused, saying what to pass."""
    out = out or default_out(cfg)
    if os.path.isabs(out) or JOB_ENV not in os.environ:
        return os.path.abspath(out)
    storage = cfg.run.storage_path
    if storage and "://" not in storage and os.path.isabs(storage):
        return os.path.join(storage, out)
    raise ConfigError(
        f"{what} '{out}' is relative, and inside `ray job submit` it would land in Ray's "
        "temporary copy of the working directory, which is deleted with the job; pass an "
        "absolute path (e.g. --out /shared/runs/NAME) or set run.storage_path to an "
        "absolute local path (relative run directories are then placed under it)"
    )


@dataclass(frozen=True)
class RunIdentity:
    """Ray Train's run name and storage, and when the run first started (run.json). A fresh
    name per run, so a new run in an old directory never silently resumes the old one. The
    name also names the run's coordinator actor on the cluster, so it ends in a random token:
    two runs of the same config in same-named directories started within one second (an
    experiment's quick modes at once, a sweep) would otherwise take the same actor name."""

    run_name: str
    storage: str
    t0: float

    @classmethod
    def create(cls, cfg: Config, out: str, t0: float) -> RunIdentity:
        storage = cfg.run.storage_path or os.path.join(out, "ray")
        if "://" not in storage:  # a pyarrow filesystem URI goes to Ray Train as it is
            storage = os.path.abspath(storage)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(t0))
        token = secrets.token_hex(3)
        ident = cls(f"{cfg.run.name}-{os.path.basename(out)}-{stamp}-{token}", storage, t0)
        with open(os.path.join(out, RUN_FILE), "w") as fh:
            json.dump(asdict(ident), fh, indent=1)
        return ident

    @classmethod
    def load(cls, out: str) -> RunIdentity:
        with open(os.path.join(out, RUN_FILE)) as fh:
            return cls(**json.load(fh))


def require_run_dir(run_dir: str) -> None:
    if not all(os.path.exists(os.path.join(run_dir, f)) for f in (RUN_FILE, "config.yaml")):
        raise CheckpointError(
            f"{run_dir}: not a skillit-ray run directory (no {RUN_FILE} or config.yaml); "
            "--resume takes the --out directory of an earlier run"
        )


def resume_config(run_dir: str, overrides: list[str] | None = None) -> Config:
    """The config a run directory was started with (plus overrides), to resume it."""
    require_run_dir(run_dir)
    return config_mod.load(os.path.join(run_dir, "config.yaml"), overrides)


def _complete_outputs(out: str, path: str, t0: float) -> bool:
    """A driver killed while its workers committed the last round's checkpoint leaves a finished
    run whose metrics.jsonl lacks that round and whose model folder is an earlier one: rewrite
    the file from the checkpoint's history (every round's record) when it holds fewer rounds,
    and copy the checkpoint's model. True when it did."""
    from skillit_ray.records import RoundRecord
    from skillit_ray.train import checkpoint

    metrics = os.path.join(out, "metrics.jsonl")
    try:
        with open(metrics) as fh:
            have = sum(1 for line in fh if line.strip())
    except OSError:
        have = 0
    snap = checkpoint.read(path).coordinator or {}
    history = (snap.get("coordinator") or {}).get("history") or []
    if len(history) <= have:
        return False
    with open(metrics, "w") as fh:
        for row in history:
            fh.write(json.dumps(RoundRecord.from_json(row).metrics_row(t0)) + "\n")
    model = os.path.join(path, "model")  # the final model too (a local checkpoint's copy)
    if "://" not in path and os.path.isdir(model):
        shutil.copytree(model, os.path.join(out, "model"), dirs_exist_ok=True)
    return True


def resume_round(ident: RunIdentity, fp: dict, rounds: int, out: str | None = None) -> int:
    """The round the resumed run starts at, after checking the newest checkpoint fits."""
    from skillit_ray.train import checkpoint  # torch: imported once a run really starts

    found = checkpoint.latest(ident.storage, ident.run_name)
    if found is None:
        raise CheckpointError(
            f"no checkpoint of run '{ident.run_name}' in {ident.storage}: nothing to resume"
        )
    path, meta = found
    checkpoint.check_fingerprint(meta.get("fingerprint", {}), fp, path)
    if "://" not in ident.storage:  # every file readable, before workers start on it
        checkpoint.read(path, mmap=True)
    if meta.get("diverged"):
        raise CheckpointError(
            f"the newest checkpoint {path} holds a diverged state ({meta['diverged']}); "
            "start a new run instead"
        )
    if meta["round"] + 1 >= rounds:
        note = ""
        if out is not None and _complete_outputs(out, path, ident.t0):
            note = (
                " (its last rounds were missing from metrics.jsonl: written, with the final "
                f"model, from {path})"
            )
        raise CheckpointError(f"run '{ident.run_name}' already finished all {rounds} rounds{note}")
    return meta["round"] + 1


def running_time(out: str, start: int) -> dict[int, float]:
    """wall_s (running time since the run started) of the rounds before ``start`` in the run
    directory's metrics.jsonl: what a resumed run keeps and counts on from."""
    path = os.path.join(out, "metrics.jsonl")
    if not os.path.exists(path):
        return {}
    with open(path) as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return {r["round"]: float(r.get("wall_s", 0.0)) for r in rows if r["round"] < start}


def save_outputs(out: str, result, ranks: list[RankRecord]) -> None:
    """The final model (from the last checkpoint in Ray Train's storage), per-rank records."""
    ckpt = result.checkpoint
    if ckpt is not None:
        with ckpt.as_directory() as d:
            src = os.path.join(d, "model")
            if os.path.isdir(src):
                shutil.copytree(src, os.path.join(out, "model"), dirs_exist_ok=True)
    with open(os.path.join(out, "ranks.jsonl"), "w") as fh:
        for rec in ranks:
            fh.write(json.dumps(rec.to_json()) + "\n")


def mirror(out: str, ident: RunIdentity) -> None:
    """Copy the run directory's files to <storage>/<run name>/outputs (local path or URI)."""
    import pyarrow.fs as pafs

    from skillit_ray.train import checkpoint

    fs, root = checkpoint.storage_fs(ident.storage)
    dest = f"{root.rstrip('/')}/{ident.run_name}/outputs"
    fs.create_dir(dest, recursive=True)
    for name in OUTPUT_FILES:
        src = os.path.join(out, name)
        if os.path.exists(src):
            pafs.copy_files(src, f"{dest}/{name}", destination_filesystem=fs)


def summary(
    cfg: Config,
    records: list[RoundRecord],
    stats: WorkerStats | None,
    t0: float,
    t_fit: float,
    t_done: float,
) -> dict:
    """summary.json: final per-skill values, rows per skill, and where the time went."""
    last = records[-1] if records else None
    mean = lambda d: sum(d.values()) / len(d) if d else None  # noqa: E731
    loss = last.eval_loss if last else {}
    acc = last.eval_acc if last else {}
    out = {
        "name": cfg.run.name,
        "policy": cfg.policy.name,
        "rounds": len(records),
        "steps": last.step if last else 0,
        "final_eval_loss": loss,
        "final_eval_acc": acc,
        "final_mean_eval_loss": mean(loss),
        "final_mean_eval_acc": mean(acc),
        "samples": {s: sum(r.samples[s] for r in records) for s in (last.samples if last else {})},
        "wall_s": time.time() - t0,
        "fit_s": t_done - t_fit,
        "start_round": stats.start_round if stats else 0,
        "interrupted_after": stats.interrupted_after if stats else None,
    }
    if stats is not None:
        out.update(stats.summary(t_fit, t_done))
    return out
