"""The live feed over SSE against a real web process: resume without gaps or duplicates, pings,
no leaks across connect/disconnect cycles, bad parameters."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import FIXTURES, Stack, start_stack, wait_until

BURST = re.compile(r"^burst (\d+)$")


@pytest.fixture
def lab(redis_url: str, tmp_path: Path) -> Iterator[Stack]:
    stack = start_stack(redis_url, tmp_path, steps_dir=FIXTURES / "lab", WORKBENCH_SSE_PING="1")
    yield stack
    stack.stop()


def read_events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """Parse an SSE stream into {event, id, data} dicts; comments (pings) come out as {"ping": True}."""
    event: dict[str, Any] = {}
    for line in response.iter_lines():
        if line == "":
            if event:
                yield event
            event = {}
        elif line.startswith(":"):
            yield {"ping": True}
        else:
            key, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            event[key] = event.get(key, "") + value if key == "data" else value


def collect_burst(
    stack: Stack, headers: dict[str, str], want: int, seen: list[int], stop_after: int | None
) -> str:
    """Read log events into `seen` (burst indices); returns the last event id read."""
    last = headers.get("last-event-id", "")
    with httpx.Client(base_url=stack.url, timeout=httpx.Timeout(10, read=15)) as client:
        with client.stream("GET", "/_workbench/api/stream", params={"types": "log"}, headers=headers) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            for event in read_events(r):
                if event.get("ping") or "data" not in event:
                    continue
                last = event["id"]
                match = BURST.match(json.loads(event["data"])["message"])
                if match:
                    seen.append(int(match.group(1)))
                if stop_after is not None and len(seen) >= stop_after:
                    break
                if len(set(seen)) >= want:
                    break
    return last


def test_a_client_that_reconnects_with_last_event_id_gets_everything_once(lab: Stack) -> None:
    import threading

    seen: list[int] = []
    last: dict[str, str] = {}

    def first_half() -> None:
        last["id"] = collect_burst(lab, {}, 1000, seen, stop_after=300)

    reader = threading.Thread(target=first_half)
    reader.start()
    time.sleep(0.5)  # let the reader connect before the burst starts
    with lab.client() as client:
        assert client.post("/fire/burst", json={"n": 1000}).status_code == 202
    reader.join(30)
    assert len(seen) == 300 and last["id"]
    # the burst goes on while this client is away; it comes back with the id it got to
    collect_burst(lab, {"last-event-id": last["id"]}, 1000, seen, stop_after=None)
    assert sorted(seen) == list(range(1000))
    assert len(seen) == 1000  # none twice


def test_idle_streams_get_pings_and_bad_parameters_get_400(lab: Stack) -> None:
    with httpx.Client(base_url=lab.url, timeout=10) as client:
        with client.stream("GET", "/_workbench/api/stream") as r:
            events = read_events(r)
            assert next(events) == {"ping": True}  # the "connected" comment, at once
            started = time.monotonic()
            assert next(events) == {"ping": True}  # then a ping while nothing happens
            assert 0.5 < time.monotonic() - started < 3
        assert client.get("/_workbench/api/stream", params={"types": "bogus"}).status_code == 400
        assert client.get("/_workbench/api/stream", params={"trace_id": "../x"}).status_code == 400
        assert client.get("/_workbench/api/stream", params={"color": "red"}).status_code == 400
        assert client.get("/_workbench/api/stream", headers={"last-event-id": "yesterday"}).status_code == 400
        assert client.get("/_workbench/stream", params={"view": "nope"}).status_code == 400


def test_filters_by_type_and_trace(lab: Stack) -> None:
    with lab.client() as client:
        before = client.post("/fire/chatty").json()["traceId"]
        wait_until(lambda: client.get(f"/_workbench/api/traces/{before}").json()["status"] == "completed")
        other = client.post("/fire/chatty").json()["traceId"]
        wait_until(lambda: client.get(f"/_workbench/api/traces/{other}").json()["status"] == "completed")
        with client.stream(
            "GET",
            "/_workbench/api/stream",
            params={"trace_id": other, "types": "span,trace", "lastEventId": "0-0"},
        ) as r:
            events = []
            for event in read_events(r):
                if "data" in event:
                    events.append(event)
                    data = json.loads(event["data"])
                    if event["event"] == "trace" and data["status"] == "completed":
                        break
    assert {e["event"] for e in events} == {"span", "trace"}
    for e in events:
        data = json.loads(e["data"])
        assert (data["id"] if e["event"] == "trace" else data["traceId"]) == other


def test_connect_disconnect_cycles_leave_nothing_behind(lab: Stack, sync_redis: Any) -> None:
    with lab.client() as client:
        baseline = client.get("/_workbench/api/health").json()["web"]
        redis_clients = len(sync_redis.client_list())
        for _ in range(100):
            with client.stream("GET", "/_workbench/api/stream") as r:
                next(read_events(r))  # connected (first ping)
        after = wait_until(
            lambda: (h := client.get("/_workbench/api/health").json()["web"])["sseClients"] == 0 and h,
            message="clients released",
        )
        assert after["tasks"] <= baseline["tasks"] + 2, (baseline, after)
        assert len(sync_redis.client_list()) <= redis_clients + 2
