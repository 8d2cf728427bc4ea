"""What crosses from the workers to the coordinator and the driver, one typed value each.

- ``RoundRecord``: what one round trained on and measured. Rank 0 builds it, the coordinator
  adds the next mixture and hands the policy its ``observation()``, the driver writes it to
  metrics.jsonl (``metrics_row``) and prints it, and ``report`` reads it back (``from_json``).
- ``RankRecord``: what one rank trained on in one round (ranks.jsonl).
- ``WorkerStats``: rank 0's timings and memory at the end of its loop (summary.json).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

from skillit_ray.mixture import Mixture, Observation


@dataclass(kw_only=True)
class RoundRecord:
    round: int
    step: int  #: optimizer steps done when the round ended
    mixture: Mixture  #: the mixture the round trained on
    samples: dict[str, int]  #: rows drawn per train skill (all ranks)
    eval_loss: dict[str, float]  #: per eval skill, at the round's last eval checkpoint
    eval_acc: dict[str, float]
    train_loss: dict[str, float]  #: per train skill, mean row loss over the round
    #: every evaluation inside the round, oldest first: {"step", "loss", "acc"}
    eval_checkpoints: list[dict] = field(default_factory=list)
    lr: float = 0.0
    train_s: float = 0.0
    eval_s: float = 0.0
    consumed: dict = field(default_factory=dict)  #: rank 0's sampler state after the round
    next_mixture: Mixture | None = None  #: set by the coordinator from the policy's update
    stopped: str | None = None  #: why the run stopped after this round (no update then)
    t_report: float | None = None  #: when the coordinator received it (time.time())

    def observation(self) -> Observation:
        """What the policy sees of this round."""
        return Observation(
            self.round,
            self.step,
            self.mixture,
            self.samples,
            self.eval_loss,
            self.eval_acc,
            self.train_loss,
            self.eval_checkpoints,
        )

    def to_json(self) -> dict:
        """JSON-able, with the mixtures as skill -> probability (and the row filter beside)."""
        skip = ("mixture", "next_mixture")
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}
        out.update(self.mixture.to_json())
        if self.next_mixture is not None:
            out["next_mixture"] = self.next_mixture.to_dict()
        return out

    @classmethod
    def from_json(cls, row: dict) -> RoundRecord:
        row = dict(row)
        row.pop("wall_s", None)
        mixture = Mixture.from_json(row)
        row.pop("row_filter", None)
        nxt = row.pop("next_mixture", None)
        nxt = None if nxt is None else Mixture.from_dict(nxt, list(nxt))
        return cls(**{**row, "mixture": mixture, "next_mixture": nxt})

    def metrics_row(self, t0: float) -> dict:
        """The metrics.jsonl line: the record with wall time since the run started."""
        row = self.to_json()
        t_report = row.pop("t_report")
        if row["stopped"] is None:
            row.pop("stopped")
        row["wall_s"] = t_report - t0
        return row


def read_metrics(path: str) -> list[RoundRecord]:
    """A metrics.jsonl file, record by record."""
    with open(path) as fh:
        return [RoundRecord.from_json(json.loads(line)) for line in fh if line.strip()]


@dataclass(kw_only=True)
class RankRecord:
    """What one rank trained on in one round."""

    round: int
    rank: int
    mixture: list[float]
    samples: dict[str, int]
    #: round 0 with several ranks: a uniform sample of each skill's row identities on this rank
    row_keys: dict[str, list[int]] | None = None
    node: str | None = None  #: the Ray node id the rank ran on

    def to_json(self) -> dict:
        out = asdict(self)
        for key in ("row_keys", "node"):
            if out[key] is None:
                out.pop(key)
        return out


@dataclass(kw_only=True)
class WorkerStats:
    """Rank 0's loop, timed (time.time() stamps) and measured, as it returns it."""

    t_enter: float  #: the loop function started
    t_model: float  #: model built (and restored)
    t_train_drained: float  #: the train streams opened (no drain: the cache is read lazily)
    t_loop: float  #: streams open, rounds about to start
    t_end: float
    t_first_step: float | None  #: this process's first optimizer step done
    drain_s: float  #: model built -> both splits' streams open (named for the drain it replaced)
    train_s: float
    train_samples_per_s: float
    start_round: int
    stopped: str | None
    rss_model_mb: float | None
    peak_rss_mb: float | None
    rss_after_drain_mb: dict[str, float | None]
    peak_rss_by_phase_mb: dict[str, float | None]
    eval_streamed: bool  #: under a memory budget, each evaluation streams its rows
    tokens_trained: int  #: loss tokens of every step's global batch (this run's steps)
    device: str
    process_group: str | None
    #: the round after which the run stopped on SIGINT/SIGTERM (checkpointed), else None
    interrupted_after: int | None = None

    def summary(self, t_fit: float, t_done: float) -> dict:
        """The summary.json fields this worker measured (``t_fit``: fit() was called,
        ``t_done``: it returned)."""
        return {
            "startup_s": self.t_loop - t_fit,  # fit() call -> loop ready (workers, model, streams)
            "worker_start_s": self.t_enter - t_fit,
            "model_s": self.t_model - self.t_enter,
            "drain_train_s": self.t_train_drained - self.t_model,
            "drain_s": self.drain_s,
            "model_to_first_step_s": (
                None if self.t_first_step is None else self.t_first_step - self.t_model
            ),
            "teardown_s": t_done - self.t_end,
            "train_s": self.train_s,
            "train_samples_per_s": self.train_samples_per_s,
            "worker_rss_after_model_mb": self.rss_model_mb,
            "worker_peak_rss_mb": self.peak_rss_mb,
            "worker_rss_after_drain_mb": self.rss_after_drain_mb,
            "worker_peak_rss_by_phase_mb": self.peak_rss_by_phase_mb,
            "eval_streamed": self.eval_streamed,
            "tokens_trained": self.tokens_trained,
            "device": self.device,
            "process_group": self.process_group,
        }
