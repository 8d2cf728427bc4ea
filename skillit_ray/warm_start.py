"""Where graph learning's ablation runs start: ``graph.init_from`` and ``graph.warmup_steps``.

- cold (the default): per graph seed s, a fresh model initialised from ``train.seed + s``;
- a checkpoint (``graph.init_from``): the model and optimizer state of one checkpoint of a
  finished or partial run (given a run directory: its newest checkpoint), the same for every
  graph seed, which then differ in the rows they draw only;
- a warm-up (``graph.warmup_steps: W``): per graph seed, the cold start's fresh model trained W
  steps on the data's natural mixture with the run's optimizer and LR schedule (train.lr,
  train.warmup_steps, train.lr_schedule over the run's total steps), as the run's first W
  steps would train it.

Every ablation run of a seed starts from the same weights and the same AdamW state. The
optimizer state is reused, not reset (docs/decisions.md): a fresh AdamW's first updates move
every weight by about lr whatever its gradient (the bias-corrected m / sqrt(v) is ~ +-1), a
jolt common to every ablation run that a trained model feels as a loss rise on every skill, and
which can be larger than the skill effects the graph measures; with the moments reused, H steps
on skill i are what the warm run's next H steps would have been had it trained on skill i
alone, the counterfactual the graph stands for. Only the learning rate is set anew, to the
graph's (graph.lr or train.lr, constant, as in the cold ablations).

Nothing here imports torch: the path checks run before a run starts (``preflight``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

from skillit_ray.config import Config
from skillit_ray.errors import ConfigError

KINDS = ("cold", "checkpoint", "warmup")


@dataclass(frozen=True, kw_only=True)
class StartPoint:
    """Where every ablation run starts, resolved from the config; the graph file records it
    (``provenance["start"]``)."""

    kind: str  #: 'cold', 'checkpoint' or 'warmup'
    seed: int  #: train.seed: graph seed s initialises its fresh model from seed + s
    steps: int = 0  #: optimizer steps the starting model has had (checkpoint's step, or W)
    checkpoint: str | None = None  #: the checkpoint directory (kind 'checkpoint')
    round: int | None = None  #: the round that checkpoint ends (0-based)
    optimizer: str = "fresh"  #: 'reused' (warm starts) or 'fresh' (cold)

    def to_json(self) -> dict:
        return asdict(self)


def describe(start: dict | None) -> str:
    """One line for ``graph show`` from a graph file's ``provenance["start"]``."""
    if not start:  # graphs learned before warm starts existed were all cold
        return "cold (a fresh model per seed; recorded before warm starts existed)"
    kind, seed = start.get("kind"), start.get("seed")
    if kind == "checkpoint":
        return (
            f"warm from {start.get('checkpoint')} at step {start.get('steps')} "
            f"(round {(start.get('round') or 0) + 1}), optimizer state {start.get('optimizer')}"
        )
    if kind == "warmup":
        return (
            f"{start.get('steps')} warm-up steps on the natural mixture from a fresh model "
            f"(train.seed {seed} + graph seed), optimizer state {start.get('optimizer')}"
        )
    return f"cold (a fresh model per seed, train.seed {seed} + graph seed)"


def _where(path: str) -> str:
    return f"graph.init_from '{path}'"


def locate(path: str) -> str:
    """The checkpoint directory ``graph.init_from`` names: a checkpoint directory itself, or a
    run directory's newest registered checkpoint. Errors name the field and what it needs."""
    from skillit_ray.rundir import RUN_FILE, RunIdentity
    from skillit_ray.train import checkpoint

    if "://" in path:
        raise ConfigError(
            f"{_where(path)}: a local path is needed (a run directory or a checkpoint "
            "directory); copy the checkpoint from remote storage first"
        )
    if not os.path.isdir(path):
        raise ConfigError(f"{_where(path)}: no such folder (a run directory or a checkpoint)")
    if os.path.isfile(os.path.join(path, "state.pt")):
        if not os.path.isfile(os.path.join(path, "meta.json")):
            raise ConfigError(f"{_where(path)}: a checkpoint without meta.json (cut short?)")
        return os.path.abspath(path)
    if os.path.isfile(os.path.join(path, RUN_FILE)):
        ident = RunIdentity.load(path)
        found = checkpoint.latest(ident.storage, ident.run_name)
        if found is None:
            raise ConfigError(
                f"{_where(path)}: the run has no checkpoint yet in {ident.storage} "
                "(one is written at the end of each train.checkpoint_every rounds)"
            )
        if "://" in found[0]:
            raise ConfigError(
                f"{_where(path)}: its newest checkpoint {found[0]} is in remote storage; "
                "copy it here and give its local path"
            )
        return found[0]
    raise ConfigError(
        f"{_where(path)}: neither a run directory (no {RUN_FILE}) nor a checkpoint directory "
        "(no state.pt)"
    )


def _meta(ckpt: str) -> dict:
    path = os.path.join(ckpt, "meta.json")
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"graph.init_from: {path} is unreadable ({exc})") from None


def resolve(cfg: Config) -> StartPoint:
    """The start point the config asks for; checks the fields (before Ray and torch)."""
    g, seed = cfg.graph, cfg.train.seed
    if g.init_from is not None:
        ckpt = locate(g.init_from)
        meta = _meta(ckpt)
        if meta.get("diverged"):
            raise ConfigError(
                f"{_where(g.init_from)}: checkpoint {ckpt} holds a diverged model "
                f"({meta['diverged']}); start from an earlier checkpoint"
            )
        return StartPoint(
            kind="checkpoint",
            seed=seed,
            steps=int(meta.get("step", 0)),
            checkpoint=ckpt,
            round=meta.get("round"),
            optimizer="reused",
        )
    if g.warmup_steps:
        return StartPoint(kind="warmup", seed=seed, steps=g.warmup_steps, optimizer="reused")
    return StartPoint(kind="cold", seed=seed)


def check_fits(start: StartPoint, cfg: Config, vocab_size: int, max_len: int) -> None:
    """A checkpoint's weights load into this config's model: the same model settings, and a
    vocabulary and length from the same kind of data (the embeddings' shapes)."""
    if start.kind != "checkpoint":
        return
    saved = _meta(start.checkpoint).get("fingerprint", {})
    have = {"model": asdict(cfg.model), "vocab_size": vocab_size, "max_len": max_len}
    have = json.loads(json.dumps(have, default=str))
    diffs = [
        f"{k}: checkpoint {saved.get(k)!r}, here {v!r}"
        for k, v in have.items()
        if saved.get(k) != v
    ]
    if diffs:
        raise ConfigError(
            f"graph.init_from: checkpoint {start.checkpoint} was trained with another model or "
            f"data ({'; '.join(diffs)}); its weights do not fit this config's model"
        )
