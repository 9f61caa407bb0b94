"""Memory pressure of a Redis with a `maxmemory`: `/readyz` reports it and the header's status dots show
it (an amber dot from 80 %, a red one when full and refusing writes, the figures in the tooltip).
A real stack against a private Redis that the test fills, and the header seen in Chromium."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect
from redis import Redis
from redis.exceptions import OutOfMemoryError, ResponseError

from workbench.redis_server import RedisServer
from workbench.web.health import MemoryPressure, memory_pressure

from .conftest import Stack, start_stack, wait_until
from .test_ui import UI, browser, open_ui  # noqa: F401  (fixtures)

SHOTS = Path("/work/notes/shots")


@pytest.fixture
def small(tmp_path: Path) -> Iterator[tuple[Stack, Redis]]:
    server = RedisServer().start()
    stack = start_stack(server.url, tmp_path)
    admin = Redis.from_url(server.url, decode_responses=True)
    try:
        with stack.client() as c:
            wait_until(lambda: c.get("/readyz").json().get("workers") == 1, 20, message="web and worker")
        admin.config_set("maxmemory-policy", "noeviction")
        yield stack, admin
    finally:
        admin.close()
        stack.stop()
        server.stop()


def fill_to(admin: Redis, fraction: float) -> None:
    """Store filler values until Redis uses `fraction` of its maxmemory."""
    limit = int(admin.config_get("maxmemory")["maxmemory"])
    n = 0
    while int(admin.info("memory")["used_memory"]) < fraction * limit:
        admin.set(f"filler:{n}", "x" * 20_000)
        n += 1


def fill_past_the_limit(admin: Redis) -> None:
    """What a batch of trace records can do: a script that starts under maxmemory runs to its end
    past it (Redis refuses scripts only before their first write), leaving Redis full."""
    admin.eval("for i = 1, 150 do redis.call('SET', 'filler:s' .. i, string.rep('x', 20000)) end", 0)
    used, limit = int(admin.info("memory")["used_memory"]), int(admin.config_get("maxmemory")["maxmemory"])
    assert used > limit
    with pytest.raises((OutOfMemoryError, ResponseError), match="maxmemory"):
        admin.set("one-more", "x")


def shot(ui: UI, name: str) -> None:
    ui.screenshot(name)
    SHOTS.mkdir(parents=True, exist_ok=True)
    ui.page.locator("#status").screenshot(path=str(SHOTS / f"memory-status-{name}.png"))


def test_the_header_dots_and_readiness_show_redis_filling_up(
    small: tuple[Stack, Redis],
    open_ui: Callable[..., UI],  # noqa: F811
) -> None:
    stack, admin = small
    ui = open_ui(stack.url)
    ui.goto("/_workbench/")
    expect(ui.page.locator("#status")).to_contain_text("Redis ok")
    assert ui.page.locator("#redis-memory").count() == 0  # no maxmemory: nothing to show
    admin.config_set("maxmemory", int(admin.info("memory")["used_memory"]) + 8_000_000)

    dot = ui.page.locator("#redis-memory")
    expect(dot).to_have_class("dot-wrap ok")  # some room: a green dot with the figure
    expect(dot).to_contain_text("memory")
    with stack.client() as c:
        body = c.get("/readyz").json()
    assert body["status"] == "ready" and body["memory"]["pressure"] == "ok"

    fill_to(admin, 0.85)
    expect(dot).to_have_class("dot-wrap warn")
    expect(dot).to_contain_text("Redis memory 8")  # 85-89 %
    assert "MiB of" in (dot.get_attribute("title") or "") and "noeviction" in (
        dot.get_attribute("title") or ""
    )
    shot(ui, "high")
    with stack.client() as c:
        ready = c.get("/readyz")
    assert ready.status_code == 200 and ready.json()["memory"]["pressure"] == "high"  # still takes writes
    assert 80 <= ready.json()["memory"]["percent"] < 100

    fill_past_the_limit(admin)
    expect(dot).to_have_class("dot-wrap bad")
    expect(dot).to_have_text("Redis full: writes refused")
    assert "writes are refused" in (dot.get_attribute("title") or "")
    expect(ui.page.locator("#status")).not_to_contain_text("Redis ok")
    shot(ui, "full")
    with stack.client() as c:
        full = c.get("/readyz")
    assert full.status_code == 503 and full.json()["redis"] == "out of memory"
    assert full.json()["memory"]["pressure"] == "full"

    for key in admin.scan_iter("filler:*"):  # room again: back to green by itself
        admin.delete(key)
    expect(dot).to_have_class("dot-wrap ok")
    expect(ui.page.locator("#status")).to_contain_text("Redis ok")
    ui.check()


@pytest.mark.parametrize(
    ("used", "policy", "level"),
    [
        (79, "noeviction", "ok"),
        (80, "noeviction", "high"),
        (99, "volatile-lru", "high"),
        (100, "noeviction", "full"),
        (100, "volatile-ttl", "full"),
        (100, "allkeys-lru", "high"),  # evicting keys to make room: writes still go in
    ],
)
def test_memory_pressure_levels(used: int, policy: str, level: str) -> None:
    pressure = memory_pressure({"used_memory": used * 1000, "maxmemory": 100_000, "maxmemory_policy": policy})
    assert pressure is not None and pressure.level == level
    assert pressure.to_json()["percent"] == used
    assert memory_pressure({"used_memory": 5, "maxmemory": 0}) is None
    assert "evicted" in MemoryPressure(200, 100, "allkeys-lru").describe()
