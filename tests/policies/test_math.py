"""Per-policy values computed by hand from the formulas in the reference and the papers."""

import json
import math

import numpy as np
import pytest

from skillit_ray.errors import PolicyError
from skillit_ray.mixture import Observation, PolicyContext
from skillit_ray.policy import build_policy

SK = ("a", "b", "c")


def ctx(**kw):
    base = dict(
        train_skills=SK,
        eval_skills=SK,
        natural_proportions={"a": 0.2, "b": 0.3, "c": 0.5},
        rounds=4,
        steps_per_round=10,
        batch_size=8,
    )
    base.update(kw)
    return PolicyContext(**base)


def obs(r, eval_loss=None, train_loss=None, samples=None):
    ev = eval_loss or {}
    return Observation(
        r,
        0,
        {},
        samples or {s: 5 for s in SK},
        ev,
        {},
        train_loss or {},
        [{"step": 0, "loss": ev, "acc": {}}],
    )


def test_doremi_excess_loss(tmp_path):
    ref = tmp_path / "ref.json"
    ref.write_text(json.dumps({"a": 1.0, "b": 1.0, "c": 1.0}))
    pol = build_policy("doremi", {"reference": str(ref), "eta": 2.0, "smoothing": 0.1})
    assert np.allclose(pol.init(ctx()).probs, [1 / 3] * 3)
    p = pol.update(obs(0, train_loss={"a": 1.5, "b": 0.5, "c": 1.2})).probs
    lam = np.exp(2.0 * np.array([0.5, 0.0, 0.2]))  # excess clipped at 0 for b
    assert np.allclose(p, 0.9 * lam / lam.sum() + 0.1 / 3)


def test_doremi_reference_run_round_by_round(tmp_path):
    rows = [
        {"train_loss": {"a": 2.0, "b": 2.0, "c": 2.0}},
        {"train_loss": {"a": 0.1, "b": 0.1, "c": 0.1}},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pol = build_policy("doremi", {"reference": str(tmp_path), "smoothing": 0.0})
    pol.init(ctx())
    assert np.allclose(pol.update(obs(0, train_loss={"a": 1, "b": 1, "c": 1})).probs, 1 / 3)
    assert pol.update(obs(1, train_loss={"a": 1.1, "b": 0.1, "c": 0.1})).probs[0] > 0.5
    with pytest.raises(PolicyError, match="no reference loss for skill 'c'"):
        build_policy("doremi", {"reference": {"a": 1, "b": 1}}).init(ctx())


def test_static_skillit_forces_diagonal(tmp_path):
    g = tmp_path / "g.json"
    g.write_text(
        json.dumps(
            {"train_skills": SK, "eval_skills": SK, "matrix": [[0, 1, 0], [0, 0, 0], [0, -0.4, 0]]}
        )
    )
    pol = build_policy("static_skillit", {"graph": str(g), "eta": 0.2})
    A = np.array([[1, 0.5, 0], [0, 1, 0], [0, -0.4, 1]])
    want = np.exp(0.2 * A.sum(1)) / np.exp(0.2 * A.sum(1)).sum()
    assert np.allclose(pol.init(ctx()).probs, want)
    assert np.allclose(pol.update(obs(0, {"a": 9, "b": 9, "c": 9})).probs, want)
    assert pol.signals() == frozenset()  # fixed: no evaluation needed


def test_floor_and_ema():
    floor = build_policy("floor", {"policy": "target", "params": {"target": ["a"]}, "epsilon": 0.3})
    assert np.allclose(floor.init(ctx()).probs, [0.8, 0.1, 0.1])
    ema = build_policy(
        "ema", {"policy": "manual", "beta": 0.5, "params": {"schedule": [{"a": 1}, {"b": 1}]}}
    )
    assert np.allclose(ema.init(ctx()).probs, [1, 0, 0])
    assert np.allclose(ema.update(obs(0)).probs, [0.5, 0.5, 0])
    assert np.allclose(ema.update(obs(1)).probs, [0.25, 0.75, 0])
    with pytest.raises(PolicyError, match="set policy"):
        build_policy("floor")


def test_stratified_target_and_prerequisites(tmp_path):
    g = tmp_path / "g.json"
    g.write_text(
        json.dumps(
            {"train_skills": SK, "eval_skills": SK, "matrix": [[1, 0, 0], [0, 1, 0.5], [0, 0, 1]]}
        )
    )
    pol = build_policy("stratified", {"target": ["c"], "graph": str(g)})
    assert np.allclose(pol.init(ctx()).probs, [0, 0.5, 0.5])
    assert np.allclose(build_policy("target", {"target": ["b"]}).init(ctx()).probs, [0, 1, 0])


def test_curriculum_pacing_pool_sizes():
    from skillit_policies.curriculum import pool_size

    # linear: rows_per_round * r, capped at n
    assert [pool_size("linear", r, 1000, 300, 6, 0.8, 0.2) for r in (1, 2, 4)] == [300, 600, 1000]
    # log: n*b + (1-b)*n*(1 + 0.1*log(r/(a*T) + e^-10)), n=1000, a=0.8, T=5, b=0.2
    want = int(200 + 800 * (1 + 0.1 * math.log(1 / 4 + math.exp(-10))))
    assert pool_size("log", 1, 1000, 300, 5, 0.8, 0.2) == want == 889
    assert pool_size("log", 5, 1000, 300, 5, 0.8, 0.2) == 1000


def test_curriculum_pool_is_the_easiest_rows():
    diff = {"a": [0.1, 0.2, 0.9], "b": [0.3, 0.4, 0.5], "c": [0.05, 0.8, 1.0]}
    c = ctx(difficulty=diff, rounds=3, steps_per_round=1, batch_size=3)
    cur = build_policy("curriculum")
    m = cur.init(c)  # pool of 3: 0.05 (c), 0.1, 0.2 (a)
    assert m.row_filter == ("max", 0.2) and np.allclose(m.probs, [2 / 3, 0, 1 / 3])
    m = cur.update(obs(0))  # pool of 6: adds 0.3, 0.4, 0.5 (b)
    assert m.row_filter == ("max", 0.5) and np.allclose(m.probs, [2 / 6, 3 / 6, 1 / 6])
    anti = build_policy("anticurriculum").init(c)  # hardest 3: 1.0, 0.9, 0.8
    assert anti.row_filter == ("min", 0.8) and np.allclose(anti.probs, [1 / 3, 0, 2 / 3])


def test_skillit_sparse_graph_gives_the_dense_mixture(tmp_path):
    # 60 skills, a few edges each: stored as coordinate lists, the mixture must not change
    rng = np.random.default_rng(0)
    k = 60
    names = tuple(f"s{i}" for i in range(k))
    A = np.eye(k) + (rng.random((k, k)) < 0.03) * rng.uniform(-1, 1, (k, k))
    g = tmp_path / "g.json"
    g.write_text(json.dumps({"train_skills": names, "eval_skills": names, "matrix": A.tolist()}))
    pol = build_policy("skillit", {"graph": str(g), "eta": 0.3, "window": 1})
    c = ctx(train_skills=names, eval_skills=names, natural_proportions=None)
    p0 = pol.init(c).probs
    assert type(pol.A).__name__ == "SparseGraph"
    assert np.allclose(p0, np.exp(0.3 * A.sum(1)) / np.exp(0.3 * A.sum(1)).sum())
    L = rng.uniform(0.5, 3.0, k)
    ev = dict(zip(names, L.tolist()))
    p = pol.update(Observation(0, 0, {}, {}, ev, {}, {}, [{"step": 0, "loss": ev}])).probs
    want = np.exp(0.3 * (A @ L))
    assert np.allclose(p, want / want.sum(), rtol=1e-12)
