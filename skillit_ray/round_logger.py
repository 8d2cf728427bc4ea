"""A run's TensorBoard and MLflow logs, written by a Ray Train V2 ``UserCallback``.

Ray Train calls ``after_report`` on its controller, which it pins to the driver's node, with
what every rank passed to ``ray.train.report``: rank 0's round metrics (per-skill eval loss and
accuracy, the round's mixture, per-skill train loss, lr). The controller outlives a restarted
worker group, so one callback logs the whole fit; Tune's ``TuneReportCallback`` is the same kind
of object. Where the files go and the MLflow run: ``loggers.start_run``.
"""

from __future__ import annotations

import threading
import time

from ray.train.v2.api.callback import UserCallback

from skillit_ray.loggers import LogTargets, log_batches, mlflow_api, mlflow_key, scalars


class RoundLogger(UserCallback):
    """Logs each round's report (rank 0's) to the run's TensorBoard folder and MLflow run."""

    def __init__(self, targets: LogTargets):
        self.targets = targets
        self._writer = None  # made on the controller, on the first report
        self._last_step: int | None = None

    def __getstate__(self) -> dict:
        # pickled to the controller before any report: no open writer travels
        return {"targets": self.targets, "_writer": None, "_last_step": None}

    def __setstate__(self, state: dict) -> None:
        """On the controller, as it starts: import MLflow in the background while the workers
        start (2-10 s on a loaded 2-core machine), not during the first round's report."""
        self.__dict__.update(state)
        if self.targets.mlflow_run is not None:
            threading.Thread(target=mlflow_api, daemon=True).start()

    def _tensorboard(self, step: int):
        """The event writer. A step at or before the last one logged is a worker group
        restored from a checkpoint: a new writer purges the events after it, so TensorBoard
        shows each step once (a resumed run starts with its first step as purge step)."""
        from tensorboardX import SummaryWriter

        purge = None
        if self._writer is None:
            purge = self.targets.purge_step
        elif self._last_step is not None and step <= self._last_step:
            self._writer.close()
            self._writer, purge = None, step
        if self._writer is None:
            self._writer = SummaryWriter(self.targets.tensorboard, purge_step=purge)
        return self._writer

    def after_report(self, run_context, metrics, checkpoint) -> None:
        row = metrics[0]  # rank 0's: the round's metrics (every rank reports the same round)
        step = int(row["step"])
        values = scalars(row)
        if self.targets.tensorboard is not None:
            writer = self._tensorboard(step)
            for key, value in values.items():
                writer.add_scalar(key, value, global_step=step)
            writer.flush()  # the controller has no end-of-run hook: each round is on disk
        if self.targets.mlflow_run is not None:
            client_cls, metric_cls, _ = mlflow_api()
            stamp = int(time.time() * 1000)
            log_batches(
                client_cls(tracking_uri=self.targets.mlflow_uri),
                self.targets.mlflow_run,
                metrics=[metric_cls(mlflow_key(k), v, stamp, step) for k, v in values.items()],
            )
        self._last_step = step
