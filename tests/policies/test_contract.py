"""The plugin contract, checked for every registered policy (third-party ones included)."""

import copy
import importlib.util
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pytest

from skillit_ray.coordinator import CoordinatorImpl
from skillit_ray.errors import PolicyError
from skillit_ray.mixture import Mixture, Observation, PolicyContext
from skillit_ray.policy import SIGNALS, Policy, available, register_policy
from skillit_ray.records import RoundRecord
from skillit_ray.testing import check_policy

EXAMPLE = (
    Path(__file__).resolve().parents[2] / "examples/custom_policy/skillit_hardest_first/__init__.py"
)

TRAIN = ("s1", "s2", "s3", "s4")
CTX = dict(
    train_skills=TRAIN,
    eval_skills=TRAIN,
    natural_proportions={"s1": 0.1, "s2": 0.2, "s3": 0.3, "s4": 0.4},
    rounds=20,
    steps_per_round=10,
    batch_size=8,
    seed=0,
    train_rows={s: 100 for s in TRAIN},
)


def context() -> PolicyContext:
    rng = np.random.default_rng(0)
    difficulty = {
        s: sorted(rng.gamma(2.0, 0.3 * (i + 1), 100).tolist()) for i, s in enumerate(TRAIN)
    }
    return PolicyContext(
        **CTX, initial_loss={"s1": 0.7, "s2": 1.3, "s3": 0.2, "s4": 0.9}, difficulty=difficulty
    )


def observations(n: int, seed: int):
    """Synthetic rounds: losses that drift down with noise, every signal present."""
    rng = np.random.default_rng(seed)
    base = np.array([0.7, 1.3, 0.2, 0.9])
    for r in range(n):
        cps = []
        for c in range(2):
            loss = base * (0.97 ** (2 * r + c)) + rng.uniform(0, 0.05, 4)
            cps.append(
                {
                    "step": 10 * r + 5 * (c + 1),
                    "loss": dict(zip(TRAIN, loss.tolist())),
                    "acc": dict(zip(TRAIN, rng.uniform(0, 1, 4).tolist())),
                }
            )
        train_loss = dict(zip(TRAIN, (base * 0.95**r + rng.uniform(0, 0.1, 4)).tolist()))
        yield Observation(
            r,
            10 * (r + 1),
            {},
            {s: 20 for s in TRAIN},
            cps[-1]["loss"],
            cps[-1]["acc"],
            train_loss,
            cps,
        )


@pytest.mark.parametrize("name", available())
def test_every_registered_policy_passes_check_policy(name):
    """The public checker: valid mixtures, declared signals only, determinism, resumable state."""
    result = check_policy(name)
    assert len(result.mixtures) == 13 and result.signals <= set(SIGNALS)


def test_the_example_plugin_passes_check_policy():
    spec = importlib.util.spec_from_file_location("skillit_hardest_first", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = check_policy(module.HardestFirst, power=3.0)
    assert result.signals == {"eval_loss"} and result.params == {"power": 3.0}


@register_policy("test_raises_in_update")
class RaisesInUpdate(Policy):
    """A plugin with a bug: init works, update raises."""

    @dataclass
    class Config:
        pass

    def init(self, ctx):
        return Mixture.uniform(ctx.train_skills)

    def update(self, obs):
        raise KeyError("skill_typo")


def record(obs: Observation) -> RoundRecord:
    return RoundRecord(**{**asdict(obs), "mixture": Mixture.uniform(TRAIN)})


def test_plugin_raising_is_named():
    coord = CoordinatorImpl("test_raises_in_update", {}, context())
    with pytest.raises(PolicyError) as err:
        coord.report(record(next(observations(1, seed=0))))
    assert "policy 'test_raises_in_update' raised in update(): KeyError: 'skill_typo'" in str(
        err.value
    )


def test_coordinator_snapshot_restores_the_same_future():
    """A coordinator restored from a JSON round trip of its snapshot continues identically."""
    obs = [record(o) for o in observations(6, seed=4)]
    a = CoordinatorImpl("skillit", {"eta": 0.8}, context())
    for o in obs[:3]:
        a.report(o)
    b = CoordinatorImpl("skillit", {"eta": 0.8}, context())
    b.restore(json.loads(json.dumps(a.snapshot())))
    assert [h.round for h in b.history] == [0, 1, 2]
    assert np.array_equal(a.mixtures[3].probs, b.mixtures[3].probs)
    for o in obs[3:]:
        a.report(o)
        b.report(copy.deepcopy(o))
        assert np.allclose(a.mixtures[o.round + 1].probs, b.mixtures[o.round + 1].probs)
