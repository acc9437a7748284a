"""Tests for tests/redis_rig.py: the real servers other tests build on start, answer and stop."""

from __future__ import annotations

from pathlib import Path

from tests.redis_rig import RedisCluster, RedisServer, ask, start_server


def test_a_server_answers_on_its_port_and_stops_by_pid(tmp_path: Path) -> None:
    server = start_server(tmp_path / "one")
    try:
        assert ask(server.port, "SET", "greeting", "hello") == "OK"
        assert ask(server.port, "GET", "greeting") == "hello"
        process = server.process
        assert process is not None and process.pid == server.pid
    finally:
        server.stop()
    assert process.poll() is not None
    server.stop()  # a second stop is harmless


def test_a_killed_server_restarts_on_its_port_with_its_append_only_file(
    tmp_path: Path,
) -> None:
    server = start_server(tmp_path / "aof", "--appendonly", "yes", "--appendfsync", "always")
    try:
        assert ask(server.port, "SET", "kept", "1") == "OK"
        server.kill()
        assert ask(server.port, "PING") != "PONG"
        server.start()
        assert ask(server.port, "GET", "kept") == "1"
    finally:
        server.stop()


def test_the_redis_server_fixture_is_fresh(redis_server: RedisServer) -> None:
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}"
    assert ask(redis_server.port, "DBSIZE") == "0"


def test_the_cluster_has_three_masters_covering_every_slot(
    redis_cluster: RedisCluster, redis_cluster_url: str
) -> None:
    info = ask(redis_cluster.ports[0], "CLUSTER", "INFO")

    assert "cluster_state:ok" in info
    assert "cluster_slots_assigned:16384" in info
    assert "cluster_known_nodes:3" in info
    assert redis_cluster_url == redis_cluster.url
    assert all(ask(port, "DBSIZE") == "0" for port in redis_cluster.ports)
