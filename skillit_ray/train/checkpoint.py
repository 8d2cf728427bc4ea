"""Run checkpoints: what a round boundary must hold for an exact resume, and how it is checked.

A checkpoint directory (rank 0 hands it to ``ray.train.report``) holds:

- ``state.pt``: model, optimizer and LR-schedule state, the step, and every rank's torch RNG
  state; tensors and plain containers only, so it loads with ``torch.load(weights_only=True)``.
- ``ranks.json``: every rank's sampler state (per-skill epoch, cursor, rows drawn, pools).
- ``coordinator.json``: the policy's state, the mixtures, the round history and rank records.
- ``meta.json``: the round it ends, whether training had diverged, and the run's fingerprint
  (skills, model, batch, schedule, policy): a resume with a different fingerprint is refused.
- ``model/`` (last round only): the model as ``save_pretrained`` writes it (safetensors).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

from skillit_ray.errors import CheckpointError

# torch is imported by the functions that need it: ``latest`` also serves the driver's check of
# graph.init_from before a run (preflight), which stays free of torch's import (seconds).

# Train fields that change what data a resumed run sees or how it learns from it.
TRAIN_FIELDS = (
    "rounds",
    "steps_per_round",
    "batch_size",
    "num_workers",
    "seed",
    "lr",
    "warmup_steps",
    "lr_schedule",
    "weight_decay",
    "grad_clip",
    "eval_every",
)


def fingerprint(cfg, meta) -> dict:
    """What must be equal between a checkpoint and the run resuming from it (JSON-able)."""
    out = {
        "train_skills": list(meta.train_skills),
        "eval_skills": list(meta.eval_skills),
        "vocab_size": meta.vocab_size,
        "max_len": meta.max_len,
        "data": meta.data_fingerprint,
        "model": asdict(cfg.model),
        "policy.name": cfg.policy.name,
        "policy.params": cfg.policy.params,
    }
    out.update({f"train.{k}": getattr(cfg.train, k) for k in TRAIN_FIELDS})
    return json.loads(json.dumps(out, default=str))


def check_fingerprint(saved: dict, current: dict, where: str) -> None:
    # Checkpoints written before train.lr_schedule existed decayed linearly.
    saved = {"train.lr_schedule": "linear", **saved}
    diffs = [
        f"{k}: checkpoint has {saved.get(k)!r}, this run has {current.get(k)!r}"
        for k in sorted(set(saved) | set(current))
        if saved.get(k) != current.get(k)
    ]
    if diffs:
        raise CheckpointError(
            f"checkpoint {where} does not match this run (resume needs the same data, model, "
            "schedule and policy):\n  " + "\n  ".join(diffs)
        )


def write(d: str, state: dict, ranks: list[dict], coordinator: dict, meta: dict) -> None:
    import torch

    torch.save(state, os.path.join(d, "state.pt"))
    for name, value in (("ranks.json", ranks), ("coordinator.json", coordinator)):
        with open(os.path.join(d, name), "w") as fh:
            json.dump(value, fh)
    with open(os.path.join(d, "meta.json"), "w") as fh:
        json.dump(meta, fh, indent=1)


@dataclass(frozen=True)
class Restored:
    """A checkpoint directory, read back."""

    state: dict  #: model, optimizer, scheduler, step, every rank's torch RNG state
    ranks: list[dict]  #: every rank's sampler state, by rank
    coordinator: dict  #: the coordinator's snapshot (policy state, mixtures, history)
    meta: dict  #: round, step, diverged, fingerprint

    @property
    def round(self) -> int:
        return self.meta["round"]


def read(d: str, mmap: bool = False) -> Restored:
    """A checkpoint directory, without unpickling code (``mmap``: map the tensors instead of
    reading them, to check a checkpoint cheaply)."""
    import torch

    path = os.path.join(d, "state.pt")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:  # truncated, not a torch file, or holding non-tensor objects
        raise CheckpointError(f"{path}: unreadable checkpoint file ({exc})") from None
    import pyarrow.fs as pafs

    fs = pafs.LocalFileSystem()
    ranks, coord, meta = (
        _read_json(fs, os.path.join(d, n)) for n in ("ranks.json", "coordinator.json", "meta.json")
    )
    return Restored(state, ranks, coord, meta)


def storage_fs(storage: str):
    """(pyarrow filesystem, root path) of Ray Train storage: a local path or a URI."""
    import pyarrow.fs as pafs

    if "://" in storage:
        return pafs.FileSystem.from_uri(storage)
    return pafs.LocalFileSystem(), storage


def latest(storage: str, run_name: str) -> tuple[str, dict] | None:
    """The newest checkpoint of a run in Ray Train storage (a local path or a pyarrow URI)
    and its meta.json; None when the run has none."""
    import pyarrow.fs as pafs

    fs, root = storage_fs(storage)
    run_dir = f"{root.rstrip('/')}/{run_name}"
    try:
        infos = fs.get_file_info(pafs.FileSelector(run_dir, allow_not_found=True))
    except OSError as exc:
        raise CheckpointError(f"{run_dir}: cannot list checkpoints ({exc})") from None
    dirs = [
        i.path
        for i in infos
        if i.type == pafs.FileType.Directory and i.base_name.startswith("checkpoint_")
    ]
    # Ray Train resumes from the checkpoint its manager registered last; a directory written
    # after it (the process died before registering it) is not what the workers will load.
    registered = _registered(fs, run_dir)
    if registered is not None:
        dirs = [d for d in dirs if d.rsplit("/", 1)[-1] == registered]
    found = []
    for d in dirs:
        path = f"{d}/meta.json"
        if fs.get_file_info(path).type != pafs.FileType.File:
            continue  # an upload cut short by a crash; Ray Train never registered it
        found.append((d, _read_json(fs, path)))
    if not found:
        return None
    return max(found, key=lambda f: f[1].get("round", -1))


def _read_json(fs, path: str):
    try:
        with fs.open_input_stream(path) as fh:
            return json.loads(fh.read())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable checkpoint file ({exc})") from None


def _registered(fs, run_dir: str) -> str | None:
    """The directory name of Ray Train's latest registered checkpoint (from its snapshot)."""
    import pyarrow.fs as pafs

    path = f"{run_dir}/checkpoint_manager_snapshot.json"
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    latest = (_read_json(fs, path) or {}).get("latest_checkpoint_result") or {}
    return latest.get("checkpoint_dir_name")
