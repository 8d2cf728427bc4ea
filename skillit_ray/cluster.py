"""Ray start-up: join the cluster a job runs in, or start an embedded local one."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading

from skillit_ray.config import Config
from skillit_ray.errors import ClusterError

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


def quiet_ray_logs() -> None:
    """Silence Ray's own console lines (run.ray_logs: false).

    Ray Data logs each execution at INFO on the driver, warns that progress bars are off (we turn
    them off) and logs a failed task at ERROR before raising it: the raised error reaches the
    user as its own line (remote.find_cause), so the log is a repeat. Importing ray.data
    configures that logger (level DEBUG), so the import comes first: a level set before it is
    lost (graph learn's prepare printed 7 INFO lines so)."""
    import ray.data  # noqa: F401

    logging.getLogger("ray.data").setLevel(logging.CRITICAL)
    logging.getLogger("ray.tune").setLevel(logging.WARNING)
    _quiet_raylet_messages()


def ensure_ray(cfg: Config) -> str:
    """Join the cluster in RAY_ADDRESS (ray job submit sets it), else start an embedded one;
    returns what it did, for the console."""
    import ray

    if not cfg.run.ray_logs:
        quiet_ray_logs()
    if ray.is_initialized():
        return "running already"
    for key, value in LOCAL_ENV.items():
        os.environ.setdefault(key, value)
    kwargs = {
        "log_to_driver": cfg.run.ray_logs,
        "logging_level": "info" if cfg.run.ray_logs else "warning",
        "configure_logging": True,
    }
    if os.environ.get("RAY_ADDRESS"):
        ray.init(**kwargs)
        return f"joined the cluster at {os.environ['RAY_ADDRESS']}"
    # A private local cluster; token auth only guards network clients, which this one has none of.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    forget_dead_cluster()
    t = cfg.train
    # Logical headroom: Ray Data tasks need a whole free CPU beside the training workers.
    cpus = max(os.cpu_count() or 1, t.num_workers * t.cpus_per_worker) + 2
    with _services_ignore_sigint():
        try:
            ray.init(address="local", num_cpus=cpus, include_dashboard=False, **kwargs)
        except Exception as exc:  # Ray's own start-up failure, e.g. on an overloaded machine
            raise ClusterError(f"Ray could not start a local cluster: {exc}") from None
    _start_reaper()
    return f"started a local cluster with {cpus} CPUs"


def _quiet_raylet_messages() -> None:
    """Ray's driver prints the raylet's messages ("A worker died ...", "N PYTHON worker
    processes have been started ...") whatever log_to_driver says: its error-listener thread
    calls ``ray._private.worker.print_to_stdstream``. That thread looks the function up when it
    prints, so wrapping it drops those lines (run.ray_logs: true keeps them); a failure that
    matters reaches the user as the run's own error."""
    from ray._private import worker

    show = getattr(worker.print_to_stdstream, "__wrapped__", worker.print_to_stdstream)

    def print_to_stdstream(data, ignore_prefix: bool):
        if data.get("pid") != "raylet":
            show(data, ignore_prefix)

    print_to_stdstream.__wrapped__ = show
    worker.print_to_stdstream = print_to_stdstream


@contextlib.contextmanager
def _services_ignore_sigint():
    """Ray's services share the driver's process group, so a Ctrl-C in the terminal reached
    them too and stopped the cluster under the run. An ignored signal stays ignored across
    fork and exec: the services start with SIGINT ignored, and the driver alone handles it
    (``interrupt.StopOnSignal``: stop at the next round boundary)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def session_dir() -> str | None:
    """The session directory of the cluster this driver is connected to (every process of
    that cluster names it on its command line), or None where this Ray version hides it:
    Ray has no public API for it, so the private lookup lives here only."""
    import ray

    try:
        return ray._private.worker.global_worker.node.get_session_dir_path()
    except AttributeError:
        return None


def _start_reaper() -> None:
    """A detached watcher that stops this embedded cluster if the driver dies (reaper.py)."""
    import subprocess
    import sys

    session = session_dir()
    if session is None:  # another Ray version: no watcher, nothing else changes
        return
    subprocess.Popen(
        [sys.executable, "-m", "skillit_ray.reaper", str(os.getpid()), session],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def live_nodes(nodes: list[dict]) -> list[dict]:
    """The nodes of ``ray.nodes()`` that are up (a lost node stays listed, not alive)."""
    return [n for n in nodes if n.get("Alive")]


def join_cluster(cfg: Config, data, what: str) -> None:
    """What a run or a sweep checks and decides on the cluster it runs on, before training:
    shared storage and the workers' custom resources, and where the token cache goes."""
    import ray

    nodes = ray.nodes()
    require_shared_storage(cfg.run.storage_path, nodes, what)
    require_worker_resources(cfg.train.worker_resources, cfg.train.num_workers, nodes)
    if len(live_nodes(nodes)) > 1:
        from skillit_ray.data.cache import shared_location

        data.cache_root = shared_location(cfg, data)


def require_worker_resources(wanted: dict, workers: int, nodes: list[dict]) -> None:
    """Every worker must find its ``train.worker_resources`` on some node: a worker group Ray
    cannot place is not an error to Ray Train, which waits for it in 60 s tries without end."""
    for name, amount in wanted.items():
        fits = sum(int(n.get("Resources", {}).get(name, 0) // amount) for n in live_nodes(nodes))
        if fits < workers:
            from skillit_ray.errors import ConfigError

            raise ConfigError(
                f"train.worker_resources.{name}={amount:g} per worker: this Ray cluster's nodes "
                f"have room for {fits} of the {workers} workers; start nodes with "
                f"`ray start --resources='{{\"{name}\": N}}'` or lower train.num_workers"
            )


def require_shared_storage(storage_path: str | None, nodes: list[dict], what: str) -> None:
    """On a cluster of more than one node, checkpoints need a folder every node can reach.

    Without ``run.storage_path`` Ray Train writes checkpoints under the run directory on each
    worker's own disk: a worker on another node writes where the driver never looks, and the
    run would fail at its first checkpoint, or resume from nothing after a lost node. ``nodes``
    is ``ray.nodes()``."""
    alive = live_nodes(nodes)
    if len(alive) > 1 and not storage_path:
        from skillit_ray.errors import ConfigError

        raise ConfigError(
            f"this Ray cluster has {len(alive)} nodes, and {what} writes checkpoints that every "
            "node must reach: set run.storage_path to a folder all nodes share (an NFS mount) "
            "or a URI (s3://..., gs://...), e.g. --set run.storage_path=/shared/skillit"
        )


def start_quiet_local(num_cpus: int = 4) -> None:
    """A private local cluster with Ray's own console output off: what the test suite and the
    fault script run on (a stale pointer to a dead head would slow every fit's teardown)."""
    import ray

    forget_dead_cluster()
    ray.init(
        address="local",
        num_cpus=num_cpus,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="warning",
    )


class NodeWatch:
    """While a run trains, one console line when a node leaves or joins the cluster.

    A lost node takes its workers with it; Ray Train then restarts the worker group from the
    last checkpoint (within ``train.max_failures``) once every worker can be placed again, and
    until then waits in silence (60 s placement tries, without limit). This line says why
    the rounds stopped coming, and the next one when capacity is back."""

    def __init__(self, echo: bool, max_failures: int, period_s: float = 2.0):
        self.echo, self.max_failures, self.period_s = echo, max_failures, period_s
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    @staticmethod
    def _alive() -> dict[str, str]:
        import ray

        return {n["NodeID"]: n.get("NodeManagerAddress", "?") for n in live_nodes(ray.nodes())}

    def __enter__(self) -> NodeWatch:
        if self.echo:
            self.thread = threading.Thread(target=self._watch, name="skillit-nodes", daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()

    def _watch(self) -> None:
        try:
            seen = self._alive()
        except Exception:  # no node table (another Ray version): nothing to say
            return
        while not self.stop.wait(self.period_s):
            try:
                now = self._alive()
            except Exception:
                continue
            for node, ip in seen.items():
                if node not in now:
                    print(self.left(node, ip), flush=True)
            for node, ip in now.items():
                if node not in seen:
                    print(f"node {node[:8]} ({ip}) joined the cluster", flush=True)
            seen = now

    def left(self, node: str, ip: str) -> str:
        if self.max_failures == 0:
            then = "a worker there fails the run (train.max_failures=0)"
        else:
            then = (
                "if workers ran there, Ray Train restarts them from the last checkpoint "
                f"(train.max_failures={self.max_failures}) once the cluster can place every "
                "worker again, and waits until then"
            )
        return f"node {node[:8]} ({ip}) left the cluster; {then}"
