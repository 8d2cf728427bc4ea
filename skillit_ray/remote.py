"""What crosses into Ray and back: a policy shipped to the coordinator actor, by name or by
value, and our own errors unwrapped from the exceptions Ray wraps them in."""

from __future__ import annotations

import re
import sys

from skillit_ray.errors import SkillitError


def policy_ref(name: str):
    """What the coordinator needs to build the policy: its name, or, for a class registered
    with @register_policy in this process (a notebook, a test), the class itself by value,
    since the actor's process never ran that registration."""
    from ray import cloudpickle

    from skillit_ray.policy import registered_here

    cls = registered_here(name)
    if cls is None:
        return name
    if cls.__module__ != "__main__":
        cloudpickle.register_pickle_by_value(sys.modules[cls.__module__])
    return (name, cls)


def find_cause(exc: BaseException) -> SkillitError | None:
    """Our own error inside Ray's wrappers (task errors, worker-group failures), if any."""
    from ray.exceptions import RayError

    for e in _walk(exc):
        if isinstance(e, SkillitError) and not isinstance(e, RayError):
            return e
    return _from_traceback_text(exc)


# The last line of a traceback that ended in one of our errors: "skillit_ray.errors.X: message"
_OURS = re.compile(r"^skillit_ray\.errors\.(\w+): (.+)$", re.MULTILINE)


def _from_traceback_text(exc: BaseException) -> SkillitError | None:
    """Ray Data re-raises a failed map task as UserCodeException, whose own cause (ours) does
    not survive the trip between processes; only the task's traceback text does. The error is
    rebuilt from its last line there: its class and its one-line message."""
    from skillit_ray import errors

    found = None
    for e in _walk(exc):
        text = getattr(e, "traceback_str", None) or str(e)
        for name, message in _OURS.findall(text):
            cls = getattr(errors, name, None)
            if isinstance(cls, type) and issubclass(cls, SkillitError):
                found = cls(message.strip())
    return found


def _walk(exc: BaseException):
    """``exc`` and every exception it wraps: causes, contexts, a RayTaskError's ``cause``, a
    worker group's per-worker failures."""
    seen, stack = set(), [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        failures = getattr(e, "worker_failures", None) or {}
        failures = failures.values() if isinstance(failures, dict) else failures
        # RayTaskError keeps the original exception in .cause
        stack += [getattr(e, "cause", None), e.__cause__, e.__context__, *failures]
