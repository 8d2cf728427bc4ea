"""Driver-side data preparation: generate or locate shards, inspect them, pick skills.

Produces everything the run needs to know before Ray work starts (skills, vocabulary size,
sequence length, natural proportions), and the Ray Datasets for the train and eval splits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from skillit_ray.config import Config
from skillit_ray.data import generators
from skillit_ray.data.cache import location
from skillit_ray.data.pipeline import load_tokenizer
from skillit_ray.data.source import SplitInfo, inspect
from skillit_ray.errors import ConfigError, DataError


@dataclass(kw_only=True)
class PreparedData:
    train: SplitInfo
    eval: SplitInfo
    train_skills: tuple[str, ...]
    eval_skills: tuple[str, ...]
    vocab_size: int
    max_len: int
    pad_id: int
    natural: dict[str, float]
    with_accuracy: bool
    manifest: dict | None
    # data.tokenizer, else the one the data's manifest names (the sources corpus ships its own).
    tokenizer: str | None = None

    # The token cache: where it lives, whether text is packed, Ray Data's block cap.
    cache_root: str = ""
    packing: bool = True
    block_bytes: int | None = None

    def cache(self, echo: bool = False):
        """The token cache of this data, built on first use (``cache.ensure``)."""
        from skillit_ray.data.cache import ensure

        if getattr(self, "_cache", None) is None:
            self._cache = ensure(self, echo)
        return self._cache

    def local_store(self, split: str):
        """A split's rows (all ranks') from the cache, held in memory: for baselines and for
        checking a run's numbers against a plain evaluation."""
        from skillit_ray.data.stream import RankShards

        skills = self.train_skills if split == "train" else self.eval_skills
        return RankShards(self.cache(), split, skills, open_shards=None).held()


def locate(cfg: Config) -> tuple[str, str, dict | None]:
    """Train/eval paths and the manifest, generating cached data if the recipe names a generator."""
    d = cfg.data
    if d.generator:
        folder = generators.cached(d.generator, d.generator_params, d.cache_dir)
        return (
            os.path.join(folder, "train"),
            os.path.join(folder, "val"),
            generators.read_manifest(folder),
        )
    manifest = None
    if "://" not in d.train:
        parent = os.path.dirname(os.path.abspath(d.train.rstrip("/")))
        manifest = generators.read_manifest(parent)
    return d.train, d.eval, manifest


def _pick(wanted: list | None, have: dict[str, int], field: str, split: str) -> tuple[str, ...]:
    if wanted is None:
        return tuple(have)
    missing = [s for s in wanted if s not in have]
    if missing:
        raise DataError(
            f"{field}: skill(s) {missing} have no rows in the {split} split; it has {sorted(have)}"
        )
    return tuple(wanted)


def _vocab(
    manifest: dict | None, tokenizer: str | None, train: SplitInfo, ev: SplitInfo
) -> tuple[int, int]:
    """(vocab_size, pad_id) from the manifest, the tokenizer, or the token ids themselves."""
    if manifest and "vocab" in manifest:
        return len(manifest["vocab"]), int(manifest.get("pad_id", 0))
    if tokenizer:
        tok = load_tokenizer(tokenizer)
        pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
        return max(len(tok), train.max_id + 1, ev.max_id + 1), int(pad)
    if train.token_column == "text":
        raise ConfigError("data.tokenizer: rows carry 'text'; set a local tokenizer directory")
    return max(train.max_id, ev.max_id) + 1, 0


def prepare(cfg: Config) -> PreparedData:
    train_path, eval_path, manifest = locate(cfg)
    scan = not (manifest and "vocab" in manifest)
    train = inspect(train_path, cfg.data.format, "train", scan)
    ev = inspect(eval_path, cfg.data.format, "eval", scan)
    train_skills = _pick(cfg.data.train_skills, train.rows_per_skill, "data.train_skills", "train")
    eval_skills = _pick(cfg.data.eval_skills, ev.rows_per_skill, "data.eval_skills", "eval")
    tokenizer = cfg.data.tokenizer or (manifest or {}).get("tokenizer")
    vocab_size, pad_id = _vocab(manifest, tokenizer, train, ev)
    max_len = (
        cfg.data.max_length
        or (manifest or {}).get("max_length")
        or max(train.max_len, ev.max_len)
        or 128
    )
    natural = (
        cfg.data.natural_proportions
        or (manifest or {}).get("natural_proportions")
        or train.rows_per_skill
    )
    missing = [s for s in train_skills if s not in natural]
    if missing:
        raise ConfigError(f"data.natural_proportions: no weight for train skill(s) {missing}")
    total = sum(float(natural[s]) for s in train_skills)
    natural = {s: float(natural[s]) / total for s in train_skills}
    with_accuracy = "loss_mask" in ev.columns or bool(manifest and "scoring" in manifest)
    data = PreparedData(
        train=train,
        eval=ev,
        train_skills=train_skills,
        eval_skills=eval_skills,
        vocab_size=vocab_size,
        max_len=int(max_len),
        pad_id=pad_id,
        natural=natural,
        with_accuracy=with_accuracy,
        manifest=manifest,
        tokenizer=tokenizer,
        packing=cfg.data.packing,
        block_bytes=cfg.data.budget.block_bytes,
    )
    data.cache_root = location(cfg, data)
    return data
