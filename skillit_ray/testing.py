"""The policy contract as one call, for a plugin's own tests (no skillit-ray checkout needed).

    from skillit_ray.testing import check_policy

    def test_contract():
        check_policy("hardest_first", power=3.0)   # a registered name, or the class itself

``check_policy`` runs the policy through rounds of the training-free sandbox
(``skillit_ray.simulate``: a small graph, the linear law, a little observation noise) and checks:

1. its ``Config`` is a dataclass whose every field has ``metadata={"doc": ...}``, the class has a
   docstring, and ``needs`` / ``signals()`` name only signals the core provides;
2. ``init`` and every ``update`` return a valid mixture (the coordinator's own check);
3. it reads only the signals it declared: context and observation fields that belong to an
   undeclared signal raise on access (``eval_loss``: ``Observation.eval_loss``, ``eval_acc``,
   ``eval_checkpoints``; ``train_loss``: ``Observation.train_loss``; ``initial_loss`` and
   ``difficulty``: the ``PolicyContext`` fields of those names);
4. determinism: a second instance fed the same inputs returns identical mixtures;
5. ``state_dict`` survives JSON, and an instance restored from it (``init`` then
   ``load_state_dict``, as a resumed run does) returns the identical next mixtures.

A failure raises ``PolicyError`` naming the policy, the check and the round. Parameters default
to the class's ``example_params(ctx)``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass

import numpy as np

from skillit_ray.errors import PolicyError
from skillit_ray.graph import SkillsGraph
from skillit_ray.mixture import Mixture, Observation, PolicyContext, validate_mixture
from skillit_ray.policy import SIGNALS, Policy, get_policy_class, make_config
from skillit_ray.simulate import Law, Sandbox

# Which fields each signal brings; a field of no signal here is always present.
SIGNAL_FIELDS = {
    "eval_loss": (Observation, ("eval_loss", "eval_acc", "eval_checkpoints")),
    "train_loss": (Observation, ("train_loss",)),
    "initial_loss": (PolicyContext, ("initial_loss",)),
    "difficulty": (PolicyContext, ("difficulty",)),
    "graph": (PolicyContext, ("graph",)),
}

SKILLS = ("s1", "s2", "s3", "s4")
# Identity plus a chain and one negative edge: every kind of entry a learned graph holds.
MATRIX = [[1, 0.5, 0, 0], [0, 1, 0.5, 0], [0, 0, 1, 0.5], [-0.2, 0, 0, 1]]


@dataclass
class PolicyCheck:
    """What ``check_policy`` ran: the policy, its parameters and the mixtures it chose."""

    name: str
    params: dict
    signals: frozenset[str]
    mixtures: list[Mixture]


def _sandbox(rounds: int) -> Sandbox:
    graph = SkillsGraph(SKILLS, SKILLS, np.array(MATRIX, float))
    natural = dict(zip(SKILLS, (0.1, 0.2, 0.3, 0.4)))
    return Sandbox(
        Law(graph, rate=0.02), rounds, steps_per_round=10, batch_size=8, eval_every=5,
        noise=0.05, natural=natural,
    )  # fmt: skip


@functools.cache
def _guarded_type(base: type, hidden: tuple[tuple[str, str], ...]) -> type:
    def getter(attr: str, signal: str):
        def get(self):
            raise PolicyError(
                f"read {base.__name__}.{attr}, which the '{signal}' signal provides, without "
                f"declaring it: add '{signal}' to the policy's needs (or its signals())"
            )

        return property(get)

    return type(f"Guarded{base.__name__}", (base,), {a: getter(a, s) for a, s in hidden})


def guard(value, declared: frozenset[str]):
    """A copy of a PolicyContext or Observation whose undeclared signals raise on access."""
    base = type(value)
    hidden = tuple(
        (attr, signal)
        for signal, (owner, attrs) in SIGNAL_FIELDS.items()
        if owner is base and signal not in declared
        for attr in attrs
    )
    out = object.__new__(_guarded_type(base, hidden))
    names = {a for a, _ in hidden}
    for f in dataclasses.fields(base):
        if f.name not in names:
            out.__dict__[f.name] = getattr(value, f.name)
    return out


def _resolve(policy) -> tuple[type[Policy], str]:
    if isinstance(policy, str):
        return get_policy_class(policy), policy
    if isinstance(policy, type) and issubclass(policy, Policy):
        return policy, policy.name or policy.__name__
    raise PolicyError(f"check_policy: expected a policy name or Policy subclass, got {policy!r}")


def _declaration(cls: type[Policy], name: str) -> None:
    fail = f"check_policy('{name}'):"
    if not (cls.__doc__ or "").strip():
        raise PolicyError(f"{fail} the class has no docstring (its first line is its summary)")
    if not dataclasses.is_dataclass(cls.Config):
        raise PolicyError(f"{fail} {cls.__name__}.Config must be a @dataclass")
    undocumented = [
        f.name for f in dataclasses.fields(cls.Config) if not str(f.metadata.get("doc", "")).strip()
    ]
    if undocumented:
        raise PolicyError(
            f"{fail} Config field(s) {undocumented} have no documentation; declare each as "
            "field(default=..., metadata={'doc': '...'})"
        )
    unknown = sorted(set(cls.needs) - set(SIGNALS))
    if unknown:
        raise PolicyError(f"{fail} needs {unknown} are not signals; known: {sorted(SIGNALS)}")


class _Run:
    """One policy instance driven through the contract's rounds."""

    def __init__(self, cls, name: str, params: dict, ctx: PolicyContext):
        self.name, self.skills = name, ctx.train_skills
        try:
            self.policy = cls(make_config(cls, name, params))
        except PolicyError:
            raise
        except Exception as exc:
            raise PolicyError(f"check_policy('{name}'): building it raised {exc!r}") from exc
        self.policy.name = name
        self.signals = frozenset(self.policy.signals())
        unknown = sorted(self.signals - set(SIGNALS))
        if unknown:
            raise PolicyError(
                f"check_policy('{name}'): signals() {unknown} are not signals; "
                f"known: {sorted(SIGNALS)}"
            )
        self.ctx = guard(ctx, self.signals)

    def call(self, what: str, fn, arg, where: str) -> Mixture:
        try:
            mix = fn(arg)
        except PolicyError as exc:
            raise PolicyError(f"check_policy('{self.name}'), {where}, {what}(): {exc}") from exc
        except Exception as exc:
            raise PolicyError(
                f"check_policy('{self.name}'), {where}, {what}() raised {type(exc).__name__}: {exc}"
            ) from exc
        try:
            return validate_mixture(mix, self.skills, self.name)
        except PolicyError as exc:
            raise PolicyError(f"check_policy('{self.name}'), {where}: {exc}") from None

    def init(self) -> Mixture:
        return self.call("init", self.policy.init, self.ctx, "round 0")

    def update(self, obs: Observation) -> Mixture:
        where = f"after round {obs.round}"
        return self.call("update", self.policy.update, guard(obs, self.signals), where)


def _same(a: Mixture, b: Mixture) -> bool:
    return np.array_equal(a.probs, b.probs) and a.row_filter == b.row_filter


def check_policy(policy, /, **params) -> PolicyCheck:
    """Run the whole policy contract (module doc) on a registered name or a Policy subclass."""
    cls, name = _resolve(policy)
    _declaration(cls, name)
    rounds = 12
    box = _sandbox(rounds)
    ctx = box.context()
    if not params:
        params = cls.example_params(ctx)
        if not isinstance(params, dict):
            raise PolicyError(f"check_policy('{name}'): example_params returned {params!r}")

    run = _Run(cls, name, params, ctx)
    mixtures, observations = [run.init()], []
    for r in range(rounds):
        observations.append(box.run_round(r, mixtures[-1]).observation())
        mixtures.append(run.update(observations[-1]))

    again = _Run(cls, name, params, ctx)
    replay = [again.init()] + [again.update(o) for o in observations]
    for r, (a, b) in enumerate(zip(mixtures, replay)):
        if not _same(a, b):
            raise PolicyError(
                f"check_policy('{name}'): not deterministic: a second instance fed the same "
                f"inputs chose {b.probs.tolist()} ({b.row_filter}) for round {r}, the first "
                f"{a.probs.tolist()} ({a.row_filter})"
            )

    for cut in (0, rounds // 2):
        when = "right after init()" if cut == 0 else f"after round {cut - 1}"
        first = _Run(cls, name, params, ctx)
        first.init()
        for o in observations[:cut]:
            first.update(o)
        try:
            state = json.loads(json.dumps(first.policy.state_dict()))
        except (TypeError, ValueError) as exc:
            raise PolicyError(
                f"check_policy('{name}'): state_dict() {when} is not JSON-able: {exc}"
            ) from None
        restored = _Run(cls, name, params, ctx)
        restored.init()
        try:
            restored.policy.load_state_dict(state)
        except Exception as exc:
            raise PolicyError(
                f"check_policy('{name}'): load_state_dict() of its own state raised "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        for o in observations[cut:]:
            a, b = first.update(o), restored.update(o)
            if not _same(a, b):
                raise PolicyError(
                    f"check_policy('{name}'): restored from state_dict() {when}, "
                    f"it chose {b.probs.tolist()} for round {o.round + 1} where the original "
                    f"chose {a.probs.tolist()}: the state misses something update() uses"
                )
    return PolicyCheck(name, dict(params), run.signals, mixtures)
