"""Before round 0, on the driver: everything a policy declares it needs to choose its first
mixture, computed once into a frozen ``PolicyContext`` that the coordinator is built with.

- ``initial_loss``: the initial model's per-skill eval loss. The model is built exactly as the
  workers build it (same seed, same config, same thread count), so the numbers are theirs.
- ``difficulty``: each train row's loss under the initial model, by Ray Data batch inference
  over the token cache; the per-row scores go to the workers (they filter rows by them).
- ``graph``: the skills graph, learned by ``graph_learning`` with the ``graph`` config section
  (saved as ``graph.json`` in the run directory; a resumed run reuses that file).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from skillit_ray.config import Config
from skillit_ray.data.prepare import PreparedData
from skillit_ray.mixture import PolicyContext

GRAPH_FILE = "graph.json"


@dataclass(frozen=True)
class RunInputs:
    """What training starts from: the complete policy context and, when the policy filters
    rows by difficulty, every train row's score (per skill, in the cache's row order)."""

    ctx: PolicyContext
    difficulty: dict | None = None


def initial_eval_loss(cfg: Config, data: PreparedData) -> dict[str, float]:
    """Per-skill eval loss of the model training starts from."""
    return initial_eval(cfg, data)[0]


def initial_eval(cfg: Config, data: PreparedData) -> tuple[dict, dict]:
    """Per-skill eval loss and accuracy of the model training starts from (step 0)."""
    import torch

    from skillit_ray.model import build_model
    from skillit_ray.train.evaluate import evaluate

    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.train.cpus_per_worker)  # the workers' thread count: same sums
    try:
        torch.manual_seed(cfg.train.seed)
        model = build_model(cfg.model, data.vocab_size, data.max_len)
        store = data.local_store("eval")
        loss, acc = evaluate(
            model, store, cfg.train.eval_batch_size, torch.device("cpu"), data.with_accuracy
        )
    finally:
        torch.set_num_threads(threads)
    return loss, acc


def _difficulty(cfg: Config, data: PreparedData):
    from skillit_ray.train.difficulty import score, summarize

    scored = score(
        data.cache(),
        data.train_skills,
        cfg.model,
        data.vocab_size,
        data.max_len,
        cfg.train.seed,
        cfg.train.cpus_per_worker,
    )
    return scored, summarize(scored)


def _graph(cfg: Config, data: PreparedData, out: str, resume: bool, echo: bool):
    """The graph this run learned before it stopped (a resume), or a newly learned one."""
    from skillit_ray.graph import SkillsGraph
    from skillit_ray.graph_learning import learn

    path = os.path.join(out, GRAPH_FILE)
    if resume and os.path.exists(path):
        return SkillsGraph.load(path)
    graph = learn(cfg, cfg.graph, echo, data=data)
    graph.save(path)
    return graph


def prepare_inputs(
    cfg: Config, data: PreparedData, needs: frozenset[str], out: str, resume: bool, echo: bool
) -> RunInputs:
    """Compute what ``needs`` names (and nothing else); Ray is running (``cluster``)."""
    data.cache(echo)  # made on first use, reused while its fingerprint matches
    initial_loss = difficulty = graph = rows = None
    if "initial_loss" in needs:
        initial_loss = initial_eval_loss(cfg, data)
    if "difficulty" in needs:
        rows, difficulty = _difficulty(cfg, data)
    if "graph" in needs:
        graph = _graph(cfg, data, out, resume, echo)
    ctx = policy_context(cfg, data, initial_loss, difficulty, graph)
    return RunInputs(ctx, rows)


def policy_context(cfg: Config, data: PreparedData, initial_loss, difficulty, graph):
    """The frozen PolicyContext of a run from its config, its data and the pre-round-0
    signals (the real ones here, stand-ins in ``preflight``)."""
    t = cfg.train
    return PolicyContext(
        data.train_skills,
        data.eval_skills,
        data.natural,
        t.rounds,
        t.steps_per_round,
        t.batch_size,
        t.seed,
        data.train.rows_per_skill,
        initial_loss,
        difficulty,
        graph,
    )
