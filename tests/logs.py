"""Reading back what the experiment loggers wrote: TensorBoard event files (TFRecord framing of
tensorboardX's Event protos, checksums verified) and MLflow's file store (through its client),
compared with the run's metrics.jsonl."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from skillit_ray.loggers import mlflow_api


def read_events(folder: Path) -> dict[str, dict[int, float]]:
    """tag -> step -> value of every scalar in the event files of ``folder`` (a later value at
    the same step wins, as TensorBoard shows it after a purge)."""
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.record_writer import masked_crc32c

    files = sorted(Path(folder).glob("events.out.tfevents.*"))
    assert files, f"no TensorBoard event file in {folder}"
    scalars: dict[str, dict[int, float]] = {}
    for path in files:
        data = path.read_bytes()
        pos = 0
        while pos < len(data):
            header = data[pos : pos + 8]
            (length,) = struct.unpack("<Q", header)
            (crc,) = struct.unpack("<I", data[pos + 8 : pos + 12])
            assert crc == masked_crc32c(header), f"{path}: corrupt record length at byte {pos}"
            body = data[pos + 12 : pos + 12 + length]
            (crc,) = struct.unpack("<I", data[pos + 12 + length : pos + 16 + length])
            assert crc == masked_crc32c(body), f"{path}: corrupt record at byte {pos}"
            pos += 16 + length
            event = Event.FromString(body)
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    scalars.setdefault(value.tag, {})[event.step] = value.simple_value
    return scalars


def metrics_rows(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def expected_scalars(run_dir: Path) -> dict[str, dict[int, float]]:
    """What the loggers must hold for a run: its metrics.jsonl, per skill, at each round's step."""
    want: dict[str, dict[int, float]] = {}
    for row in metrics_rows(run_dir):
        for kind in ("eval_loss", "eval_acc", "mixture", "train_loss"):
            for skill, value in row[kind].items():
                want.setdefault(f"{kind}/{skill}", {})[row["step"]] = value
    return want


def check_tensorboard(folder: Path, run_dir: Path, prefix: str = "") -> None:
    """Event files in ``folder`` hold every per-skill value of the run (float32 in the file)."""
    got = read_events(folder)
    for tag, by_step in expected_scalars(run_dir).items():
        assert got.get(prefix + tag) == pytest.approx(by_step, rel=1e-6), tag


def mlflow_runs(store: Path) -> list:
    """Every run in an MLflow file store."""
    MlflowClient = mlflow_api()[0]
    client = MlflowClient(tracking_uri=Path(store).absolute().as_uri())
    ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(ids)


def check_mlflow_run(store: Path, run, run_dir: Path) -> None:
    """The MLflow run's metric histories equal the run's metrics.jsonl, exactly."""
    MlflowClient = mlflow_api()[0]
    client = MlflowClient(tracking_uri=Path(store).absolute().as_uri())
    for key, by_step in expected_scalars(run_dir).items():
        history = client.get_metric_history(run.info.run_id, key)
        assert {m.step: m.value for m in history} == by_step, key
