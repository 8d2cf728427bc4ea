"""The skillit-ray command line: run, sweep, data, graph, policies, simulate, report."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import sys
import time

import yaml

from skillit_ray.errors import Interrupted, SkillitError


def _cmd_run(args: argparse.Namespace) -> None:
    # The config is checked before torch, transformers or Ray is imported (seconds each).
    from skillit_ray import config, rundir

    if args.resume:
        if args.config or args.out:
            raise config.ConfigError(
                "--resume RUN_DIR continues a run with the config saved in RUN_DIR; "
                "give no CONFIG or --out with it"
            )
        cfg = rundir.resume_config(args.resume, args.set)
        out, resume = args.resume, True
    elif not args.config:
        raise config.ConfigError("run: give a CONFIG (YAML recipe) or --resume RUN_DIR")
    else:
        cfg = config.load(args.config, args.set)
        out, resume = args.out, False
    from skillit_ray import preflight

    preflight.check_config(cfg)
    from skillit_ray import launch

    launch.run(cfg, out=out, echo=not args.quiet, resume=resume)


def _cmd_prepare(args: argparse.Namespace) -> None:
    from skillit_ray import cluster, config
    from skillit_ray.data.prepare import prepare

    cfg = config.load(args.config, args.set)
    if args.out:
        cfg.data.token_cache = args.out
    data = prepare(cfg)
    cluster.ensure_ray(cfg)
    cache = data.cache(echo=True)
    for split in ("train", "eval"):
        c = cache.counts(split)
        print(
            f"  {split:<5} {c.rows} rows: {c.read} tokens read, {c.kept} kept, "
            f"{c.dropped} dropped, {c.padding} padding"
        )
    print(f"token cache {cache.root} (fingerprint {cache.fingerprint})")
    if args.out:
        print(f"train from it with --set data.token_cache={args.out}")


def _cmd_data(args: argparse.Namespace) -> None:
    from skillit_ray.data import generators

    cls = generators.GENERATORS[args.generator][0]
    params = {}
    for f in dataclasses.fields(cls):
        value = getattr(args, f.name, None)
        if value is not None:
            params[f.name] = value
    manifest = generators.generate(args.generator, args.out, params)
    rows = sum(manifest["train_rows"].values())
    print(
        f"wrote {args.generator} data to {args.out}: {len(manifest['skills'])} skills, "
        f"{rows} train rows, {sum(manifest['val_rows'].values())} validation rows"
    )
    for split, per_skill in manifest.get("counts", {}).items():  # text corpora: docs and tokens
        for skill, c in per_skill.items():
            print(f"  {split:<5} {skill:<20} {c['docs']:>6} docs {c['tokens']:>10} tokens")


def _cmd_policies(args: argparse.Namespace) -> None:
    from skillit_ray.policy import available, describe_policy

    if args.name:
        d = describe_policy(args.name)
        print(f"{d['name']}\n\n{d['doc']}\n\nparameters:")
        for f in d["fields"]:
            print(f"  {f['name']} (default {f['default']!r}): {f['doc']}")
        return
    for name in available():
        d = describe_policy(name)
        fields = ", ".join(f["name"] for f in d["fields"]) or "-"
        print(f"{name:<21} {d['summary']}  [{fields}]")


def _simulate_params(policy: str, sets: list[str], graph_path: str) -> dict:
    """``--set policy.params.x=v`` items; a policy with a ``graph`` field gets the ground truth."""
    from skillit_ray import config
    from skillit_ray.policy import get_policy_class

    params: dict = {}
    for item in sets:
        key, sep, text = item.partition("=")
        if not sep or not key.startswith("policy.params.") or key == "policy.params.":
            raise config.ConfigError(f"simulate --set '{item}': expected policy.params.KEY=VALUE")
        target = params
        *path, last = key[len("policy.params.") :].split(".")
        for part in path:
            target = target.setdefault(part, {})
        target[last] = yaml.safe_load(text)
    names = {f.name for f in dataclasses.fields(get_policy_class(policy).Config)}
    if "graph" in names and "graph" not in params:
        params["graph"] = graph_path
        print(f"policy.params.graph = {graph_path} (the ground truth; --set it to give another)")
    return params


def _cmd_simulate(args: argparse.Namespace) -> None:
    from skillit_ray.graph import SkillsGraph
    from skillit_ray.report import report
    from skillit_ray.simulate import Law, lego_graph, simulate, write_run

    t0 = time.perf_counter()
    out = args.out or os.path.join(
        "runs", f"simulate-{args.policy}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    os.makedirs(out, exist_ok=True)
    graph = SkillsGraph.load(args.graph) if args.graph else lego_graph()
    graph_path = os.path.abspath(args.graph or os.path.join(out, "graph.json"))
    if not args.graph:
        graph.save(graph_path)
    params = _simulate_params(args.policy, args.set, graph_path)
    law = Law(graph, args.law, args.rate, args.threshold)
    box = {
        "rounds": args.rounds,
        "steps_per_round": args.steps_per_round,
        "eval_every": args.eval_every,
        "seed": args.seed,
    }
    sims = [simulate(args.policy, params, law, **box)]
    if args.policy != "stratified":
        sims.append(simulate("stratified", {}, law, **box))
    pol, base = sims[0], sims[-1]
    short = [s.rsplit("/", 1)[-1] for s in graph.train_skills]
    print(
        f"simulate {args.policy}: {args.law} law, graph {os.path.basename(graph_path)} "
        f"({len(graph.train_skills)} train x {len(graph.eval_skills)} eval skills), "
        f"{args.rounds} rounds x {args.steps_per_round} steps"
    )
    cols = f"{'round':>5} {args.policy[:12]:>12} {'stratified':>12}   mixture: {' '.join(short)}"
    print(cols)
    for r, rec in enumerate(pol.records):
        mix = " ".join(f"{p:.3f}" for p in rec.mixture.probs)
        print(f"{r:>5} {pol.mean_loss[r]:>12.4f} {base.mean_loss[r]:>12.4f}   {mix}")
    change = 100 * (pol.final - base.final) / base.final
    print(
        f"final mean eval loss: {args.policy} {pol.final:.4f}, stratified {base.final:.4f} "
        f"({change:+.1f}%)"
    )
    print(
        f"cumulative loss (sum of round-end means): {args.policy} {pol.cumulative:.4f}, "
        f"stratified {base.cumulative:.4f}"
    )
    dirs = [write_run(s, os.path.join(out, s.policy), graph_path, args.seed) for s in sims]
    print(f"simulated in {time.perf_counter() - t0:.2f} s; runs in {out}", flush=True)
    if not args.no_report:
        t1 = time.perf_counter()
        written = report(dirs, os.path.join(out, "report"))
        took = time.perf_counter() - t1
        print(f"wrote {written['index']} ({len(written) - 1} figures, {took:.1f} s)")


def _cmd_report(args: argparse.Namespace) -> None:
    from skillit_ray.report import report

    out = args.out or os.path.join(args.runs[0], "report")
    written = report(args.runs, out, shared_y=args.shared_y)
    print(f"wrote {written['index']} ({len(written) - 1} figures)")


def _cmd_sweep(args: argparse.Namespace) -> None:
    from skillit_ray import cluster, config, rundir
    from skillit_ray.tune import SweepSpec, parse_param, preflight, sweep

    cfg = config.load(args.config, args.set)
    sw = cfg.sweep
    params = dict(sw.params)
    params.update(dict(parse_param(p) for p in args.param))
    if not params:
        raise config.ConfigError("sweep: give --param key=v1,v2 or a sweep.params section")
    base = cfg.to_dict()
    base.pop("sweep")
    spec = SweepSpec(
        base,
        params,
        args.seeds or sw.seeds,
        args.metric or sw.metric,
        sw.num_samples,
        sw.max_concurrent,
        sw.scheduler == "asha",
        sw.budget_steps,
    )
    out = args.out or os.path.join("runs", f"sweep-{time.strftime('%Y%m%d-%H%M%S')}")
    out = rundir.resolve_out(out, cfg)
    preflight(spec)  # every trial's config, data, model and policy, before Ray starts
    print(f"Ray: {cluster.ensure_ray(cfg)}", flush=True)
    sweep(spec, out, echo=True)


def _cmd_graph_learn(args: argparse.Namespace) -> None:
    from skillit_ray import cluster, config
    from skillit_ray.data.prepare import prepare
    from skillit_ray.graph_learning import learn
    from skillit_ray.preflight import check_config, check_graph_start, check_model

    sets = list(args.set)
    if args.init_from is not None:
        sets.append(f"graph.init_from={args.init_from}")
    for key in ("method", "steps", "seeds", "warmup_steps"):
        if getattr(args, key) is not None:
            sets.append(f"graph.{key}={getattr(args, key)}")
    cfg = config.load(args.config, sets)
    check_config(cfg)
    data = prepare(cfg)
    check_model(cfg, data)  # before Ray starts
    check_graph_start(cfg, data)
    cluster.ensure_ray(cfg)
    graph = learn(cfg, cfg.graph, echo=not args.quiet, data=data)
    graph.save(args.out)
    print(graph.table())
    print(f"wrote {args.out}")


def _cmd_graph_show(args: argparse.Namespace) -> None:
    from skillit_ray.graph import SkillsGraph

    graph = SkillsGraph.load(args.graph)
    print(graph.table())
    prov = graph.provenance
    if prov:
        shown = ("model", "start", "start_loss")  # start: the line below
        print("provenance: " + ", ".join(f"{k}={v}" for k, v in prov.items() if k not in shown))
    if prov.get("method") in ("approximate", "brute-force"):  # learned: where its runs started
        from skillit_ray.warm_start import describe

        print(f"started: {describe(prov.get('start'))}")
    if args.png:
        graph.heatmap(args.png)
        print(f"wrote {args.png}")


def _cmd_graph_import(args: argparse.Namespace) -> None:
    from skillit_ray.graph import SkillsGraph

    train = args.train_skills.split(",")
    eval_ = args.eval_skills.split(",") if args.eval_skills else train
    SkillsGraph.from_npy(args.npy, train, eval_, args.transpose).save(args.out)
    print(f"wrote {args.out}")


def _cmd_graph_export(args: argparse.Namespace) -> None:
    from skillit_ray.graph import SkillsGraph

    graph = SkillsGraph.load(args.graph)
    graph.to_npy(args.out)
    print(
        f"wrote {args.out}: rows = {list(graph.train_skills)}, columns = {list(graph.eval_skills)}"
    )


def _plain(text: str) -> str:
    """Help text without reST markup (docstrings quote code in double backticks)."""
    return text.replace("``", "").replace("`", "")


def _first_sentence(doc: str | None) -> str:
    para = " ".join((doc or "").strip().split("\n\n")[0].split())
    return _plain(para.split(". ")[0].rstrip("."))


def _add_graph_parsers(sub) -> None:
    g = sub.add_parser("graph", help="learn, show, import or export a skills graph")
    gs = g.add_subparsers(dest="graph_command", required=True)
    learn = gs.add_parser("learn", help="learn the graph from parallel ablation runs on Ray")
    learn.add_argument("config", help="YAML recipe whose data, model and train settings to use")
    learn.add_argument(
        "--method",
        choices=["approximate", "brute-force"],
        default=None,
        help="approximate: k runs, one skill each; brute-force: k^2 runs, each pair against "
        "the single skill (default: graph.method)",
    )
    learn.add_argument("--steps", type=int, default=None, help="H: steps per ablation run")
    learn.add_argument(
        "--seeds", type=int, default=None, help="seeds averaged (default: graph.seeds)"
    )
    learn.add_argument(
        "--init-from",
        default=None,
        metavar="RUN_OR_CHECKPOINT",
        help="start the ablation runs from a trained model: a run directory (its newest "
        "checkpoint) or a checkpoint directory (default: graph.init_from; none: cold)",
    )
    learn.add_argument(
        "--warmup-steps",
        type=int,
        default=None,
        metavar="W",
        help="start them after W steps on the natural mixture (default: graph.warmup_steps)",
    )
    learn.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="e.g. --set graph.normalize=relative --set graph.clip_negative=true",
    )
    learn.add_argument("--out", required=True, help="graph JSON to write")
    learn.add_argument("--quiet", action="store_true", help="no line per finished run")
    learn.set_defaults(func=_cmd_graph_learn)
    show = gs.add_parser("show", help="print the graph as a table; --png draws a heatmap")
    show.add_argument("graph", help="graph JSON")
    show.add_argument("--png", default=None, help="also draw the matrix as a heatmap PNG here")
    show.set_defaults(func=_cmd_graph_show)
    imp = gs.add_parser("import", help="a plain .npy matrix + skill order -> graph JSON")
    imp.add_argument("npy", help="the matrix as a .npy file")
    imp.add_argument("--train-skills", required=True, help="comma-separated, the row order")
    imp.add_argument("--eval-skills", default=None, help="comma-separated column order")
    imp.add_argument("--transpose", action="store_true", help="the file is [eval, train]")
    imp.add_argument("--out", required=True, help="graph JSON to write")
    imp.set_defaults(func=_cmd_graph_import)
    exp = gs.add_parser("export", help="graph JSON -> plain .npy matrix (rows = train skills)")
    exp.add_argument("graph", help="graph JSON")
    exp.add_argument("--out", required=True, help=".npy file to write")
    exp.set_defaults(func=_cmd_graph_export)


def _add_generator_parsers(sub) -> None:
    from skillit_ray.data import generators

    data = sub.add_parser("data", help="write a skill-tagged dataset (synthetic, or sources)")
    gens = data.add_subparsers(dest="generator", required=True)
    for name, (cls, _, _) in generators.GENERATORS.items():
        module = sys.modules[generators.GENERATORS[name][1].__module__]
        p = gens.add_parser(name, help=_first_sentence(module.__doc__))
        p.add_argument("--out", required=True, help="output folder (train/, val/, manifest.json)")
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            structured = default is None or isinstance(default, (list, bool))
            kind = yaml.safe_load if structured else type(default)
            p.add_argument(
                f"--{f.name.replace('_', '-')}",
                dest=f.name,
                type=kind,
                default=None,
                help=_plain(f"{f.metadata.get('doc', '')} (default {default})"),
            )
        p.set_defaults(func=_cmd_data)


def _add_simulate_parser(sub) -> None:
    sim = sub.add_parser(
        "simulate",
        help="run a policy in seconds against a ground-truth graph and loss law (no training)",
    )
    sim.add_argument("policy", help="registered policy name")
    sim.add_argument(
        "--graph", default=None, help="ground-truth graph JSON (default: the paper's LEGO graph)"
    )
    from skillit_ray.simulate import LAWS, Law, Sandbox

    law = {f.name: f for f in dataclasses.fields(Law)}
    box = inspect.signature(Sandbox).parameters
    sim.add_argument(
        "--law",
        choices=LAWS,
        default=law["kind"].default,
        help="loss law: linear (the paper's analysis) or gated (an eval skill waits for its "
        f"prerequisites) ({law['kind'].default})",
    )
    for name, kind, doc in (
        ("rounds", int, "rounds T"),
        ("steps_per_round", int, "steps per round"),
        ("eval_every", int, "an eval checkpoint every this many steps"),
        ("seed", int, "seed of the generated per-row difficulty"),
    ):
        default = box[name].default
        sim.add_argument(
            f"--{name.replace('_', '-')}", type=kind, default=default, help=f"{doc} ({default})"
        )
    for name in ("rate", "threshold"):
        f = law[name]
        sim.add_argument(
            f"--{name}",
            type=float,
            default=f.default,
            help=_plain(f"{f.metadata['doc']} ({f.default})"),
        )
    sim.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="policy.params.KEY=VALUE",
        help="a policy parameter, e.g. --set policy.params.eta=0.8",
    )
    sim.add_argument("--out", default=None, help="directory for the runs and the report")
    sim.add_argument("--no-report", action="store_true", help="skip the plots")
    sim.set_defaults(func=_cmd_simulate)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="skillit-ray", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train with a selection policy, round by round")
    run.add_argument("config", nargs="?", help="YAML recipe, e.g. experiments/lego_pt.yaml")
    run.add_argument(
        "--resume",
        metavar="RUN_DIR",
        default=None,
        help="continue the run in RUN_DIR from its newest checkpoint (same config; --set may "
        "change only what does not alter the run, e.g. train.max_failures)",
    )
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.rounds=3",
    )
    run.add_argument("--out", default=None, help="run directory (default runs/<name>-<time>)")
    run.add_argument("--quiet", action="store_true", help="no per-round lines")
    run.set_defaults(func=_cmd_run)
    prep = sub.add_parser("prepare", help="tokenize a recipe's data into its token cache")
    prep.add_argument("config", help="YAML recipe whose data to tokenize")
    prep.add_argument("--out", default=None, help="cache folder or URI (data.token_cache)")
    prep.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set data.max_length=64",
    )
    prep.set_defaults(func=_cmd_prepare)
    rep = sub.add_parser("report", help="HTML page + PNGs for one run or many (by policy)")
    rep.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories (--out of run)")
    rep.add_argument("--out", default=None, help="report directory (default RUN_DIR/report)")
    rep.add_argument(
        "--shared-y",
        action="store_true",
        help="one y-range for all per-skill panels of a figure (noise then looks its size)",
    )
    rep.set_defaults(func=_cmd_report)
    sw = sub.add_parser("sweep", help="sweep config values (eta, T, ...) with Ray Tune")
    sw.add_argument("config", help="YAML recipe (its sweep section, if any, is the default)")
    sw.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="a grid over one key, e.g. --param policy.params.eta=0.1,0.5",
    )
    sw.add_argument(
        "--seeds", type=int, default=None, help="seeds per point (default: sweep.seeds)"
    )
    sw.add_argument(
        "--metric",
        default=None,
        help="mean_eval_loss, mean_eval_acc or eval_loss/<skill> (default: sweep.metric)",
    )
    sw.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.rounds=3",
    )
    sw.add_argument("--out", default=None, help="sweep directory")
    sw.set_defaults(func=_cmd_sweep)
    _add_generator_parsers(sub)
    _add_graph_parsers(sub)
    _add_simulate_parser(sub)
    pol = sub.add_parser("policies", help="list registered policies, or show one")
    pol.add_argument("name", nargs="?", help="a policy to show in full (its parameters)")
    pol.set_defaults(func=_cmd_policies)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except Interrupted as exc:
        print(f"skillit-ray: {exc}", file=sys.stderr)
        return 128 + exc.signum
    except SkillitError as exc:
        print(f"skillit-ray: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before training started (or a second Ctrl-C): nothing to keep
        print("skillit-ray: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
