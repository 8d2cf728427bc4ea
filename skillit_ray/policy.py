"""The Policy contract and its registry (entry points plus ``@register_policy``).

The core sees policies only through this module: it never imports the built-in ``policies/``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from importlib.metadata import entry_points
from typing import Any, ClassVar

from skillit_ray.errors import PolicyError
from skillit_ray.mixture import Mixture, Observation, PolicyContext

GROUP = "skillit_ray.policies"

# Signals a policy may declare in ``needs``; the core computes only what the policy needs.
SIGNALS = {
    "eval_loss": "held-out per-skill eval loss at every eval checkpoint (train.eval_every)",
    "initial_loss": "per-skill eval loss of the initial model, before round 0 (in ctx)",
    "train_loss": "per-skill training loss of each round (always free: no extra compute)",
    "difficulty": "per-row loss of the initial model on the train rows, from a Ray Data "
    "batch-inference pass before training (in ctx)",
    "graph": "the skills graph, learned before round 0 with the run's `graph` config section "
    "(in ctx)",
}


class Policy:
    """Maps observations to the next mixture. Never touches Ray, torch or the data.

    Subclasses define a nested ``Config`` dataclass (each field with ``metadata={"doc": ...}``)
    and a one-line class docstring.
    """

    @dataclass
    class Config:
        pass

    name: ClassVar[str] = ""
    #: Signals this policy reads (keys of SIGNALS); third-party policies default to eval loss.
    needs: ClassVar[frozenset[str]] = frozenset({"eval_loss"})

    def __init__(self, config: Config):
        self.config = config

    def signals(self) -> frozenset[str]:
        """What this instance needs (wrappers answer for the policy they wrap)."""
        return frozenset(self.needs)

    @classmethod
    def example_params(cls, ctx: PolicyContext) -> dict:
        """Parameters that make a valid instance for ``ctx``; the contract test uses them."""
        return {}

    def init(self, ctx: PolicyContext) -> Mixture:
        """Return the mixture for round 0."""
        raise NotImplementedError

    def update(self, obs: Observation) -> Mixture:
        """Return the mixture for round obs.round + 1."""
        raise NotImplementedError

    def state_dict(self) -> dict:
        """JSON-able state (RNG included) that ``load_state_dict`` restores."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


_REGISTERED: dict[str, type[Policy]] = {}


def register_policy(name: str):
    """Register a policy class in this process (notebooks, tests); entry points are the norm."""

    def deco(cls: type[Policy]) -> type[Policy]:
        cls.name = name
        _REGISTERED[name] = cls
        return cls

    return deco


def registered_here(name: str) -> type[Policy] | None:
    return _REGISTERED.get(name)


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def available() -> list[str]:
    return sorted(set(_entry_points()) | set(_REGISTERED))


def get_policy_class(name: str) -> type[Policy]:
    if name in _REGISTERED:
        return _REGISTERED[name]
    eps = _entry_points()
    if name not in eps:
        raise PolicyError(f"unknown policy '{name}'; available: {', '.join(available())}")
    try:
        cls = eps[name].load()
    except Exception as exc:  # a broken plugin must not look like our bug
        raise PolicyError(
            f"policy plugin '{name}' ({eps[name].value}) failed to load: {exc}"
        ) from exc
    cls.name = name
    return cls


def make_config(cls: type[Policy], name: str, params: dict | None) -> Any:
    """Build ``cls.Config`` from params; unknown parameters are an error listing the valid ones."""
    params = dict(params or {})
    valid = {f.name for f in fields(cls.Config)}
    unknown = sorted(set(params) - valid)
    if unknown:
        raise PolicyError(
            f"policy '{name}' has no parameter(s) {unknown}; its parameters are: "
            f"{', '.join(sorted(valid)) or '(none)'}"
        )
    try:
        return cls.Config(**params)
    except (TypeError, ValueError) as exc:
        raise PolicyError(f"policy '{name}': bad parameters {params}: {exc}") from exc


def build_policy(name: str | tuple, params: dict | None = None) -> Policy:
    """Build by registered name, or from a (name, class) pair shipped from the driver."""
    if isinstance(name, tuple):
        name, cls = name
    else:
        cls = get_policy_class(name)
    policy = cls(make_config(cls, name, params))
    policy.name = name
    return policy


def describe_policy(name: str) -> dict:
    """Name, one-line summary, full doc and config fields of a registered policy."""
    cls = get_policy_class(name)
    doc = (cls.__doc__ or "").strip()
    out = []
    for f in fields(cls.Config):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = "(required)"
        out.append({"name": f.name, "default": default, "doc": f.metadata.get("doc", "")})
    return {"name": name, "summary": doc.splitlines()[0] if doc else "", "doc": doc, "fields": out}
