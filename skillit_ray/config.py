"""Typed config for a run: dataclasses, YAML loading, dotted ``--set`` overrides, validation.

Every field carries its documentation in ``metadata["doc"]`` so the CLI and errors can show it.
"""

from __future__ import annotations

import difflib
import os
import sys
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import yaml

from skillit_ray.data.budget import MemoryBudget
from skillit_ray.errors import ConfigError
from skillit_ray.loggers import check_names as check_logger_names

LR_SCHEDULES = ("linear", "constant", "cosine")


def _f(default: Any, doc: str) -> Any:
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


@dataclass(kw_only=True)
class DataConfig:
    generator: str | None = _f(
        None,
        "Built-in generator ('lego', 'addition', 'instruct', 'sources') that makes the data on "
        "first use; it is cached by its settings under cache_dir. None: use train/eval paths.",
    )
    generator_params: dict = _f({}, "Settings passed to the generator (see `skillit-ray data`).")
    cache_dir: str | None = _f(
        None, "Where generated data is cached; default $SKILLIT_RAY_CACHE or ~/.cache/skillit-ray."
    )
    train: str | None = _f(
        None, "Directory, file or pyarrow filesystem URI of the training shards (Parquet/JSONL)."
    )
    eval: str | None = _f(None, "Directory, file or URI of the held-out (validation) shards.")
    format: str = _f("auto", "'parquet', 'jsonl' or 'auto' (by file extension).")
    tokenizer: str | None = _f(
        None,
        "Local directory of a Hugging Face tokenizer; needed when rows carry `text`. None: the "
        "one the data's manifest names, if any (the sources corpus trains its own).",
    )
    max_length: int | None = _f(
        None,
        "Tokens per training row (packed text is cut, other rows padded; a longer row keeps "
        "its last tokens, counted as dropped); None: the manifest's value or 128.",
    )
    packing: bool = _f(
        True,
        "Pack `text` documents (joined with EOS) into max_length rows; rows with a loss_mask "
        "are always padded.",
    )
    token_cache: str | None = _f(
        None,
        "Folder or pyarrow filesystem URI of the token cache (`skillit-ray prepare`); None: "
        "under cache_dir/tokens, named by the sources and settings. Built on first use.",
    )
    memory_budget_mb: float | None = _f(
        None,
        "Per-worker memory for the eval split's rows: over it, each evaluation streams them "
        "from the token cache instead of holding them; also caps Ray Data's blocks when the "
        "cache is built (an eighth of it). None: eval rows held in memory.",
    )
    train_skills: list | None = _f(None, "Train skills to use; None: every skill in the data.")
    eval_skills: list | None = _f(None, "Eval skills to measure; None: every skill in eval data.")
    natural_proportions: dict | None = _f(
        None,
        "Skill -> weight of the data's natural mixture; None: the manifest's, else the "
        "row counts of the train split.",
    )

    @property
    def budget(self) -> MemoryBudget:
        return MemoryBudget(self.memory_budget_mb)


@dataclass(kw_only=True)
class ModelConfig:
    preset: str | None = _f("gpt2-tiny", "Named tiny architecture (see skillit_ray.model).")
    path: str | None = _f(None, "Local directory of a transformers causal LM (overrides preset).")
    overrides: dict = _f({}, "Config fields set on the transformers config (e.g. n_layer: 4).")


@dataclass(kw_only=True)
class TrainConfig:
    rounds: int = _f(6, "T: number of rounds; the mixture is fixed within a round.")
    steps_per_round: int = _f(100, "Optimizer steps per round.")
    batch_size: int = _f(32, "Global batch size (rows per step over all workers).")
    lr: float = _f(1e-3, "Peak learning rate of AdamW.")
    warmup_steps: int = _f(50, "Linear warmup steps; then the lr_schedule over the whole run.")
    lr_schedule: str = _f(
        "linear",
        "After warm-up: 'linear' decay to 0 at the run's last step, 'constant' at train.lr "
        "(what the calibrated synthetic tasks need: their plateaus break late), or 'cosine' "
        "decay to 0.",
    )
    weight_decay: float = _f(0.01, "AdamW weight decay (not applied to biases and norms).")
    grad_clip: float = _f(1.0, "Max global gradient norm; 0 disables clipping.")
    eval_every: int | None = _f(
        None,
        "Evaluate every this many steps within a round (an eval checkpoint); the end of a "
        "round is always evaluated. None: once per round.",
    )
    eval_batch_size: int = _f(256, "Rows per evaluation forward pass.")
    log_eval: bool = _f(
        True,
        "Evaluate for the log even when the policy needs no eval loss: at each round's end "
        "and every train.eval_every steps, the same grid for every policy (so policies are "
        "compared at the same steps). False: only the evals the policy needs.",
    )
    num_workers: int = _f(1, "Ray Train workers (DDP when > 1).")
    use_gpu: bool = _f(False, "Train on GPUs (one per worker).")
    cpus_per_worker: int = _f(1, "CPUs reserved per worker; also the torch thread count.")
    worker_resources: dict = _f(
        {},
        "Custom Ray resources each worker reserves besides its CPUs (and GPU), e.g. "
        "{worker_slot: 1} on a cluster whose nodes each offer one (`ray start "
        "--resources='{\"worker_slot\": 1}'`): one worker per node. Checked against the "
        "cluster before training.",
    )
    seed: int = _f(0, "Run seed: model init, round plans and row order follow from it.")
    checkpoint_every: int = _f(
        1,
        "Checkpoint (model, optimizer, LR schedule, sampler cursors, RNG, policy state and "
        "history) every this many rounds; the last round is always checkpointed.",
    )
    keep_checkpoints: int = _f(2, "Checkpoints kept in storage (the newest ones).")
    max_failures: int = _f(
        0,
        "Worker-group failures Ray Train recovers from by restoring the last checkpoint "
        "(FailureConfig); 0 stops at the first. Use >= 1 on clusters with preemptible nodes.",
    )


@dataclass(kw_only=True)
class PolicyConfig:
    name: str = _f("skillit", "Registered policy name (`skillit-ray policies` lists them).")
    params: dict = _f({}, "The policy's own Config fields.")


@dataclass(kw_only=True)
class GraphLearnConfig:
    method: str = _f(
        "approximate",
        "'approximate' (k runs, one skill each) or 'brute-force' "
        "(k^2 runs: each ordered pair against the single skill).",
    )
    steps: int = _f(50, "H: optimizer steps of each ablation run.")
    seeds: int = _f(1, "Seeds averaged (each: its own starting model and row order).")
    lr: float | None = _f(None, "Learning rate of the ablation runs; None: train.lr.")
    normalize: str = _f("raw", "'raw' loss decrease or 'relative' (decrease / loss before).")
    clip_negative: bool = _f(False, "Clip negative entries (skills that hurt) to 0.")
    binarize: float | None = _f(
        None,
        "Threshold: entries above it become edges of weight 0.5 (1 on the diagonal), "
        "as the paper's binary graphs; None keeps weights.",
    )
    diagonal: str = _f("keep", "Self-edges: 'keep', 'one' or 'zero'.")
    max_parallel: int | None = _f(
        None, "Ablation runs at once; None: as many as the cluster's CPUs allow."
    )
    init_from: str | None = _f(
        None,
        "Start every ablation run from a trained model: a run directory (its newest "
        "checkpoint) or one checkpoint directory of a finished or partial run; its weights and "
        "AdamW state are reused (docs/decisions.md). None: a fresh model (cold), or "
        "graph.warmup_steps.",
    )
    warmup_steps: int = _f(
        0,
        "W: before the ablations, train each seed's fresh model W steps on the natural "
        "mixture (the run's optimizer, lr and schedule), and start them all from it; 0: cold "
        "(a fresh model). Not with graph.init_from.",
    )


@dataclass(kw_only=True)
class SweepSection:
    params: dict = _f(
        {},
        "Dotted key -> list of values (grid) or {grid|choice|uniform|"
        "loguniform: [...]}, e.g. policy.params.eta: [0.1, 0.5].",
    )
    seeds: int = _f(1, "Seeds per point (train.seed = 0..seeds-1); the best averages them.")
    metric: str = _f(
        "mean_eval_loss",
        "'mean_eval_loss', 'mean_eval_acc', or "
        "'eval_loss/<skill>' (a target skill's loss), at the end of each run.",
    )
    num_samples: int = _f(1, "Tune samples per grid point (for random search spaces).")
    max_concurrent: int | None = _f(None, "Trials at once; None: what the cluster's CPUs fit.")
    scheduler: str = _f("none", "'none' or 'asha' (stops poor trials at round boundaries).")
    budget_steps: int | None = _f(
        None, "Fixed total steps: each trial's steps_per_round = budget_steps / train.rounds."
    )


@dataclass(kw_only=True)
class RunSection:
    name: str = _f("run", "Run name; also the Ray Train run name.")
    out: str | None = _f(None, "Run directory; default runs/<name>-<timestamp>.")
    storage_path: str | None = _f(None, "Ray Train storage; default <out>/ray.")
    ray_logs: bool = _f(False, "Show Ray's own logs and progress bars.")
    loggers: list = _f(
        [],
        "Experiment loggers, offline, through Ray's integrations: 'tensorboard' (event files "
        "in <out>/tensorboard; a sweep: in each trial's folder of <sweep>/ray/tune) and "
        "'mlflow' (MLflow's file store <out>/mlruns, or <sweep>/mlruns; needs pip install "
        "'skillit-ray[loggers]'). Each round: per-skill eval loss and accuracy, mixture, "
        "train loss, lr, against the optimizer step.",
    )


@dataclass(kw_only=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    graph: GraphLearnConfig = field(default_factory=GraphLearnConfig)
    sweep: SweepSection = field(default_factory=SweepSection)
    run: RunSection = field(default_factory=RunSection)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def total_steps(self) -> int:
        return self.train.rounds * self.train.steps_per_round


_SECTION_TYPES = {
    "data": DataConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "policy": PolicyConfig,
    "graph": GraphLearnConfig,
    "sweep": SweepSection,
    "run": RunSection,
}


def all_keys() -> list[str]:
    """Every valid dotted key, for suggestions."""
    return [f"{s}.{f.name}" for s, cls in _SECTION_TYPES.items() for f in fields(cls)]


def _unknown(key: str, where: str) -> ConfigError:
    near = difflib.get_close_matches(key, all_keys(), n=1, cutoff=0.5)
    hint = f"; did you mean '{near[0]}'?" if near else ""
    return ConfigError(f"{where}: unknown config key '{key}'{hint}")


def from_dict(raw: dict, where: str = "config") -> Config:
    """Build a Config from nested dicts, rejecting unknown keys (with the nearest valid key)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level, got {type(raw).__name__}")
    cfg = Config()
    for section, values in raw.items():
        if section not in _SECTION_TYPES:
            raise _unknown(section, where)
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"{where}: section '{section}' must be a mapping")
        for key, value in values.items():
            set_key(cfg, f"{section}.{key}", value, where)
    return cfg


def set_key(cfg: Config, dotted: str, value: Any, where: str = "--set") -> None:
    """Set ``section.field`` (or ``section.dictfield.sub...``) on cfg."""
    parts = dotted.split(".")
    if len(parts) < 2 or parts[0] not in _SECTION_TYPES:
        raise _unknown(dotted, where)
    section = getattr(cfg, parts[0])
    names = {f.name for f in fields(section)}
    if parts[1] not in names:
        raise _unknown(dotted, where)
    if len(parts) == 2:
        setattr(section, parts[1], value)
        return
    target = getattr(section, parts[1])
    if not isinstance(target, dict):
        raise ConfigError(f"{where}: '{'.'.join(parts[:2])}' is not a mapping; cannot set {dotted}")
    for p in parts[2:-1]:
        target = target.setdefault(p, {})
    target[parts[-1]] = value


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """Apply ``key=value`` strings; values are parsed as YAML (so 3, 0.5, [a, b] work).

    ``policy.name`` goes first: a new policy starts from its own defaults, so the recipe's
    parameters (written for another policy) are dropped, with one line saying which; every
    ``policy.params.*`` override then applies on top, whatever its place on the command line.
    """
    parsed = []
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"--set '{item}': expected dotted.key=value")
        key, text = item.split("=", 1)
        parsed.append((key.strip(), yaml.safe_load(text)))
    for key, value in parsed:
        if key == "policy.name" and value != cfg.policy.name:
            if cfg.policy.params:
                print(
                    f"skillit-ray: policy.name={value}: dropped the recipe's {cfg.policy.name} "
                    f"parameters ({', '.join(sorted(cfg.policy.params))}); {value} starts from "
                    "its defaults",
                    file=sys.stderr,
                )
            cfg.policy.params = {}
    for key, value in parsed:
        set_key(cfg, key, value)
    return cfg


def load(path: str, overrides: list[str] | None = None) -> Config:
    """Load a YAML config (safe_load), apply overrides, validate."""
    if not os.path.exists(path):
        raise ConfigError(f"config file '{path}' does not exist")
    try:
        with open(path) as fh:
            raw = yaml.safe_load(fh)
    except yaml.YAMLError as exc:  # one line: what is wrong, and where
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {what}") from None
    cfg = from_dict(raw, where=path)
    apply_overrides(cfg, overrides or [])
    base = os.path.dirname(os.path.abspath(path))
    _resolve_relative(cfg, base)
    validate(cfg)
    return cfg


def _resolve_relative(cfg: Config, base: str) -> None:
    """Paths in a recipe are relative to the recipe file, so recipes run from any directory: a
    policy parameter (at any depth) that looks like a path and names a file or folder beside
    the recipe becomes absolute."""

    def resolve(value):
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v) for v in value]
        looks_like_path = isinstance(value, str) and ("/" in value or "." in value)
        if looks_like_path and "://" not in value and not os.path.isabs(value):
            candidate = os.path.join(base, value)
            if os.path.exists(candidate):
                return candidate
        return value

    cfg.policy.params = resolve(cfg.policy.params)


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


# Bounds of numeric fields: dotted key -> (operator, limit). Checked with every field's type by
# ``check_types``, before anything starts, so a bad number never reaches a worker.
BOUNDS: dict[str, tuple[str, float]] = {
    "data.max_length": (">=", 1),
    "data.memory_budget_mb": (">", 0),
    "train.rounds": (">=", 1),
    "train.steps_per_round": (">=", 1),
    "train.batch_size": (">=", 1),
    "train.lr": (">", 0),
    "train.warmup_steps": (">=", 0),
    "train.weight_decay": (">=", 0),
    "train.grad_clip": (">=", 0),
    "train.eval_every": (">=", 1),
    "train.eval_batch_size": (">=", 1),
    "train.num_workers": (">=", 1),
    "train.cpus_per_worker": (">=", 1),
    "train.seed": (">=", 0),
    "train.checkpoint_every": (">=", 1),
    "train.keep_checkpoints": (">=", 1),
    "train.max_failures": (">=", -1),
    "graph.steps": (">=", 1),
    "graph.seeds": (">=", 1),
    "graph.lr": (">", 0),
    "graph.max_parallel": (">=", 1),
    "graph.warmup_steps": (">=", 0),
    "sweep.seeds": (">=", 1),
    "sweep.num_samples": (">=", 1),
    "sweep.max_concurrent": (">=", 1),
    "sweep.budget_steps": (">=", 1),
}
# Fields that take one of a few words.
CHOICES: dict[str, tuple[str, ...]] = {
    "data.format": ("auto", "parquet", "jsonl"),
    "graph.method": ("approximate", "brute-force"),
    "graph.normalize": ("raw", "relative"),
    "graph.diagonal": ("keep", "one", "zero"),
    "sweep.scheduler": ("none", "asha"),
    "train.lr_schedule": LR_SCHEDULES,
}
_KINDS = {
    "int": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "float": (
        "a number",
        lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    ),
    "str": ("a string", lambda v: isinstance(v, str)),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "dict": ("a mapping", lambda v: isinstance(v, dict)),
    "list": ("a list", lambda v: isinstance(v, list)),
}


def _check_field(section, f, key: str) -> None:
    """One field against its annotation (``int | None`` ...), its bound and its choices. A
    number given as text (``--set train.lr=1e-3``: YAML reads it as a string) is converted."""
    value = getattr(section, f.name)
    kinds = [k.strip() for k in str(f.type).split("|")]
    if value is None and "None" in kinds:
        return
    names = [k for k in kinds if k != "None"]
    if "float" in names and isinstance(value, str):
        try:
            value = float(value)
            setattr(section, f.name, value)
        except ValueError:
            pass
    if not any(_KINDS[k][1](value) for k in names if k in _KINDS):
        what = " or ".join(_KINDS[k][0] for k in names if k in _KINDS)
        bound = BOUNDS.get(key)
        what += f" {bound[0]} {bound[1]:g}" if bound else ""
        what += " (or null)" if "None" in kinds else ""
        raise ConfigError(f"{key} must be {what}, got {value!r}")
    if key in BOUNDS and not isinstance(value, str):
        op, limit = BOUNDS[key]
        ok = value >= limit if op == ">=" else value > limit
        kind = "an integer" if names == ["int"] else "a number"
        if not ok or value != value:  # NaN fails every comparison but this one
            raise ConfigError(f"{key} must be {kind} {op} {limit:g}, got {value!r}")
    if key in CHOICES and value not in CHOICES[key]:
        raise ConfigError(f"{key}: unknown {value!r}; expected one of {list(CHOICES[key])}")


def check_types(cfg: Config) -> None:
    """Every field of every section: its type, bound and choices (errors name the key)."""
    for name, cls in _SECTION_TYPES.items():
        section = getattr(cfg, name)
        for f in fields(cls):
            _check_field(section, f, f"{name}.{f.name}")


def validate(cfg: Config) -> None:
    """Types and ranges of every field, then the cross-field checks; nothing needs data."""
    check_types(cfg)
    t = cfg.train
    _check(
        t.batch_size % t.num_workers == 0,
        f"train.batch_size={t.batch_size} must be divisible by train.num_workers={t.num_workers}",
    )
    for name, amount in t.worker_resources.items():
        _check(
            name not in ("CPU", "GPU", "memory"),
            f"train.worker_resources: '{name}' is set by train.cpus_per_worker / "
            "train.use_gpu; name only custom resources here",
        )
        _check(
            isinstance(amount, (int, float)) and not isinstance(amount, bool) and amount > 0,
            f"train.worker_resources.{name} must be a number > 0, got {amount!r}",
        )
    d = cfg.data
    _check(
        d.generator is not None or d.train is not None,
        "data: set either data.generator (lego, addition, instruct, sources) or data.train and "
        "data.eval paths",
    )
    if d.generator is None:
        _check(d.eval is not None, "data.eval: the held-out split is required with data.train")
    _check(
        cfg.model.preset is not None or cfg.model.path is not None,
        "model: set model.preset or model.path",
    )
    check_logger_names(cfg.run.loggers)
    g = cfg.graph
    _check(
        g.init_from is None or not g.warmup_steps,
        "graph.init_from and graph.warmup_steps: give one (a trained run's checkpoint, or W "
        "warm-up steps from a fresh model), not both",
    )
    sw = cfg.sweep
    if sw.budget_steps is not None:
        _check(
            sw.budget_steps >= t.rounds,
            f"sweep.budget_steps={sw.budget_steps!r} is fewer steps than train.rounds="
            f"{t.rounds}: every round needs at least one step",
        )


def to_yaml(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
