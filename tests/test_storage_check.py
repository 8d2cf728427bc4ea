"""A multi-node cluster without shared storage is refused before anything trains."""

import pytest

from skillit_ray.cluster import require_shared_storage
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
