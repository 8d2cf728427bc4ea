"""Helpers shared by the built-in policies."""

from __future__ import annotations

from dataclasses import field

import numpy as np

from skillit_ray.errors import PolicyError


def param(default, doc: str):
    """A documented Config field (mutable defaults copied per instance)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


def softmax(scores: np.ndarray) -> np.ndarray:
    w = np.exp(scores - np.max(scores))
    return w / w.sum()


def require_skills(policy: str, what: str, names, known) -> list[str]:
    names = list(names or [])
    missing = [s for s in names if s not in known]
    if missing:
        raise PolicyError(
            f"policy '{policy}': {what} {missing} are not train skills ({list(known)})"
        )
    return names


def one_of(policy: str, name: str, value, allowed) -> None:
    if value not in allowed:
        raise PolicyError(f"policy '{policy}': {name}={value!r}; expected one of {list(allowed)}")


def losses_for(policy: str, values: dict, skills, what: str) -> np.ndarray:
    try:
        return np.array([float(values[s]) for s in skills])
    except KeyError as exc:
        raise PolicyError(f"policy '{policy}': no {what} for skill {exc}") from None
