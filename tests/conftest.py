"""One real local Ray cluster per test session, plus small shared fixtures."""

import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")
os.environ.setdefault("RAY_TRAIN_METRICS_ENABLED", "0")
os.environ.setdefault("RAY_DATA_PARQUET_FOOTER_NUM_ACTORS", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def ray_session():
    import ray

    ray.init(
        address="local",
        num_cpus=4,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="warning",
    )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """Generated data shared by the session's tests."""
    return str(tmp_path_factory.mktemp("cache"))


def tiny_lego(cache_dir: str, **train) -> dict:
    """A LEGO recipe small enough for a test: 3 skills, a 2-layer width-64 GPT-2."""
    t = {
        "rounds": 3,
        "steps_per_round": 8,
        "batch_size": 16,
        "lr": 3e-3,
        "warmup_steps": 4,
        "eval_every": 4,
        "eval_batch_size": 64,
        "seed": 0,
    }
    t.update(train)
    return {
        "run": {"name": "tiny"},
        "data": {
            "generator": "lego",
            "cache_dir": cache_dir,
            "generator_params": {
                "variables": 3,
                "rows_per_skill": 120,
                "proportions": [1, 1, 3],
                "val_rows_per_skill": 40,
            },
        },
        "model": {"preset": "gpt2-tiny"},
        "train": t,
        "policy": {"name": "skillit", "params": {"eta": 0.5}},
    }


ROUNDS = 5


def recipe(cache_dir: str, **train):
    """tiny_lego with 5 rounds of 40 steps, checkpointed every round (a round takes ~2 s on
    CPU: long enough to kill a worker in the middle of one)."""
    from skillit_ray import config

    t = {"rounds": ROUNDS, "steps_per_round": 40, "eval_every": 20, "checkpoint_every": 1}
    t.update(train)
    return config.from_dict(tiny_lego(cache_dir, **t))


@pytest.fixture(scope="session")
def checkpointed_run(ray_session, cache_dir, tmp_path_factory) -> str:
    """The run directory of an uninterrupted 5-round run (the reference for resume tests)."""
    from skillit_ray import launch

    out = str(tmp_path_factory.mktemp("clean"))
    launch.run(recipe(cache_dir), out=out, echo=False)
    return out
