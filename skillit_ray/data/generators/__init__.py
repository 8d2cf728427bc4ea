"""Registry of built-in generators (synthetic, and the environment's own text) and the cache
that recipes use."""

from __future__ import annotations

import dataclasses
import json
import os

from skillit_ray.data.generators import addition, instruct, lego, sources
from skillit_ray.data.generators.common import fingerprint
from skillit_ray.errors import ConfigError, DataError

GENERATORS = {
    "lego": (lego.LegoParams, lego.generate, lego.VERSION),
    "addition": (addition.AdditionParams, addition.generate, addition.VERSION),
    "instruct": (instruct.InstructParams, instruct.generate, instruct.VERSION),
    "sources": (sources.SourcesParams, sources.generate, sources.VERSION),
}
# What a generator's output depends on beyond its settings, folded into its cache key: the
# sources corpus changes when the environment does (a package installed or upgraded).
CACHE_KEYS = {"sources": sources.environment_key}


def make_params(name: str, params: dict | None):
    if name not in GENERATORS:
        raise ConfigError(f"data.generator: unknown '{name}'; available: {sorted(GENERATORS)}")
    cls = GENERATORS[name][0]
    valid = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(params or {}) - valid)
    if unknown:
        raise ConfigError(
            f"data.generator_params: '{name}' has no setting(s) {unknown}; valid: {sorted(valid)}"
        )
    return cls(**(params or {}))


def generate(name: str, out: str, params: dict | None = None) -> dict:
    p = make_params(name, params)
    try:
        return GENERATORS[name][1](out, p)
    except ValueError as exc:
        raise ConfigError(f"data.generator_params: {exc}") from None


def default_cache_dir() -> str:
    return os.environ.get("SKILLIT_RAY_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "skillit-ray"
    )


def cached(name: str, params: dict | None, cache_dir: str | None) -> str:
    """Folder of the generated data for these settings, generating it on first use.

    The folder name carries a fingerprint of the settings, so changing them regenerates.
    """
    p = make_params(name, params)
    extra = CACHE_KEYS[name]() if name in CACHE_KEYS else None
    fp = fingerprint(name, p, GENERATORS[name][2], extra)
    folder = os.path.join(cache_dir or default_cache_dir(), "data", f"{name}-{fp}")
    manifest = os.path.join(folder, "manifest.json")
    if os.path.exists(manifest):
        return folder
    generate(name, folder, dataclasses.asdict(p))
    return folder


def read_manifest(folder: str) -> dict | None:
    """The folder's manifest, its ``tokenizer`` (a folder relative to it) made absolute."""
    path = os.path.join(folder, "manifest.json")
    if not os.path.exists(path):
        return None
    try:
        with open(path) as fh:
            manifest = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable manifest: {exc}") from None
    if manifest.get("tokenizer"):
        manifest["tokenizer"] = os.path.join(os.path.abspath(folder), manifest["tokenizer"])
    return manifest
