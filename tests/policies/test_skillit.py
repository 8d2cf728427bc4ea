"""SKILL-IT against the reference's worked example and formulas (reference sections 1.2-1.4)."""

import json

import numpy as np
import pytest

from skillit_ray.errors import GraphError, PolicyError
from skillit_ray.mixture import Observation, PolicyContext
from skillit_ray.policy import build_policy

LEGO = [f"lego/depth{i}" for i in range(1, 6)]


def ctx(train, eval_=None):
    eval_ = eval_ or train
    return PolicyContext(tuple(train), tuple(eval_), {s: 1 / len(train) for s in train}, 6, 10, 8)


def obs(round_, checkpoints, skills):
    cps = [
        {"step": i, "loss": dict(zip(skills, c, strict=True)), "acc": {}}
        for i, c in enumerate(checkpoints)
    ]
    return Observation(round_, 0, {}, {}, cps[-1]["loss"], {}, {}, cps)


@pytest.fixture
def lego_graph(tmp_path):
    path = tmp_path / "g.json"
    m = [[1, 0, 0, 0, 0], [1, 1, 1, 1, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1]]
    path.write_text(json.dumps({"train_skills": LEGO, "eval_skills": LEGO, "matrix": m}))
    return str(path)


def test_worked_example(lego_graph):
    """Reference 1.4: p1 = [.16,.35,.16,.16,.16]; losses [0,.69,...] x 3 summed -> p2."""
    pol = build_policy("skillit", {"graph": lego_graph, "eta": 0.5})
    p1 = pol.init(ctx(LEGO)).probs
    assert np.round(p1, 2).tolist() == [0.16, 0.35, 0.16, 0.16, 0.16]
    L = [0.0, 0.69, 0.69, 0.69, 0.69]
    p2 = pol.update(obs(0, [L, L, L], LEGO)).probs
    assert np.round(p2, 2).tolist() == [0.06, 0.46, 0.16, 0.16, 0.16]


def formula(A, window, eta, reduce):
    Lw = np.sum(window, 0) if reduce == "sum" else np.mean(window, 0)
    w = np.exp(eta * A @ Lw)
    return w / w.sum()


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("unit", ["checkpoints", "rounds"])
def test_window_sum_and_mean(reduction, unit):
    sk = ["a", "b", "c"]
    pol = build_policy(
        "skillit", {"eta": 0.3, "window": 3, "reduction": reduction, "window_unit": unit}
    )
    pol.init(ctx(sk))
    rng = np.random.default_rng(0)
    seen = []
    for r in range(4):
        cps = rng.uniform(0.1, 2.0, size=(2, 3)).tolist()
        got = pol.update(obs(r, cps, sk)).probs
        seen += cps if unit == "checkpoints" else cps[-1:]
        want = formula(np.eye(3), np.array(seen[-3:]), 0.3, reduction)
        assert np.allclose(got, want)


def test_finetune_slices_target_column_and_means(tmp_path):
    sk = LEGO[:3]
    path = tmp_path / "ft.json"
    path.write_text(
        json.dumps(
            {"train_skills": sk, "eval_skills": sk, "matrix": [[1, 0, 0], [1, 1, 1], [0, 0, 1]]}
        )
    )
    pol = build_policy("skillit", {"graph": str(path), "eta": 0.5, "target": [sk[2]]})
    p1 = pol.init(ctx(sk)).probs
    col = np.array([0.0, 0.5, 1.0])  # reference 2.3: LEGO ft target column [0, 0.5, 1]
    assert pol.setting == "finetune" and pol.reduce == "mean"
    assert np.allclose(p1, np.exp(0.5 * col) / np.exp(0.5 * col).sum())
    L = [[9.0, 9.0, 0.4], [9.0, 9.0, 0.8]]  # only the target's loss may matter
    p2 = pol.update(obs(0, L, sk)).probs
    assert np.allclose(p2, formula(col[:, None], np.array([[0.4], [0.8]]), 0.5, "mean"))


def test_out_of_domain_rectangular_graph(tmp_path):
    train, ev = ["t1", "t2", "t3"], ["e1", "e2"]
    A = [[0.2, -0.1], [0.0, 0.7], [1.0, 1.0]]  # 1.0 entries off-diagonal become 0.5
    path = tmp_path / "ood.json"
    path.write_text(json.dumps({"train_skills": train, "eval_skills": ev, "matrix": A}))
    pol = build_policy("skillit", {"graph": str(path), "eta": 0.2})
    pol.init(ctx(train, ev))
    assert pol.setting == "ood" and pol.reduce == "sum"
    eff = np.array([[0.2, -0.1], [0.0, 0.7], [0.5, 0.5]])
    got = pol.update(obs(0, [[1.0, 2.0]], ev)).probs
    assert np.allclose(got, formula(eff, np.array([[1.0, 2.0]]), 0.2, "sum"))


def test_state_dict_round_trip(lego_graph):
    a = build_policy("skillit", {"graph": lego_graph})
    a.init(ctx(LEGO))
    a.update(obs(0, [[0.5] * 5, [0.4] * 5], LEGO))
    b = build_policy("skillit", {"graph": lego_graph})
    b.init(ctx(LEGO))
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    nxt = obs(1, [[0.1, 0.9, 0.3, 0.2, 0.7]], LEGO)
    assert np.allclose(a.update(nxt).probs, b.update(nxt).probs)


def test_graph_missing_skill_is_named(tmp_path):
    path = tmp_path / "g.json"
    path.write_text(json.dumps({"train_skills": ["a"], "eval_skills": ["a"], "matrix": [[1]]}))
    pol = build_policy("skillit", {"graph": str(path)})
    with pytest.raises(GraphError, match=r"no train skill\(s\) \['b'\]"):
        pol.init(ctx(["a", "b"]))


def test_bad_parameters_are_named():
    with pytest.raises(PolicyError, match="eta must be >= 0"):
        build_policy("skillit", {"eta": -1}).init(ctx(["a"]))
    with pytest.raises(PolicyError, match="window_unit"):
        build_policy("skillit", {"window_unit": "epochs"}).init(ctx(["a"]))
