"""A full Redis (maxmemory with noeviction): the client is told Redis is out of memory (not that it
cannot be reached), and nothing half-done is left: no pet stored without its jobs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from workbench.redis_server import RedisServer

from .conftest import Stack, start_stack, wait_until


@pytest.fixture
def full(tmp_path: Path) -> Iterator[tuple[Stack, Redis]]:
    server = RedisServer().start()
    stack = start_stack(server.url, tmp_path)
    client = Redis.from_url(server.url, decode_responses=True)
    try:
        with stack.client() as c:
            wait_until(lambda: c.get("/_workbench/api/health").status_code == 200, 20, message="web")
        yield stack, client
    finally:
        client.close()
        stack.stop()
        server.stop()


def test_a_full_redis_is_named_as_full_and_nothing_is_half_done(full: tuple[Stack, Redis]) -> None:
    stack, redis = full
    redis.config_set("maxmemory-policy", "noeviction")
    redis.config_set("maxmemory", 1)  # every write is refused from now on
    with stack.client() as client:
        response = client.post("/pets", json={"name": "Jack", "species": "dog", "ageMonths": 1})
    assert response.status_code == 503
    assert "out of memory" in response.json()["error"] and "cannot be reached" not in response.json()["error"]
    with stack.client() as client:
        for _ in range(20):  # a burst against the full Redis: each one refused, none half-done
            assert (
                client.post("/pets", json={"name": "A", "species": "cat", "ageMonths": 2}).status_code == 503
            )
    redis.config_set("maxmemory", 0)  # room again: what waited is written, and every trace closes
    assert redis.hgetall("wb:state:pets") == {}
    assert redis.zcard("wb:queue") == 0
    with stack.client() as client:

        def all_closed() -> bool:
            traces = client.get("/_workbench/api/traces", params={"limit": 100}).json()["traces"]
            return len(traces) == 21 and all(t["status"] == "failed" for t in traces)

        wait_until(all_closed, 20, message="the refused requests' traces to be written and closed")
    said = [line for line in stack.web.output().splitlines() if "trace records" in line]
    assert 1 <= len(said) <= 3, said  # said once in a while, not for every batch
