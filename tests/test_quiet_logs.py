"""Ray's own console lines stay off unless run.ray_logs: the Ray Data logger keeps the level we
set although importing ray.data configures it (it reset our level to DEBUG, and `graph learn`
printed Ray Data's INFO lines from its prepare step)."""

import subprocess
import sys

PROBE = """
import logging
from skillit_ray import cluster
cluster.quiet_ray_logs()
import ray.data  # what prepare does next; must not undo the level
print(logging.getLogger("ray.data").getEffectiveLevel(), logging.getLogger("ray.tune").level)
"""


def test_ray_data_logger_stays_quiet_in_a_fresh_interpreter():
    # A fresh interpreter: in this test process ray.data may be imported already.
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True
    )
    data_level, tune_level = map(int, done.stdout.split())
    assert data_level == 50  # logging.CRITICAL
    assert tune_level == 30  # logging.WARNING
