"""Wrappers keep the wrapped row filter; bad settings are errors that say what to set."""

import json
from dataclasses import fields

import numpy as np
import pytest

from skillit_ray.errors import PolicyError
from skillit_ray.mixture import Observation
from skillit_ray.policy import build_policy, get_policy_class
from tests.policies import context

SK = ("a", "b", "c")
# per-row difficulty: c's rows are all hard, so an easy-rows pool holds none of them
DIFF = {"a": [0.1, 0.2, 0.3], "b": [0.15, 0.4, 0.5], "c": [2.0, 2.5, 3.0]}


def ctx(train=SK, eval_=None, **kw):
    return context(train, eval_, **{"rounds": 3, "steps_per_round": 1, "batch_size": 2,
                                    "difficulty": DIFF, **kw})  # fmt: skip


def obs(r):
    return Observation(r, r + 1, {}, {s: 1 for s in SK}, {}, {}, {}, [])


def test_floor_keeps_the_row_filter_and_floors_only_drawable_skills():
    inner = build_policy("curriculum")
    want = inner.init(ctx())  # pool: the 2 easiest rows, one of a, one of b
    floor = build_policy("floor", {"policy": "curriculum", "epsilon": 0.2})
    m = floor.init(ctx())
    assert m.row_filter == want.row_filter == ("max", 0.15)
    # c has no row <= 0.15: the floor's share goes to a and b only (c could not be drawn)
    assert np.allclose(m.probs, 0.8 * want.probs + 0.2 * np.array([0.5, 0.5, 0]))
    later = floor.update(obs(0))
    assert later.row_filter == inner.update(obs(0)).row_filter == ("max", 0.3)


def test_ema_keeps_the_row_filter():
    c = ctx()
    ema = build_policy("ema", {"policy": "anticurriculum", "beta": 0.5})
    inner = build_policy("anticurriculum")
    first, want0 = ema.init(c), inner.init(c)
    assert first.row_filter == want0.row_filter == ("min", 2.5)
    second, want1 = ema.update(obs(0)), inner.update(obs(0))
    assert second.row_filter == want1.row_filter
    mixed = 0.5 * want0.probs + 0.5 * want1.probs
    assert np.allclose(second.probs, mixed / mixed.sum())


def test_skillit_out_of_domain_without_graph_says_what_to_set():
    pol = build_policy("skillit")
    with pytest.raises(PolicyError, match=r"skillit' \(ood\).*set policy.params.graph"):
        pol.init(ctx(("t1", "t2"), ("e1",)))


def test_skillit_graph_that_reaches_no_eval_skill_is_an_error(tmp_path):
    g = tmp_path / "g.json"
    g.write_text(
        json.dumps({"train_skills": ["t1", "t2"], "eval_skills": ["e1"], "matrix": [[0], [0]]})
    )
    with pytest.raises(PolicyError, match="no nonzero entry"):
        build_policy("skillit", {"graph": str(g)}).init(ctx(("t1", "t2"), ("e1",)))
    # fine-tuning toward an eval skill no train skill reaches through the identity graph
    with pytest.raises(PolicyError, match="identity graph"):
        build_policy("skillit", {"target": ["e1"]}).init(ctx(("t1", "t2"), ("t1", "e1")))


def test_static_skillit_lists_only_fields_that_act():
    static = {f.name for f in fields(get_policy_class("static_skillit").Config)}
    online = {f.name for f in fields(get_policy_class("skillit").Config)}
    assert static == {"graph", "eta", "setting", "target", "diagonal", "binary_edge_weight",
                      "negative"}  # fmt: skip
    inert = {"window", "window_unit", "reduction", "normalize_loss", "eta_schedule", "initial"}
    assert inert <= online and not inert & static
    with pytest.raises(PolicyError, match=r"no parameter\(s\) \['window'\]"):
        build_policy("static_skillit", {"window": 2})


@pytest.mark.parametrize(
    "name, params, match",
    [
        ("aioli", {"one_hot_factor": 1 / 3}, "one_hot_factor = 1/k"),
        ("aioli", {"exploit_rounds": 0}, "exploit_rounds >= 1"),
        ("odm", {"updater": "exp4"}, "updater='exp4'"),
        ("odm", {"alpha": 1.0}, r"alpha must be in \[0, 1\)"),
        ("doremi", {"reference": {s: 1.0 for s in SK}, "clock": "days"}, "clock='days'"),
        ("skill_curriculum", {"order_by": "size"}, "order_by='size'"),
        ("skill_curriculum", {"mixing_frac": 2}, "mixing_frac"),
    ],
)
def test_bad_settings_name_the_field(name, params, match):
    c = ctx(initial_loss={s: 1.0 for s in SK})
    with pytest.raises(PolicyError, match=match):
        build_policy(name, params).init(c)


def test_signals_follow_the_config():
    assert build_policy("skill_curriculum").signals() == {"difficulty"}
    assert build_policy("skill_curriculum", {"order_by": "eval"}).signals() == {"initial_loss"}
    ref = {"reference": {s: 1.0 for s in SK}}
    assert build_policy("doremi", {**ref, "signal": "eval"}).signals() == {"eval_loss"}


def test_doremi_round_clock_updates_once():
    pol = build_policy("doremi", {"reference": {s: 1.0 for s in SK}, "clock": "rounds"})
    pol.init(ctx())
    loss = {"a": 2.0, "b": 1.0, "c": 1.5}
    p = pol.update(Observation(0, 50, {}, {s: 1 for s in SK}, {}, {}, loss, [])).probs
    lam = np.exp([1.0, 0.0, 0.5])
    assert np.allclose(p, 0.999 * lam / lam.sum() + 0.001 / 3)
