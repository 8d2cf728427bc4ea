"""skillit_ray.testing.check_policy: passes a sound policy, and names each way one breaks."""

from dataclasses import dataclass, field

import numpy as np
import pytest

from skillit_ray.errors import PolicyError
from skillit_ray.mixture import Mixture
from skillit_ray.policy import Policy
from skillit_ray.testing import check_policy


def doc(text):
    return field(default=1.0, metadata={"doc": text})


class LossPower(Policy):
    """p ∝ eval loss ** power; keeps a round counter in its state."""

    needs = frozenset({"eval_loss"})

    @dataclass
    class Config:
        power: float = doc("Exponent on each skill's loss.")

    def init(self, ctx):
        self.skills, self.seen = ctx.train_skills, 0
        return Mixture.uniform(self.skills)

    def update(self, obs):
        self.seen += 1
        loss = np.array([obs.eval_loss[s] for s in self.skills])
        return Mixture.from_weights(self.skills, loss**self.config.power + 0.01 * self.seen)

    def state_dict(self):
        return {"seen": self.seen}

    def load_state_dict(self, state):
        self.seen = state["seen"]


def test_a_sound_policy_passes():
    result = check_policy(LossPower, power=2.0)
    assert result.name == "LossPower" and result.signals == {"eval_loss"}
    assert len(result.mixtures) == 13
    assert not np.allclose(result.mixtures[-1].probs, 0.25)  # it really followed the losses


class Undeclared(LossPower):
    """Reads eval loss but declares no signal."""

    needs = frozenset()


class ReadsInitialLoss(LossPower):
    """Reads the initial loss without declaring it."""

    def init(self, ctx):
        self.first = dict(ctx.initial_loss)
        return super().init(ctx)


class Forgetful(LossPower):
    """Its state misses the round counter."""

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


class Unseeded(LossPower):
    """Draws from an unseeded generator."""

    def update(self, obs):
        super().update(obs)
        return Mixture.from_weights(self.skills, np.random.default_rng().random(len(self.skills)))


class NotJson(LossPower):
    """State holds a numpy array."""

    def state_dict(self):
        return {"seen": np.array([self.seen])}


class Undocumented(LossPower):
    """A Config field without a doc."""

    @dataclass
    class Config:
        power: float = 1.0


class StringMixture(LossPower):
    """Returns a string probability from the third round on."""

    def update(self, obs):
        mix = super().update(obs)
        if obs.round < 2:
            return mix
        return {s: ("0.25" if s == "s2" else 0.25) for s in self.skills}


@pytest.mark.parametrize(
    "cls, match",
    [
        (Undeclared, r"read Observation.eval_loss, which the 'eval_loss' signal provides"),
        (ReadsInitialLoss, r"round 0, init\(\).*PolicyContext.initial_loss.*'initial_loss'"),
        (Forgetful, r"restored from state_dict\(\) after round 5, .* round 7"),
        (Unseeded, "not deterministic"),
        (NotJson, "state_dict\\(\\) right after init\\(\\) is not JSON-able"),
        (Undocumented, r"field\(s\) \['power'\] have no documentation"),
        (StringMixture, r"after round 2: policy 'StringMixture' returned non-numeric .*'0.25'"),
    ],
)
def test_each_breach_is_named(cls, match):
    with pytest.raises(PolicyError, match=match):
        check_policy(cls)


def test_unknown_name_and_wrong_kind():
    with pytest.raises(PolicyError, match="unknown policy 'nope'"):
        check_policy("nope")
    with pytest.raises(PolicyError, match="expected a policy name or Policy subclass"):
        check_policy(42)
