"""scripts/bad_inputs.py: every bad input exits non-zero with one line naming the key, file,
line/row or skill, no traceback; config-level cases before Ray starts."""

import importlib.util
import os
import subprocess
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(__file__)), "scripts", "bad_inputs.py")


def _script():
    spec = importlib.util.spec_from_file_location("bad_inputs", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bad_inputs"] = mod  # its dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_bad_inputs_before_ray(capsys):
    mod = _script()
    assert len(mod.cases("{w}")) >= 30
    # 5 s a case on an idle 2-core machine; a loaded CI box gets some slack (torch's import)
    rc = mod.main(["--no-ray", "--limit", "15"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert out.count("ok    ") >= 30


@pytest.mark.ray
def test_bad_inputs_inside_ray():
    proc = subprocess.run(
        [sys.executable, SCRIPT, "--only-ray"], capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
