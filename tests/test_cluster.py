"""`ray job submit` against a head node started on loopback, as a cluster user would."""

import json
import os
import re
import subprocess
import sys

import yaml

from tests.conftest import tiny_lego

RAY = os.path.join(os.path.dirname(sys.executable), "ray")


def test_job_submit_to_head_node(ray_head, tmp_path, cache_dir):
    address, env = ray_head
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
