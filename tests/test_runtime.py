"""The step contract end to end in one process: API requests and responses, emits and their
fan-out, undeclared emits, and `ctx.state`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from workbench.registry import Registry, discover
from workbench.runtime import Runtime
from workbench.settings import Settings
from workbench.web.app import create_app

from .conftest import FIXTURES, drain, make_settings


@pytest.fixture
def apis(redis_url: str) -> tuple[Settings, Registry]:
    settings = make_settings(redis_url, FIXTURES / "apis")
    return settings, discover(settings.steps_dir)


@pytest.fixture
async def client(apis: tuple[Settings, Registry]) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(create_app(*apis)) as c:
        yield c


async def test_api_handlers_get_path_query_headers_and_body_and_set_status_body_headers(
    client: AsyncTestClient[Any],
) -> None:
    r = await client.post("/echo/hi", params={"times": "3"}, headers={"x-agent": "tests"}, json={"a": [1, 2]})
    assert r.status_code == 200
    body = r.json()
    assert body["word"] == "hi" and body["query"] == {"times": "3"} and body["agent"] == "tests"
    assert body["body"] == {"a": [1, 2]} and body["method"] == "POST" and body["path"] == "/echo/hi"
    assert r.headers["x-echo"] == "hi" and r.headers["x-trace-id"] == body["traceId"]
    r = await client.get("/dict")
    assert r.status_code == 418 and r.json() == {"teapot": True} and r.headers["x-kind"] == "dict"


async def test_a_handler_error_is_a_500_with_the_trace_and_a_failed_trace(
    client: AsyncTestClient[Any],
) -> None:
    for how, kind in (
        ("raise", "KeyError"),
        ("badreturn", "InvalidResponse"),  # a TypeError: the answer HTTP cannot carry
        ("undeclared", "UndeclaredEmitError"),
    ):
        r = await client.get(f"/broken/{how}")
        assert r.status_code == 500
        assert r.json()["error"] == "Internal server error" and "Traceback" not in r.text
        trace = (await client.get(f"/_workbench/api/traces/{r.json()['traceId']}")).json()
        assert trace["status"] == "failed" and trace["spanList"][0]["error"]["type"] == kind


async def test_a_handler_raising_an_http_error_answers_it_and_closes_its_span(
    client: AsyncTestClient[Any],
) -> None:
    r = await client.get("/guarded")
    assert r.status_code == 401 and r.json()["error"] == "no entry"
    trace = (await client.get("/_workbench/api/traces?entry=Guarded")).json()["traces"][0]
    assert trace["status"] == "completed"  # a 4xx is an answer, not a failure; the span is closed
    full = (await client.get(f"/_workbench/api/traces/{trace['id']}")).json()
    assert full["spanList"][0]["http"]["status"] == 401 and full["spanList"][0]["status"] == "completed"


async def test_emitting_an_undeclared_topic_says_which_and_what_is_declared(
    client: AsyncTestClient[Any],
) -> None:
    r = await client.get("/broken/undeclared")
    trace = (await client.get(f"/_workbench/api/traces/{r.json()['traceId']}")).json()
    message = trace["spanList"][0]["error"]["message"]
    assert "'Broken' emitted 'not.declared'" in message and "declared: fan" in message


async def test_each_subscriber_gets_its_own_job_and_fails_on_its_own(
    client: AsyncTestClient[Any], apis: tuple[Settings, Registry], sync_redis: Any
) -> None:
    r = await client.get("/broken/fan")
    trace_id = r.headers["x-trace-id"]
    await drain(*apis)
    assert sync_redis.hgetall("wb:state:fan") == {"a1": "1", "a2": "1"}  # A ran once per emit
    trace = (await client.get(f"/_workbench/api/traces/{trace_id}")).json()
    by_step: dict[str, list[str]] = {}
    for span in trace["spanList"][1:]:
        by_step.setdefault(span["step"], []).append(span["status"])
    assert by_step == {"FanA": ["completed", "completed"], "FanB": ["failed", "failed"]}
    assert trace["status"] == "failed" and trace["spans"] == 5
    letters = (await client.get("/_workbench/api/dead-letters")).json()["deadLetters"]
    assert sorted((x["step"], x["data"]["n"]) for x in letters) == [("FanB", 1), ("FanB", 2)]


async def test_emit_to_a_topic_nobody_subscribes_to_is_recorded(runtime: Runtime) -> None:
    trace_id, emitted = await runtime.emit_new_trace("pet.status.changed", {"petId": "1"})
    assert emitted.subscribers == [] and emitted.job_ids == []
    trace = await runtime.store.get_trace(trace_id)
    assert trace is not None and trace["status"] == "completed"
    assert trace["spanList"][0]["events"][0]["subscribers"] == []


async def test_state_get_set_delete_group_clear_increment_update(runtime: Runtime) -> None:
    state = runtime.state
    assert await state.get("g", "k") is None
    await state.set("g", "k", {"n": 1, "s": "é"})
    await state.set("g", "j", [1, 2])
    assert await state.get("g", "k") == {"n": 1, "s": "é"}
    assert await state.get_group("g") == {"k": {"n": 1, "s": "é"}, "j": [1, 2]}
    assert await state.groups() == ["g"]
    assert await state.delete("g", "j") is True and await state.delete("g", "j") is False
    assert await state.increment("c", "x") == 1 and await state.increment("c", "x", 5) == 6
    assert await state.update("g", "k", lambda old: {**old, "n": old["n"] + 1}) == {"n": 2, "s": "é"}
    assert await state.update("g", "missing", lambda old: None) is None
    await state.clear("g")
    assert await state.get_group("g") == {} and await state.groups() == ["c"]
