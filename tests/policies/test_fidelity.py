"""Each built-in policy against its source's update, transcribed here independently with numpy.

The transcriptions follow the released code line by line (named in each test), keep its
loops and its state, and import nothing from ``skillit_policies``; the policies run through
``build_policy``. Inputs are fixed and span several rounds; mixtures must agree to 1e-9.
"""

import math

import numpy as np
import pytest

from skillit_ray.graph import SkillsGraph
from skillit_ray.mixture import Observation
from skillit_ray.policy import build_policy
from tests.policies import context as ctx

TOL = 1e-9


def observation(r, skills, eval_loss=None, train_loss=None, checkpoints=None, step=0, samples=None):
    cps = checkpoints or ([{"step": step, "loss": eval_loss, "acc": {}}] if eval_loss else [])
    return Observation(
        r,
        step,
        {},
        samples if samples is not None else {s: 5 for s in skills},
        cps[-1]["loss"] if cps else {},
        {},
        train_loss or {},
        cps,
    )


def write_graph(tmp_path, train, eval_, matrix, name="g.json"):
    path = tmp_path / name
    SkillsGraph(tuple(train), tuple(eval_), np.asarray(matrix, float)).save(str(path))
    return str(path)


# ---- SKILL-IT: HazyResearch/skill-it trainer/mw_trainer.py, MWTrainer.train ----------------


def mw_trainer(graph, eta, window, rounds, target_idxs=None):
    """MWTrainer.train's mixture after each round (lines 34-199, without the unused flags)."""
    graph = np.array(graph, dtype=float)
    n, m = graph.shape
    for i in range(n):
        for j in range(m):
            if i != j and graph[i, j] == 1:
                graph[i, j] = 0.5
    if target_idxs is not None:
        graph = graph[:, target_idxs]
    weights_init = np.ones(graph.shape[0])
    loss_init = np.ones(graph.shape[1])
    weights = np.multiply(weights_init, np.exp(eta * graph.dot(loss_init)))
    out = [weights / sum(weights)]
    all_losses = []
    for checkpoints in rounds:
        for loss in checkpoints:
            loss = np.asarray(loss)
            all_losses.append(loss[target_idxs] if target_idxs is not None else loss)
        idx = len(all_losses)
        recent = np.array(all_losses[max(0, idx - window) : idx])
        loss_arr = recent.mean(axis=0) if target_idxs is not None else recent.sum(axis=0)
        weights = np.multiply(weights_init, np.exp(eta * graph.dot(loss_arr)))
        out.append(weights / sum(weights))
    return out


def drive(pol, c, rounds, eval_names):
    got = [pol.init(c).probs]
    for r, cps in enumerate(rounds):
        checkpoints = [
            {"step": i, "loss": dict(zip(eval_names, map(float, loss))), "acc": {}}
            for i, loss in enumerate(cps)
        ]
        got.append(pol.update(observation(r, c.train_skills, checkpoints=checkpoints)).probs)
    return got


LEGO = [f"lego/depth{i}" for i in range(1, 6)]
LEGO_GRAPH = [[1, 0, 0, 0, 0], [1, 1, 1, 1, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1]]


def test_skillit_pretraining_matches_mw_trainer(tmp_path):
    rng = np.random.default_rng(0)
    rounds = [rng.uniform(0.05, 0.7, (3, 5)).tolist() for _ in range(5)]
    pol = build_policy("skillit", {"graph": write_graph(tmp_path, LEGO, LEGO, LEGO_GRAPH)})
    got = drive(pol, ctx(LEGO), rounds, LEGO)
    want = mw_trainer(LEGO_GRAPH, 0.5, 3, rounds)
    assert np.allclose(got, want, rtol=0, atol=TOL)


def test_skillit_finetuning_matches_mw_trainer(tmp_path):
    sk = LEGO[:3]
    matrix = [[1, 0, 0], [1, 1, 1], [0, 0, 1]]
    rng = np.random.default_rng(1)
    rounds = [rng.uniform(0.05, 0.7, (2, 3)).tolist() for _ in range(6)]
    pol = build_policy(
        "skillit", {"graph": write_graph(tmp_path, sk, sk, matrix), "target": [sk[2]]}
    )
    got = drive(pol, ctx(sk), rounds, sk)
    assert np.allclose(got, mw_trainer(matrix, 0.5, 3, rounds, [2]), rtol=0, atol=TOL)


def test_skillit_out_of_domain_matches_mw_trainer(tmp_path):
    train, eval_ = ["t1", "t2", "t3", "t4"], ["e1", "e2"]
    matrix = [[0.3, -0.2], [0.0, 0.7], [1.2, 0.1], [-0.5, 0.4]]  # real-valued, as ni_test_graph
    rng = np.random.default_rng(2)
    rounds = [rng.uniform(1.0, 3.0, (2, 2)).tolist() for _ in range(4)]
    pol = build_policy(
        "skillit", {"graph": write_graph(tmp_path, train, eval_, matrix), "eta": 0.2}
    )
    got = drive(pol, ctx(train, eval_), rounds, eval_)
    assert np.allclose(got, mw_trainer(matrix, 0.2, 3, rounds), rtol=0, atol=TOL)


def test_static_skillit_matches_get_weights_from_graph(tmp_path):
    """HazyResearch/skill-it dataset/utils.py, get_weights_from_graph (graph_path branch)."""
    matrix = [[0.0, 1.0, 0.3], [0.2, 0.0, -0.4], [1.0, 0.0, 0.0]]  # zero diagonal, as top_23
    graph = np.array(matrix, dtype=float)
    k = len(graph)
    for i in range(k):
        for j in range(len(graph[0])):
            if i != j and graph[i, j] == 1:
                graph[i, j] = 0.5
            if i == j:
                graph[i, j] = 1
    weights = np.multiply(np.ones(k), np.exp(0.2 * graph.dot(np.ones(k))))
    weights /= sum(weights)
    sk = ["a", "b", "c"]
    pol = build_policy("static_skillit", {"graph": write_graph(tmp_path, sk, sk, matrix)})
    assert np.allclose(pol.init(ctx(sk)).probs, weights, rtol=0, atol=TOL)
    later = pol.update(observation(0, sk, eval_loss={"a": 9.0, "b": 1.0, "c": 2.0}))
    assert np.allclose(later.probs, weights, rtol=0, atol=TOL)


# ---- Aioli: HazyResearch/aioli trainer/aioli_trainer.py, AioliTrainer -----------------------


def aioli_reference(k, rounds, opts):
    """AioliTrainer.train's dynamic loop with learn_params_subroutine, replayed on the recorded
    (probed skill, eval loss after the round) of each round; returns each exploit mixture."""
    lp_rounds, ohf, eta, ema = opts["lp_rounds"], opts["one_hot_factor"], opts["eta"], opts["ema"]
    probes, cycle = lp_rounds * k, lp_rounds * k + opts["exploit_rounds"]
    weights_init = np.ones(k)
    weights, ema_graph, out = None, None, {}
    loss = np.asarray(opts["initial"], dtype=float)
    for i in range(len(rounds) // cycle + 1):
        block = rounds[i * cycle : (i + 1) * cycle]
        if len(block) < probes:
            break
        # learn_params_subroutine(loss_0, ...)
        previous_loss = loss.copy()
        new_graph = np.zeros((k, k))
        for onehot_idx, new_loss in block[:probes]:
            new_loss = np.asarray(new_loss)
            new_graph[:, onehot_idx] += previous_loss - new_loss
            previous_loss = new_loss
        new_graph /= lp_rounds
        if ohf != 1 and not opts["diagonal"]:
            weight_matrix = np.zeros((k, k))
            for j in range(k):
                weight_row = np.ones(k) * (1 - ohf) / (k - 1)
                weight_row[j] = ohf
                weight_matrix[j] = weight_row
            A = np.zeros((k, k))
            for j, row in enumerate(new_graph):
                A[j] = np.linalg.solve(weight_matrix, row)
            new_graph = A
        elif ohf != 1 and opts["diagonal"]:
            A = np.zeros((k, k))
            for j in range(k):
                A[j, j] = new_graph[j, j] / ohf
            new_graph = A
        graph = new_graph
        if opts["normalize"]:
            min_entry = graph.min()
            if min_entry < 0:
                graph -= min_entry
            graph /= graph.sum()
        if ema is not None:
            ema_graph = graph if i == 0 else (1 - ema) * graph + ema * ema_graph
            weights = np.multiply(weights_init, np.exp(eta * ema_graph.sum(axis=0)))
        elif i == 0:
            weights = np.multiply(weights_init, np.exp(eta * graph.sum(axis=0)))
        else:
            weights = np.multiply(weights, np.exp(eta * graph.sum(axis=0)))
        for r in range(i * cycle + probes, min((i + 1) * cycle, len(rounds))):
            out[r] = weights / sum(weights)
        loss = np.asarray(block[-1][1])
    return out


AIOLI_CASES = [
    {"lp_rounds": 2, "one_hot_factor": 0.625, "eta": 0.2, "ema": 0.1, "normalize": True,
     "diagonal": False, "exploit_rounds": 2},
    {"lp_rounds": 1, "one_hot_factor": 0.75, "eta": 1.0, "ema": None, "normalize": True,
     "diagonal": False, "exploit_rounds": 1},
    {"lp_rounds": 2, "one_hot_factor": 0.5, "eta": 0.5, "ema": 0.5, "normalize": False,
     "diagonal": True, "exploit_rounds": 3},
    {"lp_rounds": 1, "one_hot_factor": 1.0, "eta": 0.3, "ema": None, "normalize": False,
     "diagonal": False, "exploit_rounds": 2},
]  # fmt: skip


@pytest.mark.parametrize("opts", AIOLI_CASES)
def test_aioli_matches_aioli_trainer(opts):
    sk = ("a", "b", "c")
    k = len(sk)
    A_true = np.array([[0.05, 0.02, 0.0], [0.03, 0.04, -0.01], [0.0, 0.01, 0.06]])  # [eval, train]
    rng = np.random.default_rng(3)
    initial = np.array([2.0, 2.2, 1.8])
    pol = build_policy("aioli", opts)
    p = pol.init(ctx(sk, initial_loss=dict(zip(sk, initial.tolist())))).probs
    loss, record, mixtures = initial.copy(), [], []
    cycle = opts["lp_rounds"] * k + opts["exploit_rounds"]
    for r in range(3 * cycle + 1):
        loss = loss - A_true @ p + rng.uniform(-0.005, 0.005, k)  # a noisy linear mixing law
        mixtures.append(p)
        record.append((int(np.argmax(p)), loss.tolist()))
        p = pol.update(observation(r, sk, eval_loss=dict(zip(sk, loss.tolist())))).probs
    ref = aioli_reference(k, record, {**opts, "initial": initial})
    assert len(ref) >= 2 * opts["exploit_rounds"]
    for r, want in ref.items():
        assert np.allclose(mixtures[r], want, rtol=0, atol=TOL), r
    probes = opts["lp_rounds"] * k
    ohf = opts["one_hot_factor"]
    for c in range(3):  # every Aioli round re-runs LearnParams: lp_rounds sweeps of all skills
        order = [record[c * cycle + q][0] for q in range(probes)]
        for s in range(opts["lp_rounds"]):
            assert sorted(order[s * k : (s + 1) * k]) == list(range(k))
        for q, i in enumerate(order):
            smoothed = np.full(k, (1 - ohf) / (k - 1))
            smoothed[i] = ohf
            assert np.allclose(mixtures[c * cycle + q], smoothed, rtol=0, atol=TOL)


# ---- ODM: alon-albalak/online-data-mixing megatron/data/data_sampling_utils.py --------------


class SmoothedMeanWeightUpdater:
    """The released class, group_update only (the mixed-minibatch path of training.py)."""

    def __init__(self, dataset_names, weights, smoothing_factor=0.9):
        self.dataset_names = dataset_names
        self.dataset_map = {name: i for i, name in enumerate(dataset_names)}
        self.num_datasets = len(dataset_names)
        self.weights = list(weights)
        self._estimated_reward = {name: 0.0 for name in dataset_names}
        total_weights = np.sum(weights)
        self._probabilities = {n: w / total_weights for n, w in zip(dataset_names, weights)}
        self.eps = 1 / self.num_datasets
        self.prev_eps = None
        self.smoothing_factor = smoothing_factor

    def group_update(self, dataset_names, rewards, iteration):
        self.prev_eps = self.eps
        self.eps = min(
            1 / self.num_datasets,
            math.sqrt(math.log(self.num_datasets) / (self.num_datasets * iteration)),
        )
        for name, reward in zip(dataset_names, rewards):
            self._estimated_reward[name] = self.smoothing_factor * self._estimated_reward[name] + (
                1 - self.smoothing_factor
            ) * math.exp(reward)
        total_estimated_rewards = sum((r * self.prev_eps) for r in self._estimated_reward.values())
        scaling_factor = (1 - self.num_datasets * self.eps) / total_estimated_rewards
        for name in self.dataset_names:
            self.weights[self.dataset_map[name]] = (
                self._estimated_reward[name] * self.prev_eps * scaling_factor + self.eps
            )
        total_weights = sum(self.weights)
        for name in self.dataset_names:
            self._probabilities[name] = self.weights[self.dataset_map[name]] / total_weights
        return list(self._probabilities.values())


def odm_rounds(seed, k, n):
    """Per round: per-skill mean train loss and which skills were drawn."""
    rng = np.random.default_rng(seed)
    return [(rng.uniform(0.3, 3.0, k), rng.random(k) > 0.2) for _ in range(n)]


def test_odm_matches_released_group_update_per_step():
    sk = ("a", "b", "c", "d")
    steps, rounds = 7, odm_rounds(4, 4, 6)
    ref = SmoothedMeanWeightUpdater(list(sk), [1.0] * 4, 0.9)
    pol = build_policy("odm")
    c = ctx(sk, steps_per_round=steps)
    assert np.allclose(pol.init(c).probs, 0.25)
    iteration = 0
    for r, (loss, drawn) in enumerate(rounds):
        names = [s for s, d in zip(sk, drawn) if d]
        for _ in range(steps):  # training.py: one group_update per step, after iteration += 1
            iteration += 1
            want = ref.group_update(names, [loss[sk.index(s)] for s in names], iteration)
        got = pol.update(
            observation(
                r,
                sk,
                train_loss={s: float(loss[sk.index(s)]) for s in names},
                samples={s: int(d) * 3 for s, d in zip(sk, drawn)},
                step=iteration,
            )
        ).probs
        assert np.allclose(got, want, rtol=0, atol=TOL)


def test_odm_paper_formula_per_step_without_importance_weights():
    """The paper's EXP3 step (arXiv 2312.02406, Alg. 1), every drawn skill observed: no 1/p_i."""
    sk, k, steps, alpha = ("a", "b", "c"), 3, 5, 0.8
    rounds = odm_rounds(5, 3, 6)
    R, eps, t = np.zeros(k), 1 / k, 0
    pol = build_policy("odm", {"updater": "paper", "alpha": alpha})
    pol.init(ctx(sk, steps_per_round=steps))
    for r, (loss, drawn) in enumerate(rounds):
        for _ in range(steps):
            t += 1
            prev_eps, eps = eps, min(1 / k, math.sqrt(math.log(k) / (k * t)))
            R = np.where(drawn, alpha * R + (1 - alpha) * loss, R)
            w = np.exp(prev_eps * R)
            want = (1 - k * eps) * w / w.sum() + eps
        obs = observation(
            r,
            sk,
            train_loss={s: float(v) for s, v, d in zip(sk, loss, drawn) if d},
            samples={s: int(d) for s, d in zip(sk, drawn)},
            step=t,
        )
        assert np.allclose(pol.update(obs).probs, want, rtol=0, atol=TOL)


def test_odm_follows_the_loss_and_does_not_inflate_rare_skills():
    """Issue 15's case: losses 3 / 1.5 / 0.3 for 40 rounds of 100 steps. Dividing by p_i and
    smoothing once a round kept the mixture at [.346, .333, .322]; ODM's own updater puts the
    mass on the high-loss skill. Equal losses give equal rewards whatever the probabilities."""
    sk = ("a", "b", "c")
    pol = build_policy("odm")
    pol.init(ctx(sk, steps_per_round=100))
    loss = {"a": 3.0, "b": 1.5, "c": 0.3}
    for r in range(40):
        p = pol.update(observation(r, sk, train_loss=loss, step=100 * (r + 1))).probs
    assert p[0] > 0.7 and p[0] > p[1] > p[2]
    even = build_policy("odm", {"clock": "rounds"})
    even.init(ctx(sk))
    skewed = {"a": 90, "b": 9, "c": 1}
    p = even.update(observation(0, sk, train_loss={s: 1.0 for s in sk}, samples=skewed)).probs
    assert np.allclose(p, 1 / 3, rtol=0, atol=TOL)  # same loss -> same reward, p stays uniform


# ---- DoReMi: sangmichaelxie/doremi doremi/trainer.py, update_domain_weights ----------------


def test_doremi_matches_update_domain_weights_per_step():
    sk = ("a", "b", "c")
    k, steps, eta, eps = 3, 4, 0.5, 1e-3
    ref = {"a": 1.0, "b": 1.2, "c": 0.4}
    rng = np.random.default_rng(6)
    # skill c is absent in round 0 (its score is then DoReMi's initial log|V|), b in round 2
    present = [[1, 1, 0], [1, 1, 1], [1, 0, 1], [1, 1, 1], [1, 1, 1]]
    train_domain_weights = np.ones(k) / k
    perdomain_scores = np.ones(k) * np.log(50257)
    pol = build_policy("doremi", {"reference": ref, "eta": eta})
    pol.init(ctx(sk, steps_per_round=steps))
    t = 0
    for r, mask in enumerate(present):
        loss = rng.uniform(0.2, 2.0, k)
        for _ in range(steps):
            t += 1
            scores = []
            for d in range(k):
                if mask[d]:  # every token of the skill carries the same excess: clip == mean clip
                    tokens = np.full(5, loss[d] - ref[sk[d]])
                    scores.append(np.clip(tokens, 0, None).mean())
                else:
                    scores.append(perdomain_scores[d])
            perdomain_scores = np.array(scores)
            log_new = np.log(train_domain_weights) + eta * perdomain_scores
            log_new = log_new - np.log(np.sum(np.exp(log_new)))
            train_domain_weights = (1 - eps) * np.exp(log_new) + eps / k
        obs = observation(
            r,
            sk,
            train_loss={s: float(v) for s, v, m in zip(sk, loss, mask) if m},
            samples={s: m for s, m in zip(sk, mask)},
            step=t,
        )
        assert np.allclose(pol.update(obs).probs, train_domain_weights, rtol=0, atol=TOL)


# ---- skill curriculum: HazyResearch/skill-it trainer/group_curriculum_trainer.py ------------


def group_curriculum_rows(order, pool, total_steps, batch_size, mixing_frac):
    """GroupCurriculumTrainer.train's schedule: per step, the expected rows of each skill."""
    k = len(pool)
    n_skills = len(order)
    total_unscaled_data = 0
    for i, s in enumerate(order):
        total_unscaled_data += pool[s] * (2 + (n_skills - (i + 1)) * mixing_frac)
    scaling_factor = total_steps * batch_size / total_unscaled_data
    per_step, counter = [], 0
    for i in range(n_skills + 1):
        if i < n_skills:
            idxs = np.zeros(k)
            idxs[order[i]] = int(scaling_factor * pool[order[i]])
            if i > 0 and mixing_frac != 0.0:
                for j in range(i):
                    idxs[order[j]] += int(scaling_factor * mixing_frac * pool[order[j]])
            rows_left = int(idxs.sum())
            while rows_left > 0 and counter < total_steps:  # DataLoader, drop_last=False
                batch = min(batch_size, rows_left)
                per_step.append(idxs / idxs.sum() * batch)
                rows_left -= batch
                counter += 1
        else:  # "Final training: training over the entire dataset"
            n_remaining = total_steps - counter
            for _ in range(n_remaining):
                per_step.append(np.asarray(pool) / np.sum(pool) * batch_size)
    return np.array(per_step)


@pytest.mark.parametrize("mixing_frac", [0.0, 0.4])
@pytest.mark.parametrize("name", ["skill_curriculum", "skill_anticurriculum"])
def test_skill_curriculum_matches_group_curriculum_trainer(name, mixing_frac):
    sk = tuple(LEGO)
    natural = dict(zip(sk, [1 / 11, 1 / 11, 1 / 11, 3 / 11, 5 / 11]))
    initial = dict(zip(sk, [0.9, 0.2, 0.5, 0.7, 0.3]))
    c = ctx(sk, natural_proportions=natural, initial_loss=initial, rounds=8, steps_per_round=25,
            batch_size=32)  # fmt: skip
    pol = build_policy(name, {"mixing_frac": mixing_frac, "order_by": "eval"})
    got = [pol.init(c).probs] + [pol.update(observation(r, sk)).probs for r in range(7)]
    order = sorted(range(5), key=lambda i: initial[sk[i]], reverse=name.endswith("anticurriculum"))
    rows = group_curriculum_rows(order, [natural[s] for s in sk], 200, 32, mixing_frac)
    want = [rows[r * 25 : (r + 1) * 25].sum(0) for r in range(8)]
    assert np.allclose(got, [w / w.sum() for w in want], rtol=0, atol=TOL)


def test_skill_curriculum_phases_follow_the_pool():
    """LEGO 1:1:1:3:5 with mixing_frac 0: depth 5's phase is 5/22 = 22.7% of the run."""
    sk = tuple(LEGO)
    natural = dict(zip(sk, [1, 1, 1, 3, 5]))
    diff = {s: [float(i)] * 4 for i, s in enumerate(sk)}  # depth 1 easiest
    c = ctx(sk, natural_proportions=natural, difficulty=diff, rounds=44, steps_per_round=25,
            batch_size=32)  # fmt: skip
    pol = build_policy("skill_curriculum")
    mixes = np.array(
        [pol.init(c).probs] + [pol.update(observation(r, sk)).probs for r in range(43)]
    )
    only_depth5 = np.isclose(mixes[:, 4], 1.0)
    assert abs(only_depth5.sum() / 44 - 5 / 22) <= 1 / 44
    assert np.isclose(mixes[:, 0], 1.0).sum() == pytest.approx(44 / 22, abs=1)


# ---- curriculum: HazyResearch/skill-it trainer/curriculum_trainer.py, _get_pacing -----------


def _get_pacing(pacing_fn, pacing_a, pacing_b, update_size, n_updates, current_update):
    if pacing_fn == "linear":
        pool_size = update_size * current_update
    elif pacing_fn == "log":
        n = n_updates * update_size
        pool_size = int(
            n * pacing_b
            + (1 - pacing_b)
            * n
            * (1 + 0.1 * (np.log(current_update / (pacing_a * n_updates) + np.e ** (-10))))
        )
        if pool_size > n:
            pool_size = n
    return pool_size


@pytest.mark.parametrize("pacing", ["linear", "log"])
@pytest.mark.parametrize("name", ["curriculum", "anticurriculum"])
def test_curriculum_matches_curriculum_trainer(name, pacing):
    sk = ("a", "b", "c", "d")
    rng = np.random.default_rng(7)
    diff = {s: np.sort(rng.gamma(2.0, 0.3 * (i + 1), 30)).tolist() for i, s in enumerate(sk)}
    # the source's pool is n_updates * update_size rows: 4 rounds of 5 steps x 6 rows = 120 rows
    c = ctx(sk, difficulty=diff, rounds=4, steps_per_round=5, batch_size=6)
    pol = build_policy(name, {"pacing": pacing})
    got = [pol.init(c)] + [pol.update(observation(r, sk)) for r in range(3)]
    loss_list = np.concatenate([diff[s] for s in sk])
    skill_of = np.repeat(np.arange(4), 30)
    ordered = loss_list.argsort(kind="stable")
    if name == "anticurriculum":
        ordered = np.flip(ordered)
    for r, mix in enumerate(got):
        pool = ordered[: _get_pacing(pacing, 0.8, 0.2, 30, 4, r + 1)]
        counts = np.bincount(skill_of[pool], minlength=4)
        assert np.allclose(mix.probs, counts / counts.sum(), rtol=0, atol=TOL)
        edge = loss_list[pool].max() if name == "curriculum" else loss_list[pool].min()
        assert mix.row_filter == ("max" if name == "curriculum" else "min", float(edge))


# ---- fixed mixtures: HazyResearch/skill-it trainer/static_trainer.py (set_proportions) ------


def test_static_mixtures():
    sk = ("a", "b", "c")
    c = ctx(sk, natural_proportions={"a": 1.0, "b": 3.0, "c": 7.0})
    assert np.allclose(build_policy("random").init(c).probs, np.array([1, 3, 7]) / 11, atol=TOL)
    strat = build_policy("stratified", {"skills": ["a", "c"]}).init(c).probs
    assert np.allclose(strat, [0.5, 0, 0.5], atol=TOL)
    assert np.allclose(build_policy("target", {"target": ["b"]}).init(c).probs, [0, 1, 0])
    manual = build_policy("manual", {"schedule": [{"a": 1, "b": 1}, {"c": 2, "a": 2}]})
    assert np.allclose(manual.init(c).probs, [0.5, 0.5, 0], atol=TOL)
    assert np.allclose(manual.update(observation(0, sk)).probs, [0.5, 0, 0.5], atol=TOL)
    assert np.allclose(manual.update(observation(1, sk)).probs, [0.5, 0, 0.5], atol=TOL)
