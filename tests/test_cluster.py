"""`ray job submit` against a head node started on loopback, as a cluster user would."""

import json
import os
import re
import socket
import subprocess
import sys
import time

import yaml

from tests.conftest import tiny_lego

BIN = os.path.dirname(sys.executable)
RAY = os.path.join(BIN, "ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, timeout: float) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if check():
            return
        time.sleep(1)
    raise TimeoutError("the head node did not come up")


def test_job_submit_to_head_node(tmp_path, cache_dir):
    env = dict(
        os.environ,
        RAY_AUTH_MODE="disabled",
        RAY_USAGE_STATS_ENABLED="0",
        PATH=BIN + os.pathsep + os.environ.get("PATH", ""),
    )
    env.pop("RAY_ADDRESS", None)
    dash = free_port()
    address = f"http://127.0.0.1:{dash}"
    log = open(tmp_path / "head.log", "w")
    head = subprocess.Popen(
        [
            RAY,
            "start",
            "--head",
            "--block",
            f"--port={free_port()}",
            f"--dashboard-port={dash}",
            # the default agent port may be held by another Ray on this machine (the suite's
            # session cluster); a taken port leaves the head without a job agent
            f"--dashboard-agent-listen-port={free_port()}",
            "--dashboard-host=127.0.0.1",
            "--num-cpus=3",
            "--disable-usage-stats",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        ray_cli = lambda *a, **kw: subprocess.run(  # noqa: E731
            [RAY, *a, "--address", address], env=env, capture_output=True, text=True, **kw
        )
        wait_for(lambda: ray_cli("job", "list").returncode == 0, 120)
        job = tmp_path / "job"
        job.mkdir()
        raw = tiny_lego(cache_dir, rounds=2, steps_per_round=3, eval_every=None)
        raw["run"]["storage_path"] = f"file://{tmp_path / 'storage'}"  # a pyarrow URI
        (job / "tiny.yaml").write_text(yaml.safe_dump(raw))
        out = tmp_path / "out"
        sub = subprocess.run(
            [
                RAY,
                "job",
                "submit",
                "--address",
                address,
                "--working-dir",
                str(job),
                "--entrypoint-num-cpus",
                "0",
                "--",
                "skillit-ray",
                "run",
                "tiny.yaml",
                "--out",
                str(out),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=480,
        )
        assert sub.returncode == 0, sub.stdout[-4000:] + sub.stderr[-2000:]
        job_id = re.search(r"raysubmit_\w+", sub.stdout + sub.stderr).group(0)
        from ray.job_submission import JobStatus, JobSubmissionClient

        assert JobSubmissionClient(address).get_job_status(job_id) == JobStatus.SUCCEEDED
        assert "round 2/2" in sub.stdout  # the job's own per-round lines reach the submitter
        rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        assert [r["round"] for r in rows] == [0, 1]
        assert (out / "model" / "config.json").exists()
        # Ray Train's checkpoints and the run's outputs both went to the storage URI
        assert list((tmp_path / "storage").glob("*/checkpoint_*"))
        mirrored = list((tmp_path / "storage").glob("*/outputs/metrics.jsonl"))
        assert mirrored and mirrored[0].read_text() == (out / "metrics.jsonl").read_text()
    finally:
        head.terminate()  # `ray start --block` drains and stops the node it started
        head.wait(timeout=90)
        log.close()
