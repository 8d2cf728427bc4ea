"""A run's TensorBoard and MLflow logs, written by a Ray Train V2 ``UserCallback``.

Ray Train calls ``after_report`` on its controller, which it pins to the driver's node, with
what every rank passed to ``ray.train.report``: rank 0's round metrics (per-skill eval loss and
accuracy, the round's mixture, per-skill train loss, lr). The controller outlives a restarted
worker group, so one callback logs the whole fit; Tune's ``TuneReportCallback`` is the same kind
of object. Where the files go and the MLflow run: ``loggers.start_run``.
"""

from __future__ import annotations

import os
import threading
import time

from ray.train.v2.api.callback import UserCallback

from skillit_ray.loggers import LogTargets, log_batches, mlflow_api, mlflow_key, scalars


class _EventFile:
    """One TensorBoard event file, written as each round arrives. tensorboardX's SummaryWriter
    hands events to a thread through a queue, and its flush() does not wait for that thread:
    the controller can end before the last round reaches the file (seen in the tests)."""

    def __init__(self, folder: str, purge_step: int | None, suffix: str):
        from tensorboardX.event_file_writer import EventsWriter
        from tensorboardX.proto.event_pb2 import Event, SessionLog

        os.makedirs(folder, exist_ok=True)
        self.writer = EventsWriter(os.path.join(folder, "events"), suffix)
        if purge_step is not None:  # as SummaryWriter(purge_step=...) marks it
            self.writer.write_event(Event(step=purge_step, file_version="brain.Event:2"))
            start = SessionLog(status=SessionLog.START)
            self.writer.write_event(Event(step=purge_step, session_log=start))

    def write(self, values: dict[str, float], step: int) -> None:
        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.summary import scalar

        now = time.time()
        for key, value in values.items():
            self.writer.write_event(Event(wall_time=now, step=step, summary=scalar(key, value)))
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class RoundLogger(UserCallback):
    """Logs each round's report (rank 0's) to the run's TensorBoard folder and MLflow run."""

    def __init__(self, targets: LogTargets):
        self.targets = targets
        self._events: _EventFile | None = None  # made on the controller, on the first report
        self._last_step: int | None = None
        self._files = 0

    def __getstate__(self) -> dict:
        # pickled to the controller before any report: no open file travels
        return {"targets": self.targets, "_events": None, "_last_step": None, "_files": 0}

    def __setstate__(self, state: dict) -> None:
        """On the controller, as it starts: import MLflow in the background while the workers
        start (2-10 s on a loaded 2-core machine), not during the first round's report."""
        self.__dict__.update(state)
        if self.targets.mlflow_run is not None:
            threading.Thread(target=mlflow_api, daemon=True).start()

    def _tensorboard(self, step: int) -> _EventFile:
        """The event file. A step at or before the last one logged is a worker group restored
        from a checkpoint: a new file purges the events after it, so TensorBoard shows each
        step once (a resumed run starts with its first step as purge step)."""
        purge = None
        if self._events is None:
            purge = self.targets.purge_step
        elif self._last_step is not None and step <= self._last_step:
            self._events.close()
            self._events, purge = None, step
        if self._events is None:
            self._files += 1
            suffix = f".{os.getpid()}.{self._files}"  # two files within a second stay apart
            self._events = _EventFile(self.targets.tensorboard, purge, suffix)
        return self._events

    def after_report(self, run_context, metrics, checkpoint) -> None:
        row = metrics[0]  # rank 0's: the round's metrics (every rank reports the same round)
        step = int(row["step"])
        values = scalars(row)
        if self.targets.tensorboard is not None:
            self._tensorboard(step).write(values, step)
        if self.targets.mlflow_run is not None:
            client_cls, metric_cls, _ = mlflow_api()
            stamp = int(time.time() * 1000)
            log_batches(
                client_cls(tracking_uri=self.targets.mlflow_uri),
                self.targets.mlflow_run,
                metrics=[metric_cls(mlflow_key(k), v, stamp, step) for k, v in values.items()],
            )
        self._last_step = step
