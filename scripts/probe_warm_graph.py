"""Plain-PyTorch probe of the planted prerequisite (tests/planted.py): the approximate graph
learned cold and after W warm-up steps on the natural mixture, with the optimizer state reused
or fresh. No Ray: the same model builder, optimizer, plan and train step as the ablation runs,
with in-memory rows. Prints one matrix per setting (rows = trained skill, columns = eval skill,
entries = eval loss decrease in nats) and the planted edge's margin over the other entries.

    nice -n 5 python scripts/probe_warm_graph.py --seeds 0 1 --warmup 0 100 200 400
"""

from __future__ import annotations

import argparse
import copy
import os
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from skillit_ray.config import ModelConfig  # noqa: E402
from skillit_ray.model import build_model  # noqa: E402
from skillit_ray.train.local import train_round  # noqa: E402
from skillit_ray.train.loss import row_stats  # noqa: E402
from skillit_ray.train.optim import build_optimizer, build_scheduler  # noqa: E402
from tests import planted  # noqa: E402


class Rows:
    """take(skill, k): the next k rows of a skill, in a seeded order, cycling."""

    def __init__(self, data: dict, seed: int):
        self.data, self.rng, self.pos = data, np.random.default_rng(seed), {}
        self.order = {s: self.rng.permutation(len(v[0])) for s, v in data.items()}

    def take(self, skill, k):
        ids, mask = self.data[skill]
        p = self.pos.get(skill, 0)
        idx = self.order[skill][np.arange(p, p + k) % len(ids)]
        self.pos[skill] = p + k
        return ids[idx], mask[idx]


@torch.no_grad()
def losses(model, val) -> np.ndarray:
    model.eval()
    out = []
    for s in planted.SKILLS:
        ids, mask = (torch.from_numpy(a) for a in val[s])
        out.append(row_stats(model(input_ids=ids).logits, ids, mask)[0].mean().item())
    model.train()
    return np.array(out)


def graph(model, opt_state, train, val, a) -> np.ndarray:
    """delta[i, j]: eval loss of skill j before minus after H steps on skill i alone."""
    before = losses(model, val)
    delta = np.zeros((3, 3))
    for i, _ in enumerate(planted.SKILLS):
        m = copy.deepcopy(model)
        opt = build_optimizer(m, a.graph_lr, 0.01)
        if opt_state is not None:
            opt.load_state_dict(opt_state)
            for g in opt.param_groups:
                g["lr"] = a.graph_lr
        probs = np.eye(3)[i]
        train_round(m, opt, None, Rows(train, 7), planted.SKILLS, probs, a.H, a.batch, 0, 0, 1.0)
        delta[i] = before - losses(m, val)
    return delta, before


def main(argv=None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--warmup", type=int, nargs="+", default=[0, 100, 200, 400])
    p.add_argument("--H", type=int, default=30)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--graph-lr", type=float, default=None)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--train-rows", type=int, default=600)
    p.add_argument("--route", type=int, default=planted.ROUTE)
    a = p.parse_args(argv)
    a.graph_lr = a.graph_lr or a.lr
    torch.set_num_threads(1)
    train = {s: planted.rows(s, a.train_rows, 1, a.route) for s in planted.SKILLS}
    val = {s: planted.rows(s, 64, 2, a.route) for s in planted.SKILLS}
    vocab = planted.FIRST + planted.N
    natural = np.full(3, 1 / 3)
    for seed in a.seeds:
        torch.manual_seed(seed)
        model = build_model(ModelConfig(preset="gpt2-tiny"), vocab, planted.LENGTH)
        model.train()
        opt = build_optimizer(model, a.lr, 0.01)
        sched = build_scheduler(opt, 10, 10_000, "constant")
        done = 0
        for w in sorted(a.warmup):
            if w > done:
                rows = Rows(train, 1000 + seed)
                train_round(model, opt, sched, rows, planted.SKILLS, natural, w - done, a.batch,
                            seed, 1000 + done, 1.0)  # fmt: skip
                done = w
            for reuse in (True, False) if w else (False,):
                d, before = graph(model, opt.state_dict() if reuse else None, train, val, a)
                margin = d[0, 1] - d[2, 1]
                print(
                    f"seed {seed} W={w} optimizer {'reused' if reuse else 'fresh'}: "
                    f"loss before {np.round(before, 3).tolist()}\n"
                    + "\n".join(
                        f"  {s:<7} " + " ".join(f"{x:+.3f}" for x in d[k])
                        for k, s in enumerate(planted.SKILLS)
                    )  # fmt: skip
                    + f"\n  edge lookup->routed {d[0, 1]:+.3f}, other->routed {d[2, 1]:+.3f}, "
                    f"margin {margin:+.3f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
