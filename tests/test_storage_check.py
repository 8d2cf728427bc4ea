"""A multi-node cluster without shared storage is refused before anything trains."""

import pytest

from skillit_ray.cluster import require_shared_storage, require_worker_resources
from skillit_ray.errors import ConfigError

HEAD = {"NodeID": "a", "Alive": True}
WORKER = {"NodeID": "b", "Alive": True}
GONE = {"NodeID": "c", "Alive": False}


def test_two_live_nodes_need_storage_path():
    with pytest.raises(ConfigError, match=r"2 nodes, and a run writes checkpoints") as err:
        require_shared_storage(None, [HEAD, WORKER, GONE], "a run")
    assert "--set run.storage_path=" in str(err.value)


@pytest.mark.parametrize(
    "storage, nodes",
    [
        (None, [HEAD]),
        (None, [HEAD, GONE]),
        ("/shared/x", [HEAD, WORKER]),
        ("s3://b/x", [HEAD, WORKER]),
    ],
)
def test_one_node_or_shared_storage_passes(storage, nodes):
    require_shared_storage(storage, nodes, "a sweep")


SLOTTED = [
    {"NodeID": "a", "Alive": True, "Resources": {"CPU": 2.0, "slot": 1.0}},
    {"NodeID": "b", "Alive": True, "Resources": {"CPU": 2.0, "slot": 1.0}},
    {"NodeID": "c", "Alive": False, "Resources": {"CPU": 2.0, "slot": 1.0}},
]


def test_worker_resources_must_fit_the_live_nodes():
    require_worker_resources({"slot": 1}, 2, SLOTTED)
    require_worker_resources({"slot": 0.5}, 4, SLOTTED)
    with pytest.raises(ConfigError, match=r"worker_resources.slot=1 .* room for 2 of the 3"):
        require_worker_resources({"slot": 1}, 3, SLOTTED)  # the dead node does not count
    # 0.6 + 0.6 would cover 1.2 in sum, but no node holds a whole worker's 0.7
    half = [{**n, "Resources": {"slot": 0.6}} for n in SLOTTED[:2]]
    with pytest.raises(ConfigError, match=r"room for 0 of the 1 workers.*--resources"):
        require_worker_resources({"slot": 0.7}, 1, half)


@pytest.mark.parametrize(
    "value, message",
    [
        ({"CPU": 1}, "'CPU' is set by train.cpus_per_worker"),
        ({"slot": 0}, r"train.worker_resources.slot must be a number > 0, got 0"),
        ({"slot": "one"}, r"must be a number > 0, got 'one'"),
    ],
)
def test_worker_resources_config_is_checked(value, message):
    from skillit_ray import config
    from tests.conftest import tiny_lego

    raw = tiny_lego("/tmp/unused")
    raw["train"]["worker_resources"] = value
    with pytest.raises(ConfigError, match=message):
        config.validate(config.from_dict(raw))


def test_token_cache_on_several_nodes_goes_to_storage(tmp_path):
    """The default cache folder is the driver's own disk; on a cluster of several nodes the
    cache moves under run.storage_path (a local folder or a URI), unless data.token_cache
    names one."""
    from types import SimpleNamespace

    from skillit_ray import config
    from skillit_ray.data.cache import location, shared_location
    from tests.conftest import tiny_lego

    files = SimpleNamespace(files=["/d/train/0.parquet"])
    data = SimpleNamespace(train=files, eval=files, max_len=8, tokenizer=None)
    cfg = config.from_dict(tiny_lego(str(tmp_path / "cache")))
    local = location(cfg, data)
    assert local.startswith(str(tmp_path / "cache" / "tokens"))
    assert shared_location(cfg, data) == local  # no storage_path: nowhere else to go
    cfg.run.storage_path = str(tmp_path / "shared")
    key = local.rsplit("/", 1)[1]
    assert shared_location(cfg, data) == str(tmp_path / "shared" / "tokens" / key)
    cfg.run.storage_path = "s3://bucket/runs/"
    assert shared_location(cfg, data) == f"s3://bucket/runs/tokens/{key}"
    cfg.data.token_cache = "/mnt/tokens"
    assert shared_location(cfg, data) == "/mnt/tokens"
