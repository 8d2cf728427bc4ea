"""Ray start-up: join the cluster a job runs in, or start an embedded local one."""

from __future__ import annotations

import logging
import os

from skillit_ray.config import Config

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


# Where `ray start` records the newest cluster's address; `ray stop` removes it.
CURRENT_CLUSTER = "/tmp/ray/ray_current_cluster"


def forget_dead_cluster(path: str = CURRENT_CLUSTER) -> bool:
    """Remove Ray's pointer to the newest cluster when nothing listens there any more.

    A head stopped without `ray stop` (killed, or `ray start --block` terminated) leaves the
    file behind. Ray Train's placement-group cleaner asks the State API about the controller
    through that address; against a dead one each query waits for its timeout, and every
    fit() then spends 12 s in teardown (measured: 13.0 s vs 0.9 s). A live cluster is left
    alone: the query fails fast there."""
    import socket

    try:
        with open(path) as fh:
            host, _, port = fh.read().strip().rpartition(":")
        with socket.create_connection((host, int(port)), timeout=0.5):
            return False
    except (OSError, ValueError):
        pass
    try:
        os.remove(path)
    except OSError:
        return False
    return True


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
    forget_dead_cluster()
    t = cfg.train
    # Logical headroom: Ray Data tasks need a whole free CPU beside the training workers.
    cpus = max(os.cpu_count() or 1, t.num_workers * t.cpus_per_worker) + 2
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, **kwargs)


def require_shared_storage(storage_path: str | None, nodes: list[dict], what: str) -> None:
    """On a cluster of more than one node, checkpoints need a folder every node can reach.

    Without ``run.storage_path`` Ray Train writes checkpoints under the run directory on each
    worker's own disk: a worker on another node writes where the driver never looks, and the
    run would fail at its first checkpoint, or resume from nothing after a lost node. ``nodes``
    is ``ray.nodes()``."""
    alive = [n for n in nodes if n.get("Alive")]
    if len(alive) > 1 and not storage_path:
        from skillit_ray.errors import ConfigError

        raise ConfigError(
            f"this Ray cluster has {len(alive)} nodes, and {what} writes checkpoints that every "
            "node must reach: set run.storage_path to a folder all nodes share (an NFS mount) "
            "or a URI (s3://..., gs://...), e.g. --set run.storage_path=/shared/skillit"
        )
