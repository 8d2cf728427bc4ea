"""Golden runs: every number a seeded run wrote to metrics.jsonl, and its final model, compared
with the same run recorded on earlier code (tests/golden/<name>.json).

A refactor that must not change behaviour keeps these equal bit for bit. Record anew only when a
change is meant to alter training: ``SKILLIT_RECORD_GOLDEN=1 pytest ...`` rewrites the files
of the tests it runs, and the commit that does so says why.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

GOLDEN_DIR = Path(__file__).parent / "golden"
# Wall-clock figures differ between any two runs; every other field must not.
TIMING = ("train_s", "eval_s", "wall_s")


def model_digest(model_dir: Path) -> str:
    """sha256 over the final model's tensors (name, dtype, shape, bytes), sorted by name."""
    from safetensors.numpy import load_file

    tensors = load_file(str(model_dir / "model.safetensors"))
    h = hashlib.sha256()
    for name in sorted(tensors):
        a = tensors[name]
        h.update(f"{name}|{a.dtype}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def run_numbers(out: Path) -> dict:
    out = Path(out)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    numbers = {"metrics": [{k: v for k, v in r.items() if k not in TIMING} for r in rows]}
    if (out / "model").is_dir():
        numbers["model_sha256"] = model_digest(out / "model")
    return numbers


def golden_run_dir(name: str, dest: Path, policy: str, seed: int = 0) -> str:
    """A run directory holding golden run ``name``'s metrics (for tests of what reads run
    directories, without training): metrics.jsonl and the config fields readers use."""
    import yaml

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    rows = json.loads((GOLDEN_DIR / f"{name}.json").read_text())["metrics"]
    with open(dest / "metrics.jsonl", "w") as fh:
        for i, row in enumerate(rows):
            fh.write(json.dumps({**row, "train_s": 1.0, "eval_s": 0.1, "wall_s": 2.0 * i}) + "\n")
    cfg = {"policy": {"name": policy, "params": {}}, "train": {"seed": seed}}
    (dest / "config.yaml").write_text(yaml.safe_dump(cfg))
    return str(dest)


def cpu_capability() -> str:
    import torch

    return torch.backends.cpu.get_cpu_capability()


def check_golden(name: str, out: Path) -> None:
    """Assert the run in ``out`` equals golden run ``name`` exactly (or record it)."""
    got = run_numbers(out)
    path = GOLDEN_DIR / f"{name}.json"
    if os.environ.get("SKILLIT_RECORD_GOLDEN"):
        GOLDEN_DIR.mkdir(exist_ok=True)
        path.write_text(json.dumps({"cpu_capability": cpu_capability(), **got}, indent=1) + "\n")
        return
    want = json.loads(path.read_text())
    # Kernels differ between CPU instruction sets (AVX2 vs AVX512): bit identity holds on the
    # instruction set a file was recorded on; elsewhere floats are compared to 1e-4.
    exact = want.pop("cpu_capability") == cpu_capability()
    assert len(got["metrics"]) == len(want["metrics"])
    for g, w in zip(got["metrics"], want["metrics"], strict=True):
        assert same(g, w, exact), f"round {w.get('round')} differs from golden run '{name}'"
    if exact:
        assert got.get("model_sha256") == want.get("model_sha256"), f"final model of '{name}'"


def same(a, b, exact: bool) -> bool:
    if isinstance(a, float) and isinstance(b, float) and not exact:
        return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k], exact) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y, exact) for x, y in zip(a, b, strict=True))
    return a == b and type(a) is type(b)
