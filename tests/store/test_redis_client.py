"""Tests for router.store.redis_client and router.runtime.redis_connection against real Redis."""

from __future__ import annotations

import pytest
from redis.exceptions import RedisClusterException

from router import appkeys as keys
from router.config.model import StoreConfig
from router.runtime.redis_connection import RedisUnavailable
from router.store.redis_client import connect
from tests.conftest import ProxyFactory, sim_provider
from tests.redis_rig import RedisServer, free_port

SECRET = {"link_secret": "one-secret-for-the-fleet"}


async def test_a_client_talks_to_one_server(redis_server: RedisServer) -> None:
    client = connect(StoreConfig(backend="redis", url=redis_server.url))
    try:
        assert await client.set("greeting", b"hello")
        assert await client.get("greeting") == b"hello"  # bytes: nothing decoded
    finally:
        await client.aclose()


async def test_a_cluster_client_reaches_keys_on_every_master(redis_cluster_url: str) -> None:
    client = connect(StoreConfig(backend="redis", url=redis_cluster_url, cluster=True))
    try:
        names = [f"key-{n}" for n in range(30)]  # spread over the slots of all three
        for name in names:
            await client.set(name, name)
        assert [await client.get(name) for name in names] == [n.encode() for n in names]
    finally:
        await client.aclose()


async def test_a_cluster_client_on_a_missing_cluster_fails_at_first_use() -> None:
    client = connect(
        StoreConfig(backend="redis", url=f"redis://127.0.0.1:{free_port()}", cluster=True)
    )
    with pytest.raises(RedisClusterException):
        await client.ping()
    await client.aclose()


def test_connect_refuses_the_sqlite_backend() -> None:
    with pytest.raises(ValueError, match="not redis"):
        connect(StoreConfig())


async def test_the_app_holds_a_pinged_client_with_the_redis_backend(
    redis_server: RedisServer, proxy_factory: ProxyFactory
) -> None:
    proxy = await proxy_factory(
        [sim_provider("sim")],
        server=SECRET,
        store={"backend": "redis", "url": redis_server.url},
    )

    assert await proxy.app[keys.REDIS].ping()


async def test_the_app_has_no_redis_client_with_the_sqlite_backend(
    proxy_factory: ProxyFactory,
) -> None:
    proxy = await proxy_factory([sim_provider("sim")])

    assert keys.REDIS not in proxy.app


async def test_start_up_stops_with_a_clear_error_when_redis_is_not_there(
    proxy_factory: ProxyFactory,
) -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}"

    with pytest.raises(RedisUnavailable) as caught:
        await proxy_factory(
            [sim_provider("sim")], server=SECRET, store={"backend": "redis", "url": url}
        )

    assert "store.url: Redis does not answer" in str(caught.value)
    assert "hunter2" not in str(caught.value)
