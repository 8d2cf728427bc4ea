"""Every command and option of the CLI has help, in plain text (no reST markup)."""

import argparse

from skillit_ray import cli


def _parsers(p: argparse.ArgumentParser, name: str = "skillit-ray"):
    yield name, p
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, child in action.choices.items():
                yield from _parsers(child, f"{name} {sub}")


def test_every_option_has_plain_help():
    missing, marked = [], []
    for name, p in _parsers(cli.parser()):
        texts = [p.description or ""]
        for a in p._actions:
            if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if not a.help:
                missing.append(f"{name} {a.option_strings or a.dest}")
            texts.append(a.help or "")
        for sub in [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]:
            texts += [c.help or "" for c in sub._choices_actions]
            missing += [f"{name} {c.dest}" for c in sub._choices_actions if not c.help]
        marked += [f"{name}: {t}" for t in texts if "`" in t or "skillit_ray." in t]
    assert not missing, missing
    assert not marked, marked


def test_data_help_names_what_each_generator_makes():
    help_text = cli.parser()._subparsers._group_actions[0].choices["data"].format_help()
    assert "LEGO: resolve the value of a variable" in help_text
    assert "skillit_ray.data" not in help_text


def test_lego_with_another_number_of_variables_needs_no_proportions(tmp_path, capsys):
    out = tmp_path / "lego3"
    args = ["data", "lego", "--variables", "3", "--rows-per-skill", "10", "--out", str(out)]
    assert cli.main([*args, "--val-rows-per-skill", "5"]) == 0
    assert "3 skills, 30 train rows" in capsys.readouterr().out
