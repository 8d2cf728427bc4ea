"""The one per-worker training loop: open the token cache's streams, then rounds of (plan,
train, evaluate, report).

It has no knowledge of which policy runs: the coordinator actor hands it mixtures.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import ray
import ray.train
import torch
import torch.distributed as dist

from skillit_ray.config import from_dict
from skillit_ray.coordinator import pack
from skillit_ray.data.cache import TokenCache
from skillit_ray.data.plan import RoundPlan, make_plan
from skillit_ray.data.stream import RankShards, SkillStreams
from skillit_ray.errors import CheckpointError, DataError
from skillit_ray.mixture import Mixture
from skillit_ray.model import build_model
from skillit_ray.records import RankRecord, RoundRecord, WorkerStats
from skillit_ray.train import checkpoint
from skillit_ray.train.evaluate import evaluate
from skillit_ray.train.local import batch, optimizer_step
from skillit_ray.train.loss import token_losses
from skillit_ray.train.memory import rss_mb
from skillit_ray.train.optim import build_optimizer, build_scheduler

ROW_KEYS_SHOWN = 10_000  # per skill and rank, in round 0's ranks.jsonl record


@dataclass
class RunMeta:
    """Facts the driver learned from the data, shipped to every worker."""

    train_skills: tuple
    eval_skills: tuple
    vocab_size: int
    max_len: int
    with_accuracy: bool
    needs: tuple = ("eval_loss",)
    cache: str = ""  # the token cache's root (folder or URI)
    data_fingerprint: str = ""  # of the cache's sources and settings: a resume needs the same


def round_metrics(record: RoundRecord) -> dict:
    """What each round reports to Ray Train (and through it to Tune and the experiment
    loggers): flat, per skill too."""
    loss, acc = record.eval_loss, record.eval_acc
    out = {
        "round": record.round,
        "step": record.step,
        "mean_eval_loss": float(np.mean(list(loss.values()))) if loss else None,
        "mean_eval_acc": float(np.mean(list(acc.values()))) if acc else None,
    }
    out.update({f"eval_loss/{s}": v for s, v in loss.items()})
    out.update({f"eval_acc/{s}": v for s, v in acc.items()})
    # what the round trained on, for the experiment loggers (run.loggers)
    out.update({f"mixture/{s}": p for s, p in record.mixture.to_dict().items()})
    out.update({f"train_loss/{s}": v for s, v in record.train_loss.items()})
    out["lr"] = record.lr
    return out


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


class Worker:
    """State of one rank; ``run`` is the whole loop."""

    def __init__(self, loop_config: dict):
        self.t_enter = time.time()
        self.cfg = from_dict(loop_config["config"])
        self.meta = RunMeta(**loop_config["meta"])
        self.coord = loop_config["coordinator"]
        ctx = ray.train.get_context()
        self.rank, self.world = ctx.get_world_rank(), ctx.get_world_size()
        t = self.cfg.train
        torch.set_num_threads(t.cpus_per_worker)
        torch.manual_seed(t.seed)  # same init on every rank; DDP broadcasts rank 0's anyway
        self.fingerprint = loop_config["fingerprint"]
        self.restored = self._load_checkpoint()
        self._note(f"workers: {self.world} started")
        model = build_model(self.cfg.model, self.meta.vocab_size, self.meta.max_len)
        state = self.restored.state if self.restored else None
        if state:
            model.load_state_dict(state["model"])
        self.model = ray.train.torch.prepare_model(model)
        self.device = ray.train.torch.get_device()
        self.raw_model = getattr(self.model, "module", self.model)
        self.opt = build_optimizer(self.model, float(t.lr), t.weight_decay)
        self.sched = build_scheduler(self.opt, t.warmup_steps, self.cfg.total_steps, t.lr_schedule)
        self.step, self.start_round = 0, 0
        if state:
            self.opt.load_state_dict(state["optimizer"])
            self.sched.load_state_dict(state["scheduler"])
            self.step, self.start_round = state["step"], self.restored.round + 1
        self.t_model = time.time()
        params = sum(p.numel() for p in self.raw_model.parameters())
        from_round = f", restored after round {self.start_round}" if state else ""
        self._note(f"model: {params / 1e6:.2f}M parameters{from_round}")
        self.rss_model_mb = rss_mb("VmRSS")
        # Peak RSS (VmHWM) at the end of each phase: its increments say which phase set the peak.
        self.peaks: dict[str, float | None] = {}
        self._peak("model")
        # No drain: the streams read the cache's shards as training asks for them.
        cache = TokenCache.open(self.meta.cache)
        if cache is None:
            raise DataError(
                f"token cache {self.meta.cache}: no manifest.json on this worker's node; on a "
                "cluster, set data.token_cache to a folder or URI every node can read"
            )
        difficulty = loop_config.get("difficulty")
        self.train_store = SkillStreams(
            cache,
            self.meta.train_skills,
            t.seed,
            self.rank,
            self.world,
            ray.get(difficulty) if difficulty is not None else None,
        )
        self.t_train_drained = time.time()
        self._peak("open_train")
        budget = self.cfg.data.budget
        self.eval_store = RankShards(
            cache, "eval", self.meta.eval_skills, self.rank, self.world, budget.eval_open_shards
        )
        self.eval_streamed = budget.limited
        self._peak("open_eval")
        self.drain_s = time.time() - self.t_model
        self.rss_drained_mb = {f: rss_mb(f) for f in ("RssAnon", "RssFile", "RssShmem")}
        rows = sum(self.train_store.rows(s) for s in self.meta.train_skills)
        self._note(f"data: {rows} train rows opened from the token cache")
        self.tokens_trained = 0
        self.t_first_step: float | None = None
        if state:
            self.train_store.load_state_dict(self.restored.ranks[self.rank])

    def _note(self, text: str) -> None:
        if self.rank == 0:  # the driver prints it with the time since the run started
            ray.get(self.coord.note.remote(text))

    def _peak(self, phase: str, once: bool = False) -> None:
        """VmHWM at the end of ``phase``; ``once``: only at its first end (no /proc read after)."""
        if not (once and phase in self.peaks):
            self.peaks[phase] = rss_mb("VmHWM")

    def _load_checkpoint(self) -> checkpoint.Restored | None:
        """Ray Train's latest checkpoint, checked against this run, or None."""
        ckpt = ray.train.get_checkpoint()
        if ckpt is None:
            return None
        with ckpt.as_directory() as d:
            restored = checkpoint.read(d)
        meta = restored.meta
        checkpoint.check_fingerprint(meta["fingerprint"], self.fingerprint, ckpt.path)
        if meta.get("diverged"):
            raise CheckpointError(
                f"checkpoint {ckpt.path} holds a diverged state: {meta['diverged']}"
            )
        return restored

    def _rows(self, skill: str, c: int, row_filter, r: int) -> tuple[np.ndarray, np.ndarray]:
        if row_filter is None:
            return self.train_store.take(skill, c)
        return self.train_store.take_pool(skill, c, row_filter, r)

    def _to(self, a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(a)
        if self.device.type == "cuda":  # pinned host memory makes the copy asynchronous
            return t.pin_memory().to(self.device, non_blocking=True)
        return t

    def _train_step(self, slots: np.ndarray, sums: np.ndarray, row_filter, r: int) -> None:
        take = lambda skill, c: self._rows(skill, c, row_filter, r)  # noqa: E731
        ids, mask, skill_of_row = batch(self.meta.train_skills, slots, take)
        ids, mask = self._to(ids), self._to(mask)
        with torch.autocast(
            self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"
        ):
            logits = self.model(input_ids=ids).logits
        ce, m, _ = token_losses(logits, ids, mask)
        ntok = m.sum()
        if _distributed():  # exact global token mean: DDP averages grads, so scale by world
            ntok = ntok.detach().clone()
            dist.all_reduce(ntok)
            loss = ce.sum() / ntok.clamp_min(1.0) * self.world
        else:
            loss = ce.sum() / ntok.clamp_min(1.0)
        self.tokens_trained += int(ntok)
        optimizer_step(self.model, self.opt, self.sched, loss, self.cfg.train.grad_clip)
        self.step += 1
        row_loss = (ce.sum(1) / m.sum(1).clamp_min(1.0)).detach().cpu().numpy()
        np.add.at(sums[:, 0], skill_of_row, row_loss)
        np.add.at(sums[:, 1], skill_of_row, 1)

    def _eval(self) -> dict:
        loss, acc = evaluate(
            self.raw_model,
            self.eval_store,
            self.cfg.train.eval_batch_size,
            self.device,
            self.meta.with_accuracy,
        )
        return {"step": self.step, "loss": loss, "acc": acc}

    def _round(self, r: int, mix: Mixture, plan: RoundPlan) -> RoundRecord:
        t = self.cfg.train
        row_filter = mix.row_filter
        slots = plan.rank_slots(self.rank, self.world)
        sums = np.zeros((len(self.meta.train_skills), 2))
        checkpoints, train_s, eval_s = [], 0.0, 0.0
        # Only what the policy needs, plus what the user logs, is computed. Logged evals follow
        # train.eval_every whatever the policy, so every arm of a comparison is measured on the
        # same step grid (steps-to-target would otherwise favour the policies that need evals).
        needs_eval = "eval_loss" in self.meta.needs
        inside = t.eval_every and (needs_eval or t.log_eval)
        at_end = needs_eval or t.log_eval
        for s in range(t.steps_per_round):
            t0 = time.perf_counter()
            self._train_step(slots[s], sums, row_filter, r)
            train_s += time.perf_counter() - t0
            if self.t_first_step is None:
                self.t_first_step = time.time()
            self._peak("first_step", once=True)
            last = s == t.steps_per_round - 1
            if (last and at_end) or (inside and (s + 1) % t.eval_every == 0):
                t0 = time.perf_counter()
                checkpoints.append(self._eval())
                eval_s += time.perf_counter() - t0
                self._peak("first_eval", once=True)
        if _distributed():  # NCCL reduces device tensors only
            total = torch.from_numpy(sums).to(self.device)
            dist.all_reduce(total)
            sums = total.cpu().numpy()
        skills = self.meta.train_skills
        return RoundRecord(
            round=r,
            step=self.step,
            mixture=mix,
            samples=dict(zip(skills, map(int, plan.counts), strict=True)),
            eval_loss=checkpoints[-1]["loss"] if checkpoints else {},
            eval_acc=checkpoints[-1]["acc"] if checkpoints else {},
            train_loss={
                sk: float(sums[k, 0] / sums[k, 1]) for k, sk in enumerate(skills) if sums[k, 1]
            },
            eval_checkpoints=checkpoints,
            train_s=train_s,
            eval_s=eval_s,
            lr=float(self.sched.get_last_lr()[0]),
            consumed=self.train_store.state_dict(),
        )

    def _rank_record(self, r: int, mix: Mixture, plan: RoundPlan) -> RankRecord:
        """What this rank trained on this round (the driver writes them to ranks.jsonl)."""
        local = np.bincount(
            plan.rank_slots(self.rank, self.world).ravel(), minlength=len(self.meta.train_skills)
        )
        row_keys = None
        if r == 0 and self.world > 1:  # row identities, so disjointness can be checked
            # Keys are hashes, so the smallest ones are a uniform sample of a skill's rows;
            # capped, a large split does not put millions of numbers in ranks.jsonl.
            store = self.train_store
            row_keys = {s: store.row_keys(s, ROW_KEYS_SHOWN).tolist() for s in store.skills}
        return RankRecord(
            round=r,
            rank=self.rank,
            mixture=mix.probs.tolist(),
            samples=dict(zip(self.meta.train_skills, local.tolist(), strict=True)),
            row_keys=row_keys,
            node=ray.get_runtime_context().get_node_id(),
        )

    def _report(self, record: RoundRecord, save: bool, final: bool = False, diverged=None) -> None:
        """One report per round on every rank (a barrier); ``save`` attaches a checkpoint."""
        metrics = round_metrics(record)
        if not save:
            ray.train.report(metrics)
            return
        mine = {"sampler": self.train_store.state_dict(), "rng": torch.get_rng_state()}
        gathered = [mine]
        if _distributed():
            gathered = [None] * self.world
            dist.all_gather_object(gathered, mine)
        with tempfile.TemporaryDirectory() as d:
            ckpt = None
            if self.rank == 0:
                state = {
                    "model": self.raw_model.state_dict(),
                    "optimizer": self.opt.state_dict(),
                    "scheduler": self.sched.state_dict(),
                    "step": self.step,
                    "rng": [g["rng"] for g in gathered],
                }
                meta = {
                    "round": record.round,
                    "step": self.step,
                    "diverged": diverged,
                    "fingerprint": self.fingerprint,
                }
                snap = ray.get(self.coord.snapshot.remote())
                checkpoint.write(d, state, [g["sampler"] for g in gathered], snap, meta)
                if final:
                    self.raw_model.save_pretrained(os.path.join(d, "model"))
                ckpt = ray.train.Checkpoint.from_directory(d)
            ray.train.report(metrics, checkpoint=ckpt)

    def _start(self) -> Mixture:
        """Round ``start_round``'s mixture, after putting the coordinator in step with the
        checkpoint (a first start rolls back nothing)."""
        if self.rank == 0:
            snap = self.restored.coordinator if self.restored else None
            ray.get(self.coord.restore.remote(snap))
        if self.restored:
            torch.set_rng_state(self.restored.state["rng"][self.rank])
        return ray.get(self.coord.get_mixture.remote(self.start_round))

    def run(self) -> WorkerStats:
        t_loop = time.time()
        mix = self._start()
        t, train_s, stopped, interrupted = self.cfg.train, 0.0, None, None
        for r in range(self.start_round, t.rounds):
            # Every rank computes the same plan from (seed, round): no talking needed.
            plan = make_plan(mix.probs, t.steps_per_round, t.batch_size, t.seed, r)
            record = self._round(r, mix, plan)
            train_s += record.train_s
            ray.get(self.coord.rank_round.remote(pack(self._rank_record(r, mix, plan))))
            stopped = non_finite(record)
            if stopped:  # all ranks see the same all-reduced losses, so all stop here
                if self.rank == 0:
                    ray.get(self.coord.stopped.remote(pack(record), stopped))
                self._report(record, save=True, diverged=stopped)
                break
            if self.rank == 0:
                ray.get(self.coord.report.remote(pack(record)))
            self._peak(f"round{r + 1}_trained")
            last = r + 1 == t.rounds
            # SIGINT/SIGTERM on the driver: stop after this round, with a checkpoint of it.
            halt = not last and ray.get(self.coord.stop_after.remote(r))
            save = last or halt or (r + 1) % t.checkpoint_every == 0
            self._report(record, save=save, final=last)
            self._peak(f"round{r + 1}_reported")
            if halt:
                interrupted = r
                break
            if not last:
                mix = ray.get(self.coord.get_mixture.remote(r + 1))
        done = (interrupted + 1 if interrupted is not None else t.rounds) - self.start_round
        samples = done * t.steps_per_round * t.batch_size
        return WorkerStats(
            t_enter=self.t_enter,
            t_model=self.t_model,
            t_train_drained=self.t_train_drained,
            t_loop=t_loop,
            t_first_step=self.t_first_step,
            t_end=time.time(),
            drain_s=self.drain_s,
            train_s=train_s,
            train_samples_per_s=samples / train_s if train_s else 0.0,
            start_round=self.start_round,
            stopped=stopped,
            rss_model_mb=self.rss_model_mb,
            peak_rss_mb=rss_mb("VmHWM"),
            rss_after_drain_mb=self.rss_drained_mb,
            peak_rss_by_phase_mb=self.peaks,
            eval_streamed=self.eval_streamed,
            tokens_trained=self.tokens_trained,
            device=_device_name(self.device),
            process_group=dist.get_backend() if dist.is_initialized() else None,
            interrupted_after=interrupted,
        )


def non_finite(record: RoundRecord) -> str | None:
    """The first non-finite eval (or train) loss of a round, said for the user."""
    for kind in ("eval_loss", "train_loss"):
        for skill, v in getattr(record, kind).items():
            if not math.isfinite(v):
                return (
                    f"round {record.round + 1} (step {record.step}): "
                    f"{kind.replace('_', ' ')} of skill '{skill}' is {v}; training diverged "
                    "(try a lower train.lr or train.grad_clip > 0)"
                )
    return None


def train_loop_per_worker(loop_config: dict) -> WorkerStats:
    return Worker(loop_config).run()
