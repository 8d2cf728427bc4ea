"""Assemble Ray Train's TorchTrainer for a run and fit it while its rounds stream to the
driver (metrics.jsonl and one printed line per round)."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import asdict, dataclass

from skillit_ray.config import Config
from skillit_ray.progress import MetricsWriter
from skillit_ray.records import RoundRecord, WorkerStats
from skillit_ray.rundir import RunIdentity
from skillit_ray.train.loop import RunMeta


@dataclass(frozen=True)
class Fitted:
    """What a fit leaves: Ray Train's result, the rounds recorded, rank 0's stats, times."""

    result: object  # ray.train.Result
    records: list[RoundRecord]
    stats: WorkerStats | None
    t_fit: float
    t_done: float


def make_trainer(
    cfg: Config,
    meta: RunMeta,
    fingerprint: dict,
    ident: RunIdentity,
    coord,
    difficulty: dict | None,
    callbacks: list,
):
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from skillit_ray.train.loop import train_loop_per_worker

    t = cfg.train
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "config": cfg.to_dict(),
            "meta": asdict(meta),
            "coordinator": coord,
            "fingerprint": fingerprint,
            # Per-row scores, once in the object store (workers read the token cache itself).
            "difficulty": None if difficulty is None else ray.put(difficulty),
        },
        scaling_config=ScalingConfig(
            num_workers=t.num_workers,
            use_gpu=t.use_gpu,
            resources_per_worker={"CPU": t.cpus_per_worker, **t.worker_resources},
        ),
        run_config=RunConfig(
            name=ident.run_name,
            storage_path=ident.storage,
            callbacks=callbacks,
            checkpoint_config=CheckpointConfig(num_to_keep=t.keep_checkpoints),
            failure_config=FailureConfig(max_failures=t.max_failures),
        ),
    )


def fit(
    trainer,
    coord,
    metrics_path: str,
    rounds: int,
    t0: float,
    echo: bool,
    before: dict[int, float] | None = None,
    max_failures: int = 0,
) -> Fitted:
    """``trainer.fit()`` with a thread streaming the coordinator's round records meanwhile
    (``before``: running time of the rounds a resumed run keeps) and one saying when a node
    leaves or joins the cluster."""
    from skillit_ray.cluster import NodeWatch

    writer = MetricsWriter(coord, metrics_path, rounds, t0, echo, before)
    writer.start()
    t_fit = time.time()
    fitted = False
    try:
        with NodeWatch(echo, max_failures):
            result = _fit_off_main_thread(trainer)
        fitted = True
    finally:
        writer.stop_event.set()
        writer.join()
        if not fitted:  # the rounds trained before a failure still reach metrics.jsonl
            with contextlib.suppress(Exception):
                writer.poll(0.0)
    t_done = time.time()
    writer.poll(0.0)
    return Fitted(result, writer.records, result.return_value, t_fit, t_done)


def _fit_off_main_thread(trainer):
    """``trainer.fit()`` in a thread while the main thread waits. Ray Train registers its own
    SIGINT handler (abort the run at once) when fit() runs in the main thread; from another
    thread it does not, so ours (``interrupt.StopOnSignal``: stop at the round boundary, keep
    the checkpoint) stays in charge."""
    box: dict = {}

    def target() -> None:
        try:
            box["result"] = trainer.fit()
        except BaseException as exc:  # handed to the main thread as it is
            box["error"] = exc

    thread = threading.Thread(target=target, name="skillit-fit", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.2)  # short waits: signal handlers run in the main thread between them
    if "error" in box:
        raise box["error"]
    return box["result"]
