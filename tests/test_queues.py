"""Queue controls against real processes: the queues API's numbers per step, pause (jobs stay
queued, parked by the claim) and resume (they run), purge with its confirmation, a paused cron
step's ticks recorded as skipped, unknown steps in the API and the CLI, and the page itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis as SyncRedis

from .conftest import Stack, start_stack, wait_until, write_step
from .test_cancel import API, H, cli, go, running_span, spans, steps_folder, trace_of

TICK = """
config = {"type": "cron", "name": "Tick", "cron": "* * * * * *"}

async def handler(ctx):
    ctx.logger.info("tick")
"""


@pytest.fixture
def lab(redis_url: str, tmp_path: Path, sync_redis: SyncRedis) -> Iterator[Stack]:
    sync_redis.flushdb()
    folder = steps_folder(tmp_path)
    write_step(folder, "tick", TICK)
    stack = start_stack(redis_url, tmp_path, steps_dir=folder)
    yield stack
    stack.stop()


def row(client: Any, step: str) -> dict[str, Any]:
    rows = client.get(f"{API}/queues").json()["queues"]
    return next(r for r in rows if r["step"] == step)


def test_pause_keeps_jobs_queued_and_resume_runs_them(lab: Stack, sync_redis: SyncRedis) -> None:
    with lab.client() as client:
        r = client.post(f"{API}/queues/Hold/pause", headers=H)
        assert r.status_code == 200 and r.json() == {"step": "Hold", "paused": True, "changed": True}
        traces = [go(client, "hold", {"id": f"p{i}"}) for i in range(2)]
        wait_until(lambda: sync_redis.zcard("wb:parked") == 2, 20, message="both parked")
        hold = row(client, "Hold")
        assert (hold["paused"], hold["ready"], hold["running"], hold["parked"]) == (True, 2, 0, 2)
        assert hold["oldestWaitMs"] is not None and hold["oldestWaitMs"] >= 0
        assert all(spans(trace_of(client, t), "Hold") == [] for t in traces)  # none started
        assert "Hold" in client.get("/_workbench/queues/paused").text  # the header's block
        r = client.post(f"{API}/queues/Hold/resume", headers=H)
        assert r.json() == {"step": "Hold", "paused": False, "changed": True, "requeued": 2}
        running_span(client, traces[0], "Hold")
        running_span(client, traces[1], "Hold")
        assert row(client, "Hold")["running"] == 2
        sync_redis.set("test:gate:p0", 1)
        sync_redis.set("test:gate:p1", 1)
        wait_until(lambda: all(trace_of(client, t)["status"] == "completed" for t in traces), 20)
        wait_until(lambda: row(client, "Hold")["runsPerMinute"] >= 2, 10, message="runs counted")


def test_purge_needs_its_confirmation_and_cancels_the_waiting_jobs(lab: Stack, sync_redis: SyncRedis) -> None:
    with lab.client() as client:
        client.post(f"{API}/queues/Hold/pause", headers=H)
        traces = [go(client, "hold", {"id": f"x{i}"}) for i in range(3)]
        wait_until(lambda: sync_redis.zcard("wb:parked") == 3, 20)
        r = client.post(f"{API}/queues/Hold/purge", headers=H)
        assert r.status_code == 400 and "confirm" in r.json()["detail"]
        r = client.post(f"{API}/queues/Hold/purge", params={"confirm": "Hold"}, headers=H)
        assert r.status_code == 200 and r.json()["purged"] == 3
        for t in traces:
            trace = trace_of(client, t)
            assert trace["status"] == "cancelled" and [s["status"] for s in spans(trace, "Hold")] == [
                "cancelled"
            ]
        assert sync_redis.zcard("wb:parked") == 0 and row(client, "Hold")["ready"] == 0


def test_a_paused_cron_step_records_its_ticks_as_skipped(lab: Stack) -> None:
    with lab.client() as client:
        client.post(f"{API}/queues/Tick/pause", headers=H)

        def skipped() -> list[dict[str, Any]]:
            found = client.get(f"{API}/traces", params={"entry": "Tick"}).json()["traces"]
            return [t for t in found if "skipped" in t["label"]]

        first = wait_until(skipped, 10, message="a skipped tick")[0]
        span = trace_of(client, first["id"])["spanList"][0]
        assert span["status"] == "skipped" and span["error"]["type"] == "Paused"


def test_unknown_steps_are_404s_and_the_cli_says_so(lab: Stack) -> None:
    with lab.client() as client:
        for action in ("pause", "resume"):
            r = client.post(f"{API}/queues/Nope/{action}", headers=H)
            assert r.status_code == 404 and "no background step named 'Nope'" in r.json()["detail"]
        r = client.post(f"{API}/queues/Go/pause", headers=H)  # an API step has no queue
        assert r.status_code == 404
        page = client.get("/_workbench/queues")
        assert page.status_code == 200 and 'id="queue-Hold"' in page.text
    out = cli(lab, "pause", "Hold")
    assert out.returncode == 0 and out.stdout.strip() == "Hold paused", out.stderr
    out = cli(lab, "queues")
    assert out.returncode == 0 and "Hold" in out.stdout and "(paused)" in out.stdout
    out = cli(lab, "resume", "Hold")
    assert out.returncode == 0 and out.stdout.startswith("Hold resumed")
    bad = cli(lab, "pause", "Nope")
    assert bad.returncode == 1 and "no background step named 'Nope'" in bad.stderr


# --- in the browser (Debian's Chromium) ------------------------------------------------------------


def test_browser_cancel_a_running_job_and_pause_resume_a_step(lab: Stack, sync_redis: SyncRedis) -> None:
    from playwright.sync_api import expect, sync_playwright

    from .test_ui import CHROMIUM, LAUNCH_ARGS

    with lab.client() as client, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        page = browser.new_page()
        page.on("dialog", lambda dialog: dialog.accept())  # hx-confirm
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            trace_id = go(client, "hold", {"id": "ui"})
            span = running_span(client, trace_id, "Hold")
            page.goto(f"{lab.url}/_workbench/traces/{trace_id}?span={span['id']}")
            page.click("#cancel-span")
            expect(page.locator(".trace-head .pill")).to_have_text("⊘ cancelled", timeout=15_000)
            assert spans(trace_of(client, trace_id), "Hold")[0]["status"] == "cancelled"

            page.goto(f"{lab.url}/_workbench/queues")
            page.click("#queue-Hold .pause-toggle")
            expect(page.locator("#queue-Hold .pause-toggle")).to_have_text("Resume")
            expect(page.locator("#paused-steps")).to_contain_text("Hold")
            waiting = go(client, "hold", {"id": "ui2"})
            wait_until(lambda: sync_redis.zcard("wb:parked") == 1, 20)
            page.reload()
            expect(page.locator("#queue-Hold td.num").first).to_have_text("1")  # ready, not started
            page.click("#queue-Hold .pause-toggle")
            expect(page.locator("#queue-Hold .pause-toggle")).to_have_text("Pause")
            running_span(client, waiting, "Hold")
            sync_redis.set("test:gate:ui2", 1)
            wait_until(lambda: trace_of(client, waiting)["status"] == "completed", 20)
            assert errors == []
        finally:
            browser.close()
