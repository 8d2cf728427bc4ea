"""Bad-input pass: every case must exit non-zero with ONE line, `skillit-ray: error: ...`, that
names the key, file, line/row or skill at fault, and no traceback. Config-level cases must
fail before Ray starts (checked: Ray is not initialised afterwards) and within --limit
seconds; they run in this process, one after another. Cases marked `ray` fail inside Ray (a
data error raised in a Ray Data task on a worker) and run as `skillit-ray` subprocesses.

    python scripts/bad_inputs.py [--no-ray | --only-ray] [--limit 5] [-k WORD]

Prints one line per case and exits 0 when every case passes."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import yaml  # noqa: E402

from skillit_ray import cli  # noqa: E402

LEGO = os.path.join(ROOT, "experiments", "lego_pt.yaml")


@dataclass
class Case:
    name: str
    argv: list[str]  #: skillit-ray's arguments; {w} is the work folder
    expect: str  #: a piece of the one error line
    ray: bool = False  #: fails inside Ray (a subprocess), not before it
    files: dict[str, object] = field(default_factory=dict)  #: {w}-relative path -> content


def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def rows(n: int, skill: str, **extra) -> list[dict]:
    return [{"skill": skill, "input_ids": [1, 2, 3, 4], **extra} for _ in range(n)]


def tiny(w: str, **sections) -> dict:
    """A small run on the files in {w}/data (or on generated LEGO data when none are given)."""
    raw = {
        "run": {"name": "bad"},
        "data": {"train": f"{w}/data/train", "eval": f"{w}/data/eval"},
        "model": {"preset": "gpt2-tiny"},
        "train": {"rounds": 1, "steps_per_round": 2, "batch_size": 4, "warmup_steps": 0},
        "policy": {"name": "stratified"},
    }
    for k, v in sections.items():
        raw.setdefault(k, {}).update(v)
    return raw


GOOD = jsonl(rows(8, "a") + rows(8, "b"))


def run(*sets: str, recipe: str = LEGO) -> list[str]:
    return ["run", recipe, "--out", "{w}/out", *[a for s in sets for a in ("--set", s)]]


def cases(w: str) -> list[Case]:
    own = {"data/train/x.jsonl": GOOD, "data/eval/x.jsonl": GOOD}
    return [
        # numeric fields: type and range, named by key
        Case("lr text", run("train.lr=fast"), "train.lr must be a number > 0, got 'fast'"),
        Case("lr zero", run("train.lr=0"), "train.lr must be a number > 0, got 0"),
        Case("weight decay text", run("train.weight_decay=abc"), "train.weight_decay must be"),
        Case("grad clip negative", run("train.grad_clip=-1"), "train.grad_clip must be a number"),
        Case("rounds zero", run("train.rounds=0"), "train.rounds must be an integer >= 1"),
        Case("rounds float", run("train.rounds=2.5"), "train.rounds must be an integer"),
        Case("steps list", run("train.steps_per_round=[1]"), "train.steps_per_round must be"),
        Case("warmup negative", run("train.warmup_steps=-3"), "train.warmup_steps must be"),
        Case("eval_every zero", run("train.eval_every=0"), "train.eval_every must be"),
        Case("seed negative", run("train.seed=-1"), "train.seed must be an integer >= 0"),
        Case("use_gpu word", run("train.use_gpu=maybe"), "train.use_gpu must be true or false"),
        Case("max_failures", run("train.max_failures=-2"), "train.max_failures must be"),
        Case(
            "batch not divisible",
            run("train.num_workers=3"),
            "train.batch_size=32 must be divisible by train.num_workers=3",
        ),
        Case("max_length zero", run("data.max_length=0"), "data.max_length must be"),
        Case("memory budget", run("data.memory_budget_mb=-5"), "data.memory_budget_mb must be"),
        Case("data format", run("data.format=csv"), "data.format: unknown 'csv'"),
        Case("graph method", run("graph.method=exact"), "graph.method: unknown 'exact'"),
        Case("sweep scheduler", run("sweep.scheduler=pbt"), "sweep.scheduler: unknown 'pbt'"),
        Case("logger name", run("run.loggers=[wandb]"), "run.loggers: unknown 'wandb'"),
        Case("logger not a list", run("run.loggers=mlflow"), "run.loggers must be a list"),
        # keys and files
        Case("unknown key", run("train.rouns=3"), "did you mean 'train.rounds'"),
        Case("unknown section", run("trian.rounds=3"), "unknown config key 'trian.rounds'"),
        Case("set without =", run("train.rounds"), "--set 'train.rounds': expected"),
        Case("missing recipe", ["run", "{w}/nope.yaml"], "config file '{w}/nope.yaml' does not"),
        Case("not YAML", ["run", "{w}/bad.yaml"], "not valid YAML", files={"bad.yaml": "a: [1"}),
        # policy, graph, model
        Case("unknown policy", run("policy.name=nope"), "unknown policy 'nope'"),
        Case("policy parameter", run("policy.params.etaa=1"), "has no parameter(s) ['etaa']"),
        Case(
            "graph file missing",
            run("policy.params.graph={w}/none.json"),
            "graph file '{w}/none.json' does not exist",
        ),
        Case(
            "graph of other skills",
            ["run", "{w}/r.yaml"],
            "has no train skill(s) ['a', 'b']; it has ['x', 'y']",
            files={
                "r.yaml": tiny(w, policy={"name": "skillit", "params": {"graph": f"{w}/g.json"}}),
                "g.json": json.dumps(
                    {
                        "train_skills": ["x", "y"],
                        "eval_skills": ["x", "y"],
                        "matrix": [[1, 0], [0, 1]],
                    }
                ),
                **own,
            },
        ),
        Case("model preset", run("model.preset=gpt9"), "model.preset: unknown 'gpt9'"),
        Case("model path", run("model.path={w}/nomodel"), "model.path '{w}/nomodel': no such"),
        Case(
            "model override",
            run("model.overrides={n_layerz: 3}"),
            "model.overrides: 'gpt2' config has no field 'n_layerz'",
        ),
        # data files: file, line/row, skill
        Case(
            "train path missing",
            ["run", "{w}/r.yaml"],
            "data.train '{w}/nodata' does not exist",
            files={"r.yaml": tiny(w, data={"train": f"{w}/nodata"})},
        ),
        Case(
            "broken JSONL line",
            ["run", "{w}/r.yaml"],
            "x.jsonl: line 3: not valid JSON",
            files={
                "r.yaml": tiny(w),
                "data/train/x.jsonl": GOOD[: GOOD.index("\n", GOOD.index("\n") + 1) + 1]
                + '{"skill": "a", \n'
                + GOOD,
                "data/eval/x.jsonl": GOOD,
            },
        ),
        Case(
            "short loss_mask",
            ["run", "{w}/r.yaml"],
            "x.jsonl: line 10, skill 'b': loss_mask has 2 entries, input_ids has 4",
            files={
                "r.yaml": tiny(w),
                "data/train/x.jsonl": jsonl(
                    rows(8, "a", loss_mask=[0, 1, 1, 1])
                    + rows(1, "b", loss_mask=[0, 1, 1, 1])
                    + rows(1, "b", loss_mask=[1, 1])
                    + rows(6, "b", loss_mask=[0, 1, 1, 1])
                ),
                "data/eval/x.jsonl": GOOD,
            },
        ),
        Case(
            "null skill",
            ["run", "{w}/r.yaml"],
            "x.jsonl: line 2: no skill",
            files={
                "r.yaml": tiny(w),
                "data/train/x.jsonl": jsonl(rows(1, "a") + rows(1, None) + rows(8, "b")),
                "data/eval/x.jsonl": GOOD,
            },
        ),
        Case(
            "empty input_ids",
            ["run", "{w}/r.yaml"],
            "x.jsonl: line 4, skill 'a': empty or null input_ids",
            files={
                "r.yaml": tiny(w),
                "data/train/x.jsonl": jsonl(
                    rows(3, "a") + [{"skill": "a", "input_ids": []}] + rows(8, "b")
                ),
                "data/eval/x.jsonl": GOOD,
            },
        ),
        Case(
            "missing train skill",
            ["run", "{w}/r.yaml"],
            "data.train_skills: skill(s) ['c'] have no rows in the train split",
            files={"r.yaml": tiny(w, data={"train_skills": ["a", "c"]}), **own},
        ),
        Case(
            "text without tokenizer",
            ["run", "{w}/r.yaml"],
            "data.tokenizer: rows carry 'text'",
            files={
                "r.yaml": tiny(w),
                "data/train/x.jsonl": jsonl([{"skill": "a", "text": "hi"}] * 4),
                "data/eval/x.jsonl": jsonl([{"skill": "a", "text": "hi"}] * 4),
            },
        ),
        Case(
            "natural proportions",
            ["run", "{w}/r.yaml"],
            "data.natural_proportions: no weight for train skill(s) ['b']",
            files={"r.yaml": tiny(w, data={"natural_proportions": {"a": 1}}), **own},
        ),
        # commands
        Case("resume not a run", ["run", "--resume", "{w}"], "not a skillit-ray run directory"),
        Case("resume and config", ["run", LEGO, "--resume", "{w}"], "give no CONFIG or --out"),
        Case("sweep key", ["sweep", LEGO, "--param", "train.rouns=1,2"], "unknown config key"),
        Case(
            "sweep budget",
            ["sweep", LEGO, "--param", "train.rounds=2,8", "--set", "sweep.budget_steps=4"],
            "sweep.budget_steps=4 is fewer steps than train.rounds=",
        ),
        Case("report of no run", ["report", "{w}"], "not a readable run directory"),
        Case("simulate policy", ["simulate", "nope", "--out", "{w}/sim"], "unknown policy 'nope'"),
        # inside Ray: a Ray Data task on a worker raises; the user gets its one line
        Case(
            "no loss after truncation",
            ["run", "{w}/r.yaml", "--out", "{w}/out"],
            "skill 'b': no token has loss after truncation to 4 tokens",
            ray=True,
            files={
                "r.yaml": tiny(w, data={"max_length": 4}),
                "data/train/x.jsonl": jsonl(
                    rows(8, "a")
                    + [
                        {
                            "skill": "b",
                            "input_ids": [1, 2, 3, 4, 5, 6],
                            "loss_mask": [1, 1, 0, 0, 0, 0],
                        }
                    ]
                    + rows(8, "b")
                ),
                "data/eval/x.jsonl": GOOD,
            },
        ),
    ]


def _write(w: str, files: dict) -> None:
    for rel, content in files.items():
        path = os.path.join(w, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as fh:
            fh.write(content if isinstance(content, str) else yaml.safe_dump(content))


def _fill(text: str, w: str) -> str:
    return text.replace("{w}", w)


def in_process(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = cli.main(argv)
        except SystemExit as exc:  # argparse
            rc = exc.code if isinstance(exc.code, int) else 1
        except Exception:  # a traceback is a failure of this pass, shown as such
            import traceback

            traceback.print_exc(file=err)
            rc = 1
    return rc, err.getvalue()


def subprocess_run(argv: list[str]) -> tuple[int, str]:
    exe = os.path.join(os.path.dirname(sys.executable), "skillit-ray")
    proc = subprocess.run([exe, *argv], capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stderr


def check(case: Case, rc: int, err: str, expect: str) -> str | None:
    """What is wrong with the outcome, or None."""
    lines = [x for x in err.splitlines() if x.strip()]
    errors = [x for x in lines if x.startswith("skillit-ray: error: ")]
    if rc == 0:
        return "exited 0"
    if "Traceback" in err:
        return "traceback:\n" + err[-3000:]
    if len(errors) != 1 or len([x for x in lines if x not in errors]) > 1:
        return f"want one error line, got {len(lines)} lines:\n" + "\n".join(lines[-20:])
    if expect not in errors[0]:
        return f"want {expect!r} in: {errors[0]}"
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--no-ray", action="store_true", help="only the cases before Ray")
    which.add_argument("--only-ray", action="store_true", help="only the cases inside Ray")
    ap.add_argument("--limit", type=float, default=5.0, help="seconds a config-level case may take")
    ap.add_argument("-k", default=None, help="only cases whose name contains this")
    args = ap.parse_args(argv)
    failed = 0
    all_cases = cases("{w}")
    print(f"{len(all_cases)} cases", flush=True)
    for case in all_cases:
        if (args.no_ray and case.ray) or (args.only_ray and not case.ray):
            continue
        if args.k and args.k not in case.name:
            continue
        with tempfile.TemporaryDirectory(prefix="skillit-bad-") as w:
            # the case list is built with the real folder, so paths inside files are right
            real = next(c for c in cases(w) if c.name == case.name)
            _write(w, real.files)
            argv_ = [_fill(a, w) for a in real.argv]
            t0 = time.perf_counter()
            rc, err = (subprocess_run if real.ray else in_process)(argv_)
            took = time.perf_counter() - t0
            problem = check(real, rc, err, _fill(real.expect, w))
            if problem is None and not real.ray:
                ray = sys.modules.get("ray")
                if ray is not None and ray.is_initialized():
                    problem = "Ray was started: this error must come before it"
                elif took > args.limit:
                    problem = f"took {took:.1f}s, more than {args.limit:g}s"
        line = err.strip().splitlines()[-1] if err.strip() else ""
        if problem:
            failed += 1
            print(f"FAIL  {case.name} ({took:.1f}s): {problem}", flush=True)
        else:
            print(f"ok    {case.name} ({took:.1f}s): {line.replace(w, '{w}')}", flush=True)
    print(f"{failed} failed" if failed else "all passed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
