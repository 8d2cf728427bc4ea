"""The experiments: per experiment a recipe, its arms (label, policy, params) and a quick mode.

Arm parameters may name ``{graph}`` (the graph ``graph learn`` produced for the experiment) or
``{run:<arm>}`` (the run directory of another arm with the same seed, e.g. DoReMi's reference).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

GRAPHS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "graphs")


@dataclass(frozen=True)
class Arm:
    label: str
    policy: str
    params: dict = field(default_factory=dict)

    def refs(self) -> set[str]:
        """Labels of the arms whose runs this arm's parameters name (``{run:<arm>}``)."""
        return {
            v[5:-1] for v in self.params.values() if isinstance(v, str) and v.startswith("{run:")
        }


# Quick mode's data for the synthetic generators (rows per skill); see QUICK below.
QUICK_ROWS = (
    "data.generator_params.rows_per_skill=60",
    "data.generator_params.val_rows_per_skill=20",
)


@dataclass(frozen=True)
class Experiment:
    recipe: str
    arms: tuple[Arm, ...]
    doc: str
    learn_graph: bool = True
    sets: tuple[str, ...] = ()
    quick_data: tuple[str, ...] = QUICK_ROWS  # what --quick sets in data (with QUICK)


def _skillit(eta: float, graph: str = "{graph}", **extra) -> tuple[Arm, Arm]:
    online = {"graph": graph, "eta": eta, "window": 3, "window_unit": "checkpoints", **extra}
    static = {"graph": graph, "eta": eta, **extra}
    return Arm("static_skillit", "static_skillit", static), Arm("skillit", "skillit", online)


def _pretraining(eta: float, graph: str = "{graph}") -> tuple[Arm, ...]:
    return (
        Arm("random", "random"),  # the data's natural proportions
        Arm("stratified", "stratified"),
        Arm("curriculum", "curriculum"),
        Arm("anticurriculum", "anticurriculum"),
        Arm("skill_curriculum", "skill_curriculum"),
        Arm("skill_anticurriculum", "skill_anticurriculum"),
        *_skillit(eta, graph),
        Arm("odm", "odm"),
        Arm("aioli", "aioli"),
        Arm("doremi", "doremi", {"reference": "{run:random}"}),
    )


def _finetuning(target: str, eta: float, *others: Arm, graph: str = "{graph}") -> tuple[Arm, ...]:
    ft = {"setting": "finetune", "target": [target], "reduction": "mean"}
    return (
        Arm("target_only", "target", {"target": [target]}),
        Arm("stratified", "stratified"),
        _skillit(eta, graph, **ft)[1],
        *others,
    )


def _ood(eta: float) -> tuple[Arm, ...]:
    # No 'random' arm: the train skills have equal natural proportions, so it is 'stratified'.
    return (
        Arm("stratified", "stratified"),
        Arm("odm", "odm"),
        *_skillit(eta, setting="ood"),
        Arm("aioli", "aioli"),
    )


# The calibrated formats' graphs, chains over the skills (RESULTS.md, section Calibration): on
# LEGO the prerequisite tests measured depth 1 -> 2; on addition the chain is the format's
# structure and the tests support none of its edges. A graph learned from an untrained model is
# noise on these tasks (section "The calibrated LEGO graph, learned cold and warm").
LEGO_CHAIN = os.path.join(GRAPHS, "lego_chain.json")
ADDITION_CHAIN = os.path.join(GRAPHS, "addition_chain.json")

EXPERIMENTS = {
    "lego_scratchpad": Experiment(
        "lego_scratchpad.yaml",
        _pretraining(0.5, LEGO_CHAIN),
        "LEGO continual pre-training, calibrated scratchpad format: 5 skills (chain depth), "
        "natural proportions 1:1:1:3:5, SKILL-IT on the measured chain graph; 6 rounds of "
        "200 steps, so half budget (600 steps) falls on the staircase (calibration: stratified "
        "mean depth 2-5 accuracy 0.6 at 400 steps, 0.9 at 800).",
        learn_graph=False,
        sets=("train.steps_per_round=200",),
    ),
    "lego_scratchpad_ft": Experiment(
        "lego_scratchpad.yaml",
        _finetuning("lego/depth5", 0.5, graph=LEGO_CHAIN),
        "LEGO fine-tuning toward depth 5 with depths 1-5 as candidates, scratchpad format, "
        "6 x 400 steps (the calibration's prerequisite test: depth 5 alone stayed at chance "
        "and was learned with depth 1, one seed; here depth 5 alone is learned on some seeds).",
        learn_graph=False,
        sets=("data.eval_skills=[lego/depth5]",),
    ),
    "addition_reversed": Experiment(
        "addition_reversed.yaml",
        (
            *_pretraining(0.5, ADDITION_CHAIN),
            # The paper's no-graph ablation (identity graph: up-weights high-loss skills), since
            # the prerequisite tests find no carry edge that the chain graph would express.
            Arm("skillit_nograph", "skillit", {**_skillit(0.5)[1].params, "graph": None}),
        ),
        "Addition continual pre-training, calibrated reversed format (Lee et al. 2023): "
        "4 skills (number of carries, 0-3), natural proportions of uniform operand pairs.",
        learn_graph=False,
    ),
    "lego_pt": Experiment(
        "lego_pt.yaml",
        _pretraining(0.5),
        "LEGO continual pre-training: 5 skills (chain depth), natural proportions 1:1:1:3:5.",
    ),
    "addition_pt": Experiment(
        "addition_pt.yaml",
        _pretraining(0.1),
        "Addition continual pre-training: 3 skills (digit of the sum), natural 13:14:18.",
    ),
    "lego_ft": Experiment(
        "lego_pt.yaml",
        _finetuning("lego/depth3", 0.5),
        "LEGO fine-tuning toward depth 3 with depths 1-3 as candidates (paper section 4.1).",
        sets=(
            "data.train_skills=[lego/depth1, lego/depth2, lego/depth3]",
            "data.eval_skills=[lego/depth3]",
        ),
    ),
    "addition_ft": Experiment(
        "addition_pt.yaml",
        _finetuning("addition/digit1", 0.1),
        "Addition fine-tuning toward digit 1 (ones) with digits 1-2 as candidates.",
        sets=(
            "data.train_skills=[addition/digit1, addition/digit2]",
            "data.eval_skills=[addition/digit1]",
        ),
    ),
    "instruct_ft": Experiment(
        "instruct.yaml",
        _finetuning("instruct/es/sort", 0.8, Arm("odm", "odm"), Arm("aioli", "aioli")),
        "Composite skills, fine-tuning toward es/sort (the analogue of Spanish question "
        "generation) with the four skills {en, es} x {reverse, sort} as candidates.",
        sets=(
            "data.train_skills=[instruct/en/reverse, instruct/es/reverse, instruct/en/sort, "
            "instruct/es/sort]",
            "data.eval_skills=[instruct/es/sort]",
        ),
    ),
    "sources_pt": Experiment(
        "sources_pt.yaml",
        (
            Arm("random", "random"),  # natural: each source's share of the environment's bytes
            Arm("stratified", "stratified"),
            _skillit(0.5)[1],
        ),
        "Continual pre-training on text nobody here wrote: 6 sources of the Python environment "
        "(stdlib, packages, headers, licences, stubs, docs), per-source validation perplexity "
        "(the paper's RedPajama run, section 4.4, at CPU scale).",
        quick_data=(
            "data.max_length=32",
            "data.generator_params.chunk_tokens=32",
            "data.generator_params.max_docs_per_skill=16",
            "data.generator_params.val_docs_per_skill=3",
            "data.generator_params.max_bytes_per_doc=2048",
            "data.generator_params.vocab_size=512",
        ),
    ),
    "instruct_ood": Experiment(
        "instruct.yaml",
        _ood(0.2),
        "Composite skills, out of domain: train on the five other cells of the {en, es} x "
        "{copy, reverse, sort} grid, evaluate es/sort, which no training row shows.",
        sets=(
            "data.train_skills=[instruct/en/copy, instruct/en/reverse, instruct/en/sort, "
            "instruct/es/copy, instruct/es/reverse]",
            "data.eval_skills=[instruct/es/sort]",
        ),
    ),
}

# Quick mode (tests, smoke runs): a 2-layer width-64 model, 2 rounds of 4 steps, tiny data
# (the experiment's quick_data).
QUICK = (
    "model.preset=gpt2-tiny",
    "train.rounds=2",
    "train.steps_per_round=4",
    "train.batch_size=16",
    "train.warmup_steps=2",
    "train.eval_every=2",
    "train.eval_batch_size=64",
    "graph.steps=2",
)
