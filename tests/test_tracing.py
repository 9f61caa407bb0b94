"""Traces, spans and their events: capture, derived status, storage queries, retention and restarts."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from workbench.registry import Registry, discover
from workbench.settings import Settings
from workbench.web.app import create_app

from .conftest import FIXTURES, Stack, drain, make_settings, start_stack, wait_until

H = {"x-workbench": "1"}


@pytest.fixture
def lab(redis_url: str) -> tuple[Settings, Registry]:
    settings = make_settings(redis_url, FIXTURES / "lab")
    return settings, discover(settings.steps_dir)


@pytest.fixture
async def pets(settings: Settings, registry: Registry) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(create_app(settings, registry)) as client:
        yield client


@pytest.fixture
async def lab_client(lab: tuple[Settings, Registry]) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(create_app(*lab)) as client:
        yield client


async def get_trace(client: AsyncTestClient[Any], trace_id: str) -> dict[str, Any]:
    r = await client.get(f"/_workbench/api/traces/{trace_id}")
    assert r.status_code == 200, r.text
    return r.json()


def logs_of(span: dict[str, Any]) -> list[str]:
    return [e["message"] for e in span["events"] if e["kind"] == "log"]


async def test_creating_a_pet_gives_one_trace_with_its_spans_and_log_lines(
    pets: AsyncTestClient[Any], settings: Settings, registry: Registry
) -> None:
    r = await pets.post("/pets", json={"name": "Jack", "species": "dog", "ageMonths": 24})
    trace_id = r.headers["x-trace-id"]
    running = await get_trace(pets, trace_id)
    assert running["status"] == "running"  # its background jobs are queued: readable while it runs
    await drain(settings, registry)
    trace = await get_trace(pets, trace_id)
    assert trace["status"] == "completed" and trace["entry"] == "CreatePet" and trace["label"] == "POST /pets"
    steps = [s["step"] for s in trace["spanList"]]
    assert steps[0] == "CreatePet"
    assert steps.index("CreatePet") < steps.index("SetNextFeedingReminder")
    api, reminder = (
        trace["spanList"][0],
        next(s for s in trace["spanList"] if s["step"] == "SetNextFeedingReminder"),
    )
    assert api["kind"] == "api" and api["http"] == {"method": "POST", "path": "/pets", "status": 201}
    assert logs_of(api) == ["Pet created"]
    assert logs_of(reminder) == ["Setting next feeding reminder", "Next feeding reminder set"]
    assert reminder["parentId"] == api["id"] and reminder["topic"] == "feeding.reminder.enqueued"
    assert reminder["enqueuedAt"] <= reminder["startedAt"] <= reminder["finishedAt"]
    emits = [e for e in api["events"] if e["kind"] == "emit"]
    assert [(e["topic"], e["subscribers"]) for e in emits] == [
        ("pet.created", ["PetLifecycleOrchestrator"]),
        ("feeding.reminder.enqueued", ["SetNextFeedingReminder"]),
    ]
    ops = [(e["op"], e["group"]) for e in api["events"] if e["kind"] == "state"]
    assert ("set", "pets") in ops
    assert trace["durationMs"] == trace["end"] - trace["start"] >= 0


async def test_a_handler_that_raises_gives_a_failed_span_with_traceback(
    lab_client: AsyncTestClient[Any], lab: tuple[Settings, Registry]
) -> None:
    trace_id = (await lab_client.post("/fire/boom", json={"n": 7})).json()["traceId"]
    await drain(*lab)
    trace = await get_trace(lab_client, trace_id)
    assert trace["status"] == "failed"
    boom = next(s for s in trace["spanList"] if s["step"] == "Boom")
    assert boom["status"] == "failed" and boom["error"]["type"] == "ValueError"
    assert boom["error"]["message"] == "kaboom 7"
    assert (
        'raise ValueError(f"kaboom' in boom["error"]["traceback"]
        and "boom_step.py" in boom["error"]["traceback"]
    )
    assert trace["error"] == "kaboom 7"
    failed = (await lab_client.get("/_workbench/api/traces", params={"status": "failed"})).json()["traces"]
    assert [t["id"] for t in failed] == [trace_id]


async def test_std_logging_lands_in_the_span_with_fields_and_the_level_threshold_applies(
    lab_client: AsyncTestClient[Any], lab: tuple[Settings, Registry]
) -> None:
    trace_id = (await lab_client.post("/fire/chatty")).json()["traceId"]
    await drain(*lab)
    trace = await get_trace(lab_client, trace_id)
    chatty = next(s for s in trace["spanList"] if s["step"] == "Chatty")
    lines = [(e["level"], e["message"], e["fields"]) for e in chatty["events"] if e["kind"] == "log"]
    assert lines == [
        ("info", "structured", {"answer": 42, "who": "ctx"}),
        ("warning", "from std logging works", {"source": "stdlib"}),
    ]  # the debug line is below the default INFO threshold
    kinds = [e["kind"] for e in chatty["events"]]
    assert kinds == ["log", "log", "state", "state", "emit"]
    emit = chatty["events"][-1]
    assert emit["truncated"] is True and len(emit["payload"]) <= 4096 + 3
    sink = next(s for s in trace["spanList"] if s["step"] == "Sink")
    assert sink["parentId"] == chatty["id"] and logs_of(sink) == ["got it"]


async def test_debug_threshold_keeps_debug_lines(redis_url: str) -> None:
    settings = make_settings(redis_url, FIXTURES / "lab", log_level=10)
    registry = discover(settings.steps_dir)
    async with AsyncTestClient(create_app(settings, registry)) as client:
        trace_id = (await client.post("/fire/chatty")).json()["traceId"]
        await drain(settings, registry)
        chatty = next(s for s in (await get_trace(client, trace_id))["spanList"] if s["step"] == "Chatty")
    assert "debug line (below the default threshold)" in logs_of(chatty)


async def test_retries_are_spans_of_their_own_and_the_trace_completes(
    lab_client: AsyncTestClient[Any], lab: tuple[Settings, Registry]
) -> None:
    trace_id = (await lab_client.post("/fire/flaky", json={"fail": 2})).json()["traceId"]
    await drain(*lab)
    trace = await get_trace(lab_client, trace_id)
    flaky = [s for s in trace["spanList"] if s["step"] == "Flaky"]
    assert [(s["attempt"], s["status"], s["willRetry"]) for s in flaky] == [
        (1, "failed", True),
        (2, "failed", True),
        (3, "completed", False),
    ]
    assert flaky[1]["startedAt"] >= flaky[0]["retryAt"] - 5
    assert trace["status"] == "completed" and trace["errors"] == 2


async def test_traces_api_filters_and_pages(
    pets: AsyncTestClient[Any], settings: Settings, registry: Registry
) -> None:
    ids = []
    for i in range(7):
        r = await pets.post("/pets", json={"name": f"Pet{i}", "species": "cat", "ageMonths": i})
        ids.append(r.headers["x-trace-id"])
    r = await pets.delete("/pets/3")
    delete_trace = r.headers["x-trace-id"]
    await drain(settings, registry)
    api = "/_workbench/api/traces"
    everything = (await pets.get(api, params={"limit": 100})).json()["traces"]
    assert [t["id"] for t in everything] == [delete_trace, *reversed(ids)]  # newest first
    page1 = (await pets.get(api, params={"limit": 3})).json()
    page2 = (await pets.get(api, params={"limit": 3, "cursor": page1["cursor"]})).json()
    page3 = (await pets.get(api, params={"limit": 3, "cursor": page2["cursor"]})).json()
    seen = [t["id"] for p in (page1, page2, page3) for t in p["traces"]]
    assert seen == [t["id"] for t in everything]
    assert page3["cursor"] is None
    assert [t["id"] for t in (await pets.get(api, params={"entry": "DeletePet"})).json()["traces"]] == [
        delete_trace
    ]
    by_step = (await pets.get(api, params={"step": "SetNextFeedingReminder"})).json()["traces"]
    assert len(by_step) == 7
    assert (await pets.get(api, params={"q": delete_trace[-6:]})).json()["traces"][0]["id"] == delete_trace
    completed = (await pets.get(api, params={"status": "completed"})).json()["traces"]
    assert len(completed) == 8
    first = everything[-1]
    window = (await pets.get(api, params={"since": first["start"], "until": first["start"]})).json()["traces"]
    assert first["id"] in [t["id"] for t in window]
    for bad in ({"status": "weird"}, {"limit": 0}, {"limit": "x"}, {"since": -1}, {"cursor": "nope"}):
        assert (await pets.get(api, params=bad)).status_code == 400, bad


async def test_logs_api_filters(pets: AsyncTestClient[Any], settings: Settings, registry: Registry) -> None:
    r = await pets.post("/pets", json={"name": "Jack", "species": "dog", "ageMonths": 24})
    trace_id = r.headers["x-trace-id"]
    await pets.post("/pets", json={"name": "Luna", "species": "cat", "ageMonths": 3})
    await drain(settings, registry)
    api = "/_workbench/api/logs"
    of_trace = (await pets.get(api, params={"trace_id": trace_id})).json()["logs"]
    assert [line["message"] for line in reversed(of_trace)][:1] == ["Pet created"]
    assert {line["traceId"] for line in of_trace} == {trace_id}
    by_step = (await pets.get(api, params={"step": "SetNextFeedingReminder"})).json()["logs"]
    assert len(by_step) == 4 and {line["step"] for line in by_step} == {"SetNextFeedingReminder"}
    text = (await pets.get(api, params={"q": "luna"})).json()["logs"]
    assert [line["message"] for line in text] == ["Pet created"]
    assert (await pets.get(api, params={"level": "warning"})).json()["logs"] == []
    page1 = (await pets.get(api, params={"limit": 2})).json()
    page2 = (await pets.get(api, params={"limit": 2, "cursor": page1["cursor"]})).json()
    assert not {x["id"] for x in page1["logs"]} & {x["id"] for x in page2["logs"]}
    assert (await pets.get(api, params={"level": "loud"})).status_code == 400


async def test_retention_removes_the_oldest_traces_and_their_logs_and_nothing_else(
    pets: AsyncTestClient[Any], settings: Settings, registry: Registry, sync_redis: Any
) -> None:
    from workbench.runtime import Runtime

    ids = []
    for i in range(6):
        r = await pets.post("/pets", json={"name": f"P{i}", "species": "dog", "ageMonths": 1})
        ids.append(r.headers["x-trace-id"])
    await drain(settings, registry)
    runtime = Runtime(replace(settings, retention_traces=4), registry)
    removed = await runtime.store.enforce_retention(max_traces=4, max_age_s=3600)
    await runtime.redis.aclose()
    assert removed == 2
    kept = [t["id"] for t in (await pets.get("/_workbench/api/traces")).json()["traces"]]
    assert kept == list(reversed(ids[2:]))
    for gone in ids[:2]:
        assert (await pets.get(f"/_workbench/api/traces/{gone}")).status_code == 404
        assert not sync_redis.exists(f"wb:spans:{gone}", f"wb:events:{gone}", f"wb:trace:{gone}")
    logs = [json.loads(f["d"]) for _, f in sync_redis.xrange("wb:logs")]
    assert {line["traceId"] for line in logs} == set(ids[2:])
    assert len(sync_redis.hgetall("wb:state:pets")) == 6  # app data untouched


async def test_retention_by_age(
    pets: AsyncTestClient[Any], settings: Settings, registry: Registry, sync_redis: Any
) -> None:
    from workbench.runtime import Runtime

    old = (await pets.post("/pets", json={"name": "Old", "species": "dog", "ageMonths": 1})).headers[
        "x-trace-id"
    ]
    sync_redis.zadd("wb:traces", {old: 1000})  # pretend it started in 1970
    new = (await pets.post("/pets", json={"name": "New", "species": "dog", "ageMonths": 1})).headers[
        "x-trace-id"
    ]
    runtime = Runtime(settings, registry)
    assert await runtime.store.enforce_retention(max_traces=100, max_age_s=3600) == 1
    await runtime.redis.aclose()
    assert [t["id"] for t in (await pets.get("/_workbench/api/traces")).json()["traces"]] == [new]


def test_traces_and_logs_survive_a_restart_of_web_and_worker(stack: Stack) -> None:
    with stack.client() as client:
        r = client.post("/pets", json={"name": "Jack", "species": "dog", "ageMonths": 24})
        trace_id = r.headers["x-trace-id"]
        wait_until(lambda: client.get(f"/_workbench/api/traces/{trace_id}").json()["status"] == "completed")
        before = client.get(f"/_workbench/api/traces/{trace_id}").json()
        logs_before = client.get("/_workbench/api/logs", params={"trace_id": trace_id}).json()["logs"]
    stack.workers[0].stop()
    stack.restart_web()
    stack.add_worker()
    with stack.client() as client:
        assert client.get(f"/_workbench/api/traces/{trace_id}").json() == before
        assert client.get("/_workbench/api/logs", params={"trace_id": trace_id}).json()["logs"] == logs_before
        assert len(logs_before) >= 3


def test_steps_api_lists_the_registry(stack: Stack) -> None:
    with stack.client() as client:
        steps = {s["name"]: s for s in client.get("/_workbench/api/steps").json()["steps"]}
    assert steps["CreatePet"]["kind"] == "api" and steps["CreatePet"]["triggers"] == ["POST /pets"]
    assert steps["CreatePet"]["emits"] == ["pet.created", "feeding.reminder.enqueued"]
    assert steps["SetNextFeedingReminder"]["subscribes"] == ["feeding.reminder.enqueued"]
    assert steps["DeletionReaper"]["cron"] == "0 2 * * *"
    assert "pets" in steps["CreatePet"]["flows"]


def test_a_running_trace_is_readable_while_it_runs(redis_url: str, tmp_path: Any) -> None:
    lab = start_stack(redis_url, tmp_path, steps_dir=FIXTURES / "lab")
    try:
        with lab.client() as client:
            trace_id = client.post("/fire/slow", json={"s": 2}).json()["traceId"]
            span = wait_until(
                lambda: next(
                    (s for s in client.get(f"/_workbench/api/traces/{trace_id}").json()["spanList"]
                     if s["step"] == "Slow" and s["status"] == "running"), None),
                message="Slow running",
            )  # fmt: skip
            trace = client.get(f"/_workbench/api/traces/{trace_id}").json()
            assert trace["status"] == "running" and span["finishedAt"] is None
            assert "slow start" in logs_of(span)
    finally:
        lab.stop()


def test_span_json_has_every_field_in_camel_case() -> None:
    from dataclasses import fields

    from workbench.tracing.records import Span

    span = Span(id="s", trace_id="t", step="S", kind="event")
    camel = {f.name.split("_")[0] + "".join(p.title() for p in f.name.split("_")[1:]) for f in fields(Span)}
    assert set(span.to_json()) == camel


async def test_the_failed_filter_has_an_index_kept_true_by_retries_retention_and_upgrades(
    settings: Settings, registry: Registry
) -> None:
    from workbench import keys
    from workbench.runtime import Runtime
    from workbench.tracing.store import adjust_record, trace_record

    runtime = Runtime(settings, registry)
    try:
        store = runtime.store
        records = []
        for i in range(300):  # completed traces, newer than the first failure
            records += [trace_record(f"ok{i:03}", start=1000 + i, entry="E", kind="api", label="ok", open_=1)]
            records += [adjust_record(f"ok{i:03}", open_delta=-1)]
        for tid, start, open_ in (("bad1", 500, 1), ("bad2", 2000, 1), ("bad3", 3000, 2)):
            records += [trace_record(tid, start=start, entry="E", kind="api", label="bad", open_=open_)]
            records += [adjust_record(tid, open_delta=-1, failed_delta=1)]
        await store.ensure_scripts()
        async with runtime.redis.pipeline(transaction=False) as pipe:
            store.apply(pipe, records)
            await pipe.execute()

        # a budget of 10 would never reach bad1 behind 300 newer traces in the time index
        failed, cursor = await store.list_traces(status="failed", scan_budget=10)
        assert [t["id"] for t in failed] == ["bad2", "bad1"] and cursor is None  # bad3 still runs

        async with runtime.redis.pipeline(transaction=False) as pipe:  # bad2's dead letter retried: ok
            store.apply(pipe, [adjust_record("bad2", failed_delta=-1)])
            await pipe.execute()
        assert [t["id"] for t in (await store.list_traces(status="failed"))[0]] == ["bad1"]

        # traces stored before the index existed are indexed once
        await runtime.redis.delete(keys.FAILED_TRACES)
        assert await store.index_failed_traces(chunk=7) == 2
        assert [t["id"] for t in (await store.list_traces(status="failed"))[0]] == ["bad1"]
        assert await store.index_failed_traces() == 0  # done: a marker says so

        assert await store.enforce_retention(max_traces=302, max_age_s=10**11) == 1  # bad1 is the oldest
        assert await runtime.redis.zrange(keys.FAILED_TRACES, 0, -1) == ["bad3"]  # failed, still running
    finally:
        await runtime.redis.aclose()
