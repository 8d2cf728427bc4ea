"""Experiment loggers (``run.loggers``: TensorBoard, MLflow), offline, through Ray's own hooks.

A run: a Ray Train V2 ``UserCallback`` (``round_logger.RoundLogger``) receives every round's
report on the Train controller, which Ray places on the driver's node, and writes TensorBoard
event files (tensorboardX) and MLflow metrics (MLflow's file store) into the run directory.
A sweep: Ray Tune's own ``TBXLoggerCallback`` and ``MLflowLoggerCallback`` log every trial.
Why this split, and not logging inside the training workers: docs/decisions.md.

This module imports neither Ray nor MLflow until a logger is really used: the package check
runs before Ray starts.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from skillit_ray.errors import ConfigError

# logger -> (module it needs, what to pip install when it is missing)
PACKAGES = {
    "tensorboard": ("tensorboardX", "tensorboardX"),
    "mlflow": ("mlflow", "'skillit-ray[loggers]' (or mlflow-skinny)"),
}
TENSORBOARD_DIR = "tensorboard"  #: event files of a run, in its run directory
MLFLOW_DIR = "mlruns"  #: MLflow's file store, in the run (or sweep) directory
# Keys of a round's report that are its position, not a measurement: the x-axis of the logs.
_POSITION = ("round", "step", "timesteps_total")
_RUN_TAG = "skillit_run"  #: the MLflow tag holding Ray Train's run name (found again on resume)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ValueError:  # set to None in sys.modules: Python's way of blocking an import
        return False


def check_names(names: list[str]) -> None:
    unknown = [x for x in names if not isinstance(x, str) or x not in PACKAGES]
    if unknown:
        raise ConfigError(f"run.loggers: unknown {unknown[0]!r}; expected some of {list(PACKAGES)}")


def check_installed(names: list[str]) -> None:
    """Each requested logger is known and its package can be imported; else one line saying
    what to install. Runs before Ray starts (``preflight.check_config``), without importing
    the packages."""
    check_names(names)
    for name in names:
        module, pip = PACKAGES[name]
        if not _installed(module):
            raise ConfigError(
                f"run.loggers: '{name}' needs the {module} package, which is not installed: "
                f"pip install {pip}"
            )


def mlflow_uri(folder: str) -> str:
    """The file-store URI of ``<folder>/mlruns`` (MLflow takes file: URIs for local stores)."""
    return Path(folder, MLFLOW_DIR).absolute().as_uri()


def scalars(metrics: dict) -> dict[str, float]:
    """The loggable values of a round's report: every finite number but its position."""
    return {
        k: float(v)
        for k, v in metrics.items()
        if k not in _POSITION
        and isinstance(v, (int, float))
        and not isinstance(v, bool)
        and math.isfinite(v)
    }


def mlflow_api():
    """MlflowClient and the entity types; MLflow's telemetry off (the machines are offline),
    and its file store allowed: MLflow 3.18 refuses ``file:`` stores unless
    MLFLOW_ALLOW_FILE_STORE is set (the store is in maintenance mode; docs/decisions.md)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    return MlflowClient, Metric, Param


@dataclass(kw_only=True, frozen=True)
class LogTargets:
    """Where a run's loggers write; travels to the Train controller inside the callback."""

    tensorboard: str | None  #: folder of the TensorBoard event files; None: not requested
    mlflow_uri: str | None  #: MLflow tracking URI (a file store); None: not requested
    mlflow_run: str | None  #: the MLflow run, created on the driver (continued on resume)
    #: a resumed run's first step: TensorBoard hides older events at or after it
    purge_step: int | None = None


# MLflow's names take letters, digits and "_-. /"; a skill name may hold more.
_NOT_MLFLOW = re.compile(r"[^\w\-. /]")
MLFLOW_METRICS, MLFLOW_PARAMS = 1000, 100  # MLflow's limits per log_batch call


def mlflow_key(name: str) -> str:
    return _NOT_MLFLOW.sub("_", name)


def flat_params(cfg_dict: dict, prefix: str = "") -> dict[str, str]:
    """A config as MLflow params: dotted keys, text values (MLflow caps a value's length)."""
    out: dict[str, str] = {}
    for key, value in cfg_dict.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flat_params(value, f"{name}."))
        else:
            out[mlflow_key(name)] = str(value)[:500]
    return out


def log_batches(client, run_id: str, metrics=(), params=()) -> None:
    """``log_batch`` within MLflow's limits (thousands of skills make thousands of metrics)."""
    metrics, params = list(metrics), list(params)
    for i in range(0, len(metrics), MLFLOW_METRICS):
        client.log_batch(run_id, metrics=metrics[i : i + MLFLOW_METRICS])
    for i in range(0, len(params), MLFLOW_PARAMS):
        client.log_batch(run_id, params=params[i : i + MLFLOW_PARAMS])


def start_run(cfg, out: str, run_name: str, resume: bool, start_step: int) -> LogTargets | None:
    """The run's log targets under its run directory; None when no logger is requested. The
    MLflow run is made here, on the driver, with the config as its params; a resumed run
    continues the MLflow run it started (found by Ray Train's run name)."""
    names = cfg.run.loggers
    if not names:
        return None
    tb = os.path.join(out, TENSORBOARD_DIR) if "tensorboard" in names else None
    uri = mlflow_uri(out) if "mlflow" in names else None
    run_id = None
    if uri is not None:
        client_cls, _, param_cls = mlflow_api()
        client = client_cls(tracking_uri=uri)
        exp = client.get_experiment_by_name(cfg.run.name)
        exp_id = exp.experiment_id if exp else client.create_experiment(cfg.run.name)
        if resume:
            found = client.search_runs(
                [exp_id], filter_string=f"tags.{_RUN_TAG} = '{run_name}'", max_results=1
            )
            if found:
                run_id = found[0].info.run_id
                client.update_run(run_id, status="RUNNING")
        if run_id is None:
            made = client.create_run(
                exp_id, run_name=os.path.basename(out), tags={_RUN_TAG: run_name}
            )
            run_id = made.info.run_id
            params = flat_params(cfg.to_dict())
            log_batches(client, run_id, params=[param_cls(k, v) for k, v in params.items()])
    return LogTargets(
        tensorboard=tb,
        mlflow_uri=uri,
        mlflow_run=run_id,
        purge_step=start_step if resume else None,
    )


def end_run(targets: LogTargets | None, status: str) -> None:
    """Mark the MLflow run FINISHED, KILLED (stopped by a signal) or FAILED."""
    if targets is None or targets.mlflow_run is None:
        return
    client_cls, _, _ = mlflow_api()
    client_cls(tracking_uri=targets.mlflow_uri).set_terminated(targets.mlflow_run, status)


def tune_callbacks(names: list[str], out: str, experiment: str) -> list:
    """Ray Tune's own logger callbacks for a sweep: TensorBoard event files in each trial's
    folder of Tune's storage (<sweep>/ray/tune/<trial>/), MLflow runs (one per trial) in
    <sweep>/mlruns."""
    callbacks = []
    if "tensorboard" in names:
        from ray.tune.logger import TBXLoggerCallback

        callbacks.append(TBXLoggerCallback())
    if "mlflow" in names:
        mlflow_api()  # telemetry off before Ray's integration imports MLflow
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        callbacks.append(
            MLflowLoggerCallback(
                tracking_uri=mlflow_uri(out), experiment_name=experiment, save_artifact=False
            )
        )
    return callbacks
