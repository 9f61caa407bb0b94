"""The trace page shows a long span's events a page at a time (WORKBENCH_SPAN_PAGE_ROWS, 200): "show more"
loads the next page in place, a refresh of the waterfall keeps the pages loaded, and a running span's
new lines keep arriving. Seen in Chromium against a real web process running a step that logs a lot."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect
from redis import Redis

from .conftest import Stack, start_stack, wait_until, write_step
from .test_ui import UI, browser, open_ui  # noqa: F401  (fixtures)

SHOTS = Path("/work/notes/shots")

CHATTY = """
import asyncio
import os

from redis.asyncio import Redis

config = {"type": "api", "name": "Chatty", "method": "POST", "path": "/chatty/{n}"}


async def handler(request, ctx):
    n = int(request.path_params["n"])
    for i in range(n):
        ctx.logger.info(f"line {i:04d}", i=i)
    if request.query_params.get("wait"):  # stay running until the test says go, then log as many again
        redis = Redis.from_url(os.environ["REDIS_URL"])
        while not await redis.get("test:go"):
            await asyncio.sleep(0.02)
        await redis.aclose()
        for i in range(n, 2 * n):
            ctx.logger.info(f"line {i:04d}", i=i)
    return {"status": 200, "body": {"logged": n}}
"""


@pytest.fixture
def chatty(redis_url: str, tmp_path: Path) -> Iterator[Stack]:
    write_step(tmp_path / "steps", "chatty", CHATTY)
    stack = start_stack(redis_url, tmp_path, steps_dir=tmp_path / "steps", workers=0)
    yield stack
    stack.stop()


def lines_shown(ui: UI) -> list[str]:
    """The log lines in the selected span's event list, top to bottom."""
    return ui.page.eval_on_selector_all(
        "#span-detail table.events tr.ev-log td:nth-child(3)", "cells => cells.map(c => c.textContent.trim())"
    )


def expected(n: int) -> list[str]:
    return [f"line {i:04d} i={i}" for i in range(n)]


def test_a_span_of_1000_lines_is_shown_a_page_at_a_time(chatty: Stack, open_ui: Callable[..., UI]) -> None:  # noqa: F811
    with chatty.client() as c:
        response = c.post("/chatty/1000")
    assert response.status_code == 200
    trace_id = response.headers["x-trace-id"]
    ui = open_ui(chatty.url)
    ui.goto(f"/_workbench/traces/{trace_id}")
    rows = ui.page.locator("#span-detail table.events tr.ev-log")
    more = ui.page.locator("#span-detail tr.more-events button")
    expect(rows).to_have_count(200)
    expect(more).to_have_text("show more (800 more)")
    assert lines_shown(ui) == expected(200)
    ui.screenshot("first-page")
    more.click()
    expect(rows).to_have_count(400)
    expect(more).to_have_text("show more (600 more)")
    # a refresh of the waterfall (as a live change triggers it) keeps the two pages loaded
    ui.page.evaluate("document.querySelector('#span-detail').dataset.before = '1'")
    ui.page.evaluate("htmx.trigger('#waterfall', 'sse:changed')")
    expect(ui.page.locator("#span-detail[data-before]")).to_have_count(0)  # re-rendered
    expect(rows).to_have_count(400)
    expect(more).to_have_text("show more (600 more)")
    for left in (400, 200, 0):
        more.click()
        expect(rows).to_have_count(1000 - left)
    expect(more).to_have_count(0)  # all shown: no link left
    assert lines_shown(ui) == expected(1000)  # each line once, in order
    ui.page.locator("#span-detail tr.ev-log").nth(999).scroll_into_view_if_needed()
    ui.screenshot("all")
    SHOTS.mkdir(parents=True, exist_ok=True)
    ui.page.goto(ui.url(f"/_workbench/traces/{trace_id}"))
    more.scroll_into_view_if_needed()
    ui.page.screenshot(path=str(SHOTS / "span-log-paging.png"))
    # the page route on its own: a bad offset is a 400 naming it, an offset past the end is no rows
    span_id = ui.page.locator(".wf-row.selected").get_attribute("data-span")
    with chatty.client() as c:
        bad = c.get(f"/_workbench/traces/{trace_id}/spans/{span_id}/events", params={"offset": "x"})
        past = c.get(f"/_workbench/traces/{trace_id}/spans/{span_id}/events", params={"offset": 5000})
    assert bad.status_code == 400 and "offset" in bad.text
    assert past.status_code == 200 and "ev-log" not in past.text
    ui.check()


def test_a_running_span_keeps_adding_lines_until_its_page_is_full_then_counts_them(
    chatty: Stack,
    open_ui: Callable[..., UI],  # noqa: F811
) -> None:
    redis = Redis.from_url(chatty.redis_url, decode_responses=True)
    answer: list[httpx.Response] = []
    request = threading.Thread(
        target=lambda: answer.append(httpx.post(f"{chatty.url}/chatty/150", params={"wait": 1}, timeout=30))
    )
    request.start()
    try:
        trace_id = wait_until(lambda: redis.zrange("wb:traces", 0, 0), message="the trace")[0]
        ui = open_ui(chatty.url)
        ui.goto(f"/_workbench/traces/{trace_id}")
        rows = ui.page.locator("#span-detail table.events tr.ev-log")
        expect(rows).to_have_count(150)  # running, its first 150 lines, no link
        expect(ui.page.locator("#span-detail tr.more-events button")).to_have_count(0)
        redis.set("test:go", "1")  # 150 more lines, then the span ends
        request.join(30)
        assert answer and answer[0].status_code == 200
        more = ui.page.locator("#span-detail tr.more-events button")
        expect(more).to_have_text("show more (100 more)")  # the page filled up to 200, the rest counted
        expect(rows).to_have_count(200)
        more.click()
        expect(rows).to_have_count(300)
        assert lines_shown(ui) == expected(300)
        ui.check()
    finally:
        redis.set("test:go", "1")
        request.join(30)
        redis.close()
