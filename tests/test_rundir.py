"""Who a run is: its name stays unique on a shared cluster."""

from __future__ import annotations

import json

from skillit_ray import rundir
from tests.conftest import recipe


def test_same_config_same_folder_name_same_second_gives_two_run_names(tmp_path):
    """The run name names the run's coordinator actor: two experiments' quick modes at once
    (CI, 2026-12-07) started `skillit-s0` in two `seed0` folders within one second and the
    second run died of ActorAlreadyExistsError."""
    cfg = recipe(str(tmp_path / "cache"))
    dirs = [tmp_path / exp / "seed0" for exp in ("addition_pt", "addition_ft")]
    names = []
    for d in dirs:
        d.mkdir(parents=True)
        ident = rundir.RunIdentity.create(cfg, str(d), t0=1_700_000_000.0)
        assert rundir.RunIdentity.load(str(d)) == ident
        assert json.loads((d / rundir.RUN_FILE).read_text())["run_name"] == ident.run_name
        names.append(ident.run_name)
    assert names[0] != names[1]
    stem = f"{cfg.run.name}-seed0-"
    assert all(n.startswith(stem) for n in names), names
