"""`ray job submit` against a head node started on loopback, as a cluster user would."""

import json
import os
import re
import subprocess
import sys

import yaml

from tests import nodes
from tests.conftest import tiny_lego

RAY = os.path.join(os.path.dirname(sys.executable), "ray")


def test_job_submit_to_head_node_with_token_auth(ray_head, tmp_path, cache_dir):
    address, env = ray_head
    job = tmp_path / "job"
    job.mkdir()
    raw = tiny_lego(cache_dir, rounds=2, steps_per_round=3, eval_every=None)
    raw["run"]["storage_path"] = f"file://{tmp_path / 'storage'}"  # a pyarrow URI
    (job / "tiny.yaml").write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"
    sub = nodes.submit_job(
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
        env,
    )
    assert sub.returncode == 0, sub.stdout[-4000:] + sub.stderr[-2000:]
    job_id = re.search(r"raysubmit_\w+", sub.stdout + sub.stderr).group(0)
    status = subprocess.run(
        [RAY, "job", "status", "--address", address, job_id], env=env, capture_output=True
    )
    assert status.returncode == 0
    assert f"Job '{job_id}' succeeded".encode() in status.stdout + status.stderr
    # token auth is on: a client without the token is refused
    bare = {k: v for k, v in env.items() if k != "RAY_AUTH_TOKEN"}
    refused = subprocess.run(
        [RAY, "job", "status", "--address", address, job_id], env=bare, capture_output=True
    )
    assert refused.returncode != 0
    assert "round 2/2" in sub.stdout  # the job's own per-round lines reach the submitter
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [0, 1]
    assert (out / "model" / "config.json").exists()
    # Ray Train's checkpoints and the run's outputs both went to the storage URI
    assert list((tmp_path / "storage").glob("*/checkpoint_*"))
    mirrored = list((tmp_path / "storage").glob("*/outputs/metrics.jsonl"))
    assert mirrored and mirrored[0].read_text() == (out / "metrics.jsonl").read_text()


def test_relative_out_inside_a_job_is_placed_under_storage_or_refused(monkeypatch, tmp_path):
    """Inside `ray job submit` (Ray's job supervisor sets RAY_JOB_CONFIG_JSON_ENV_VAR) a
    relative run directory would land in the job's temporary working_dir copy."""
    import pytest

    from skillit_ray import config, rundir
    from skillit_ray.errors import ConfigError

    cfg = config.from_dict(tiny_lego(str(tmp_path)))
    assert rundir.resolve_out("runs/x", cfg) == os.path.abspath("runs/x")  # not in a job
    monkeypatch.setenv(rundir.JOB_ENV, "{}")
    with pytest.raises(ConfigError, match="pass an absolute path .* or set run.storage_path"):
        rundir.resolve_out("runs/x", cfg)
    assert rundir.resolve_out(str(tmp_path / "abs"), cfg) == str(tmp_path / "abs")
    cfg.run.storage_path = str(tmp_path / "storage")
    assert rundir.resolve_out("runs/x", cfg) == str(tmp_path / "storage" / "runs" / "x")
