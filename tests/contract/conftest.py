"""What the contract suites here run against, built fresh for each test.

``backend`` parametrises a suite over the in-process implementation, one Redis server and a
three-master Redis Cluster (real servers from ``tests/redis_rig.py``); ``redis_config`` is the
store config that reaches the backend's Redis.
"""

from __future__ import annotations

import pytest

from router.config.model import StoreConfig
from tests.redis_rig import RedisServer

BACKENDS = ("local", "redis", "cluster")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def redis_config(backend: str, request: pytest.FixtureRequest) -> StoreConfig | None:
    """A ``store`` section naming the backend's (empty) Redis; None for the local backend."""
    if backend == "local":
        return None
    if backend == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return StoreConfig(backend="redis", url=server.url, timeout=5.0)
    url: str = request.getfixturevalue("redis_cluster_url")
    return StoreConfig(backend="redis", url=url, cluster=True, timeout=5.0)
