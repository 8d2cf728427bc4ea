"""Live progress of a run: round records stream from the coordinator into metrics.jsonl and
one printed line per round."""

from __future__ import annotations

import json
import threading
import time

from skillit_ray.records import RoundRecord


def mixture_summary(mixture: dict[str, float], top: int = 6) -> str:
    """The heaviest skills of a mixture, short names first; the rest counted."""
    items = sorted(mixture.items(), key=lambda kv: -kv[1])
    text = " ".join(f"{s.rsplit('/', 1)[-1]}={p:.2f}" for s, p in items[:top])
    return text + (f" (+{len(items) - top} more)" if len(items) > top else "")


def fmt_duration(s: float) -> str:
    s = max(0, int(round(s)))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _fmt_round(
    rec: RoundRecord, prev_step: int, rounds: int, elapsed: float, per_round: float | None
) -> str:
    """round, step, losses, training steps/s, elapsed and ETA, mixture summary."""
    loss, acc = rec.eval_loss, rec.eval_acc
    mean = lambda d: sum(d.values()) / len(d) if d else float("nan")  # noqa: E731
    acc_s = f" acc {mean(acc):.3f}" if acc else ""
    loss_s = f" | eval loss {mean(loss):.4f}" if loss else ""
    steps = rec.step - prev_step
    rate = f" | {steps / rec.train_s:.1f} steps/s" if rec.train_s else ""
    left = rounds - rec.round - 1
    eta = f" ETA {fmt_duration(per_round * left)}" if per_round and left else ""
    return (
        f"round {rec.round + 1}/{rounds} step {rec.step}{loss_s}{acc_s}"
        f" | train loss {mean(rec.train_loss):.4f}{rate} | {fmt_duration(elapsed)}{eta}"
        f" | mixture {mixture_summary(rec.mixture.to_dict())}"
    )


class MetricsWriter(threading.Thread):
    """Streams round records from the coordinator into metrics.jsonl and prints one line each,
    and the workers' start-up phases as they finish.

    When the coordinator is rolled back to a checkpoint (a restarted worker group, a resumed
    run) the file is rewritten from its history, so no round appears twice in it, and no round
    is printed twice either. ``t0`` is when the run started counting: on a resume, now minus
    the running time before the stop (``before``: wall_s of the rounds kept), so elapsed time,
    ETA and wall_s leave the downtime out."""

    def __init__(
        self,
        coord,
        path: str,
        rounds: int,
        t0: float,
        echo: bool,
        before: dict[int, float] | None = None,
    ):
        super().__init__(daemon=True)
        self.coord, self.path, self.rounds, self.t0, self.echo = coord, path, rounds, t0, echo
        self.before = before or {}
        self.t_session = time.time()
        self.records: list[RoundRecord] = []
        self.generation = 0
        self.printed = max(self.before, default=-1)  # the last round printed
        self.notes = 0
        self.stop_event = threading.Event()

    def poll(self, timeout: float) -> None:
        import ray

        got = ray.get(
            self.coord.records.remote(len(self.records), timeout, self.generation, self.notes)
        )
        if got["generation"] != self.generation:
            fresh_session = not self.records  # a resume's first restore, not a recovery
            self.generation, self.records = got["generation"], []
            open(self.path, "w").close()
            if got["records"]:  # an empty history: the state is on its way back
                last = got["records"][-1].round
                if fresh_session:  # trained (and printed) before this session
                    self.printed = max(self.printed, last)
                elif self.echo:
                    print(f"recovered: continuing after round {last + 1}", flush=True)
        for text in got.get("notes", []):
            self.notes += 1
            if self.echo:
                print(f"{text} ({fmt_duration(time.time() - self.t0)})", flush=True)
        with open(self.path, "a") as fh:
            for rec in got["records"]:
                row = rec.metrics_row(self.t0)
                if rec.round in self.before:
                    row["wall_s"] = self.before[rec.round]
                fh.write(json.dumps(row) + "\n")
                self.records.append(rec)
                if self.echo and rec.stopped is None and rec.round > self.printed:
                    self._print(rec)

    def _print(self, rec: RoundRecord) -> None:
        """Per-round wall time from consecutive reports of this session gives the ETA."""
        self.printed = rec.round
        fresh = [r for r in self.records if r.t_report and r.t_report >= self.t_session]
        gaps = [b.t_report - a.t_report for a, b in zip(fresh, fresh[1:])]
        per_round = sum(gaps) / len(gaps) if gaps else None
        prev = self.records[-2] if len(self.records) > 1 else None
        prev_step = prev.step if prev else 0
        line = _fmt_round(rec, prev_step, self.rounds, time.time() - self.t0, per_round)
        print(line, flush=True)

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.poll(1.0)
            except Exception:  # the actor restarts or is gone; the final poll reports it
                time.sleep(0.5)
