"""The ``skillit-ray`` command line: run, data, policies."""

from __future__ import annotations

import argparse
import dataclasses
import sys

import yaml

from skillit_ray.errors import SkillitError


def _cmd_run(args: argparse.Namespace) -> None:
    from skillit_ray import config, launch

    cfg = config.load(args.config, args.set)
    launch.run(cfg, out=args.out, echo=not args.quiet)


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


def _add_generator_parsers(sub) -> None:
    from skillit_ray.data import generators

    data = sub.add_parser("data", help="write a synthetic skill-tagged dataset")
    gens = data.add_subparsers(dest="generator", required=True)
    for name, (cls, _, _) in generators.GENERATORS.items():
        p = gens.add_parser(name, help=(generators.GENERATORS[name][1].__module__))
        p.add_argument("--out", required=True, help="output folder (train/, val/, manifest.json)")
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            kind = yaml.safe_load if isinstance(default, (list, bool)) else type(default)
            p.add_argument(
                f"--{f.name.replace('_', '-')}",
                dest=f.name,
                type=kind,
                default=None,
                help=f"{f.metadata.get('doc', '')} (default {default})",
            )
        p.set_defaults(func=_cmd_data)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="skillit-ray", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train with a selection policy, round by round")
    run.add_argument("config", help="YAML recipe, e.g. experiments/lego_pt.yaml")
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
    _add_generator_parsers(sub)
    pol = sub.add_parser("policies", help="list registered policies, or show one")
    pol.add_argument("name", nargs="?")
    pol.set_defaults(func=_cmd_policies)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except SkillitError as exc:
        print(f"skillit-ray: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
