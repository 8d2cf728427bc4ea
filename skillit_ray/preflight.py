"""Before Ray starts: everything about a run that can be checked on the driver in a few seconds.

The config's types and ranges (``config.validate``), the data's files and skills (``prepare``),
the model (its preset or folder, sized to the data), and the policy: built from its parameters
and asked for round 0's mixture once, here, with stand-ins for the signals computed later on
Ray (initial loss, per-row difficulty, a learned graph). So a policy's own checks (its graph
file, the graph's skill names against the data's, a target skill) fail in seconds, not after
Ray, the workers and the data drain have started.
"""

from __future__ import annotations

import os

import numpy as np

from skillit_ray.config import Config
from skillit_ray.data.prepare import PreparedData
from skillit_ray.errors import ConfigError, PolicyError, SkillitError
from skillit_ray.loggers import check_installed
from skillit_ray.mixture import PolicyContext, validate_mixture
from skillit_ray.policy import build_policy


def check_config(cfg: Config) -> None:
    """What needs neither data nor Ray (milliseconds): the packages of the requested loggers,
    the policy's name and parameters, the model's preset or folder."""
    check_installed(cfg.run.loggers)
    policy = build_policy(cfg.policy.name, cfg.policy.params)
    graph = getattr(policy.config, "graph", None)
    if isinstance(graph, str) and graph != "learn":  # a graph file: readable, well-formed
        from skillit_ray.graph import SkillsGraph

        SkillsGraph.load(graph)
    _check_model_source(cfg)


def _check_model_source(cfg: Config) -> None:
    from skillit_ray import model

    m = cfg.model
    if m.path:
        if not os.path.isdir(m.path):
            raise ConfigError(f"model.path '{m.path}': no such folder (a local transformers model)")
    elif m.preset not in model.PRESETS:
        raise ConfigError(f"model.preset: unknown '{m.preset}'; available: {sorted(model.PRESETS)}")


def check_model(cfg: Config, data: PreparedData) -> None:
    """The model config builds for this data (a preset or overrides that exist, a vocabulary
    that fits), without building the weights; a model folder must exist."""
    from skillit_ray import model

    _check_model_source(cfg)
    if not cfg.model.path:
        model.build_config(cfg.model, data.vocab_size, data.max_len)


def stand_in_context(cfg: Config, data: PreparedData, needs: frozenset[str]) -> PolicyContext:
    """The run's PolicyContext with placeholder values for what Ray computes before round 0:
    loss 1 per eval skill, evenly spread row difficulties, an all-ones graph."""
    from skillit_ray.graph import SkillsGraph

    rows = data.train.rows_per_skill
    initial = {s: 1.0 for s in data.eval_skills} if "initial_loss" in needs else None
    difficulty = None
    if "difficulty" in needs:
        difficulty = {s: np.linspace(0.5, 2.0, rows[s]).tolist() for s in data.train_skills}
    graph = None
    if "graph" in needs:
        ones = np.ones((len(data.train_skills), len(data.eval_skills)))
        graph = SkillsGraph(data.train_skills, data.eval_skills, ones)
    from skillit_ray.context import policy_context

    return policy_context(cfg, data, initial, difficulty, graph)


def check_policy_start(cfg: Config, data: PreparedData) -> frozenset[str]:
    """Build the policy and let it choose round 0's mixture on stand-in signals; returns the
    signals it needs. Errors name the policy and round 0."""
    policy = build_policy(cfg.policy.name, cfg.policy.params)
    needs = policy.signals()
    ctx = stand_in_context(cfg, data, needs)
    try:
        mix = policy.init(ctx)
    except PolicyError as exc:
        raise PolicyError(f"round 0: {exc}") from None
    except SkillitError:  # a graph's own errors (GraphError) name the file already
        raise
    except Exception as exc:
        raise PolicyError(
            f"round 0: policy '{cfg.policy.name}' raised in init(): {type(exc).__name__}: {exc}"
        ) from None
    validate_mixture(mix, ctx.train_skills, cfg.policy.name)
    return needs


def check_run(cfg: Config, data: PreparedData) -> frozenset[str]:
    """Everything above (the policy first: the model's check imports torch, seconds); returns
    the signals the policy needs."""
    needs = check_policy_start(cfg, data)
    check_model(cfg, data)
    return needs
