"""What crosses into Ray and back: a policy shipped to the coordinator actor, by name or by
value, and our own errors unwrapped from the exceptions Ray wraps them in."""

from __future__ import annotations

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

    seen, stack = set(), [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, SkillitError) and not isinstance(e, RayError):
            return e
        failures = getattr(e, "worker_failures", None) or {}
        failures = failures.values() if isinstance(failures, dict) else failures
        # RayTaskError keeps the original exception in .cause
        stack += [getattr(e, "cause", None), e.__cause__, e.__context__, *failures]
    return None
