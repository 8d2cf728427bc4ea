"""One real local Ray cluster per test session, plus small shared fixtures."""

import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")
os.environ.setdefault("RAY_TRAIN_METRICS_ENABLED", "0")
os.environ.setdefault("RAY_DATA_PARQUET_FOOTER_NUM_ACTORS", "1")

import sys  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import pytest  # noqa: E402

from skillit_ray.cluster import forget_dead_cluster, start_quiet_local  # noqa: E402

# Fixtures that start Ray. A test that uses one (directly or through another fixture) gets the
# `ray` marker here, so the fast tier (`pytest -m "not ray"`) can never include it by mistake.
RAY_FIXTURES = {"ray_session", "ray_head", "two_nodes"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if RAY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.ray)


@pytest.fixture(autouse=True)
def _fast_tier_stays_off_ray(request):
    """A test outside the `ray` tier that starts Ray fails, saying which fixture to use."""

    def up() -> bool:
        return "ray" in sys.modules and sys.modules["ray"].is_initialized()

    before = up()
    yield
    if request.node.get_closest_marker("ray") is None and not before and up():
        pytest.fail(
            "this test started Ray without the ray_session fixture; use it, so the test "
            "is marked `ray` and leaves the fast tier"
        )


@pytest.fixture(scope="session")
def ray_session():
    import ray

    start_quiet_local(num_cpus=4)
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


@pytest.fixture
def ray_head(tmp_path):
    """A head node started with `ray start --head` on loopback, as a cluster user would, with
    free ports (another Ray, the suite's own, may run beside it), and token auth on as the
    README's cluster section does it: one generated token in the head's and every client's
    environment. Yields (address, env) - the env a client needs (the token included)."""
    from tests import nodes

    env = nodes.client_env()
    head, address, _ = nodes.start_head(tmp_path, env, "--num-cpus=3")
    try:
        yield address, env
    finally:
        head.stop()
        # `ray start --block` stopped leaves Ray's newest-cluster pointer naming it: every
        # later fit() would spend 12 s of teardown asking a dead address about its
        # controller (cluster.py).
        forget_dead_cluster()


@pytest.fixture
def word_tokenizer(tmp_path):
    """A real local Hugging Face tokenizer (word level), built offline."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "hola", "hello", "world", "mundo", "que", "what"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]")
    out = tmp_path / "tok"
    fast.save_pretrained(str(out))
    return str(out)


def token_rows(n: int, skill: str, seed: int, max_len: int = 9) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        length = int(rng.integers(2, max_len + 1))
        mask = [0] * (length - 1) + [1]
        rows.append(
            {"skill": skill, "input_ids": rng.integers(1, 50, length).tolist(), "loss_mask": mask}
        )
    return rows


def write_split(folder, rows_by_file: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in rows_by_file.items():
        pq.write_table(pa.Table.from_pylist(rows), folder / name)


@pytest.fixture
def token_data(tmp_path):
    """Two skills over two files (a:110 rows, b/c:45), eval 20 rows each; max_length 8."""
    train = {
        "0.parquet": token_rows(60, "a", 0) + token_rows(25, "b/c", 1),
        "1.parquet": token_rows(50, "a", 2) + token_rows(20, "b/c", 3),
    }
    write_split(tmp_path / "train", train)
    write_split(tmp_path / "val", {"0.parquet": token_rows(20, "a", 4) + token_rows(20, "b/c", 5)})
    raw = {
        "data": {
            "train": str(tmp_path / "train"),
            "eval": str(tmp_path / "val"),
            "cache_dir": str(tmp_path / "cache"),
            "max_length": 8,
        }
    }
    return raw, [r for rows in train.values() for r in rows]
