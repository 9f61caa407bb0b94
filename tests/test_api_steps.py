"""web/api_steps.py: however an API step's handler ends, its span ends one way — the HTTP status it
answered, failed on a 5xx (then the trace's failure and error counters count it), completed else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from workbench.registry import discover
from workbench.web.app import create_app

from .conftest import make_settings, write_step

ENDINGS = """
from litestar.exceptions import HTTPException
from redis.exceptions import ConnectionError as RedisConnectionError

from workbench import ApiResponse

config = {"type": "api", "name": "Ending", "method": "POST", "path": "/end/{how}"}


async def handler(request, ctx):
    how = request.path_params["how"]
    ctx.logger.info("ending", how=how, body=request.body)
    if how == "ok":
        return ApiResponse(201, {"got": request.body})
    if how == "dict":
        return {"status": 503, "body": {"busy": True}}
    if how == "http404":
        raise HTTPException(status_code=404, detail="no such thing")
    if how == "http502":
        raise HTTPException(status_code=502, detail="upstream")
    if how == "redis":
        raise RedisConnectionError("redis went away")
    raise ValueError("kaboom")
"""

CASES = [
    # how, HTTP status answered, span status, trace status, error type kept on the span
    ("ok", 201, "completed", "completed", None),
    ("dict", 503, "failed", "failed", None),
    ("http404", 404, "completed", "completed", None),
    ("http502", 502, "failed", "failed", None),
    ("redis", 503, "failed", "failed", "ConnectionError"),
    ("raise", 500, "failed", "failed", "ValueError"),
]


@pytest.fixture
async def client(redis_url: str, tmp_path: Path) -> AsyncIterator[AsyncTestClient[Any]]:
    write_step(tmp_path / "steps", "ending", ENDINGS)
    settings = make_settings(redis_url, tmp_path / "steps")
    async with AsyncTestClient(create_app(settings, discover(settings.steps_dir))) as c:
        yield c


@pytest.mark.parametrize(("how", "http_status", "span_status", "trace_status", "error"), CASES)
async def test_every_way_a_handler_ends_ends_its_span_once(
    client: AsyncTestClient[Any], how: str, http_status: int, span_status: str, trace_status: str,
    error: str | None,
) -> None:  # fmt: skip
    r = await client.post(f"/end/{how}", json={"n": 1})
    assert r.status_code == http_status, r.text
    listed = (await client.get("/_workbench/api/traces", params={"step": "Ending"})).json()["traces"]
    assert len(listed) == 1
    trace = (await client.get(f"/_workbench/api/traces/{listed[0]['id']}")).json()
    # a raised HTTP or Redis error is answered by the app's exception handlers, without the trace id
    assert r.headers.get("x-trace-id") == (None if how in ("http404", "http502", "redis") else trace["id"])
    (span,) = trace["spanList"]
    assert span["http"] == {"method": "POST", "path": f"/end/{how}", "status": http_status}
    assert span["status"] == span_status and span["finishedAt"] >= span["startedAt"]
    assert (span["error"] or {}).get("type") == error
    failed = 1 if http_status >= 500 else 0
    assert (trace["status"], trace["failed"], trace["errors"]) == (trace_status, failed, failed)
    # the handler got the parsed body and ran inside the span: its log line is there
    logs = [(e["message"], e["fields"]) for e in span["events"] if e["kind"] == "log"]
    assert logs[0] == ("ending", {"how": how, "body": {"n": 1}})
    assert len(logs) == (2 if how == "raise" else 1)
    if how == "raise":  # the unhandled error is logged in the span too, with its traceback
        assert logs[1][0].startswith("Unhandled error in Ending\nTraceback") and "kaboom" in logs[1][0]
        assert r.json() == {"error": "Internal server error", "step": "Ending", "traceId": trace["id"]}


async def test_a_malformed_body_is_a_400_before_any_trace(client: AsyncTestClient[Any]) -> None:
    r = await client.post("/end/ok", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "body: not valid JSON" in r.text
    assert (await client.get("/_workbench/api/traces")).json()["traces"] == []
    r = await client.post("/end/ok")  # no body at all: the handler gets None
    assert r.status_code == 201 and r.json() == {"got": None}
