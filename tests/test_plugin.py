"""The worked external plugin: installed into this environment, found, and trained with."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from skillit_ray import cli
from tests.conftest import tiny_lego

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "custom_policy"


@pytest.fixture(scope="module")
def installed_plugin():
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", str(EXAMPLE)], check=True
    )
    yield
    subprocess.run(
        [sys.executable, "-m", "pip", "uninstall", "-q", "-y", "skillit-hardest-first"], check=True
    )


def test_plugin_listed_and_trains(installed_plugin, ray_session, cache_dir, tmp_path):
    listing = subprocess.run(
        [sys.executable, "-m", "skillit_ray.cli", "policies"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "hardest_first" in listing and "[power]" in listing
    shown = subprocess.run(
        [sys.executable, "-m", "skillit_ray.cli", "policies", "hardest_first"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Exponent on each skill's loss" in shown

    raw = tiny_lego(cache_dir, rounds=2, steps_per_round=4, eval_every=None)
    raw["policy"] = {"name": "hardest_first", "params": {"power": 3.0}}
    recipe = tmp_path / "plugin.yaml"
    recipe.write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    assert cli.main(["run", str(recipe), "--out", str(out), "--quiet"]) == 0
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    loss = rows[0]["eval_loss"]
    cubed = {s: v**3 for s, v in loss.items()}
    want = {s: v / sum(cubed.values()) for s, v in cubed.items()}
    assert rows[1]["mixture"] == pytest.approx(want)  # the plugin chose round 1's mixture


def test_plugin_author_checks_the_contract_without_our_checkout(tmp_path):
    """A fresh virtualenv with skillit-ray and the plugin installed as wheels (no editable
    install, no checkout on the path) runs the plugin's own three-line contract test."""
    import shutil
    import site
    import venv

    wheels = tmp_path / "wheels"
    for src in (Path(__file__).resolve().parents[1], EXAMPLE):
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
            + ["-w", str(wheels), str(src)],
            check=True,
            cwd=tmp_path,
        )
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    purelib = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # Third-party dependencies (torch, numpy, ...) come from this environment's site-packages,
    # added as a plain path: its .pth files (our editable install among them) are not read.
    Path(purelib, "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    for wheel in sorted(wheels.glob("*.whl")):
        subprocess.run(
            [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps"]
            + [str(wheel)],
            check=True,
        )
    author = tmp_path / "author"
    shutil.copytree(EXAMPLE / "tests", author / "tests")
    where = subprocess.run(
        [py, "-c", "import skillit_ray, skillit_hardest_first; print(skillit_ray.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=author,
    ).stdout
    assert where.startswith(purelib)  # the installed wheel, not our sources
    got = subprocess.run(
        [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        capture_output=True,
        text=True,
        cwd=author,
    )
    assert got.returncode == 0, got.stdout[-3000:] + got.stderr[-2000:]
    assert "1 passed" in got.stdout
