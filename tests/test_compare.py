"""Comparing two traces (tracing/compare.py): spans matched by step and order, what differs, and the
page and JSON routes over real traces of the pet app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from workbench.registry import Registry
from workbench.settings import Settings
from workbench.tracing.compare import compare_traces
from workbench.web.app import create_app

from .conftest import drain


def span(step: str, n: int = 0, *, kind: str = "event", status: str = "completed", run_ms: int = 10,
         events: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:  # fmt: skip
    start = 1000 + n
    return {"id": f"{step}:{n}", "step": step, "kind": kind, "status": status, "attempt": 1,
            "startedAt": start, "finishedAt": start + run_ms, "events": events or [], **extra}  # fmt: skip


def trace(trace_id: str, *spans: dict[str, Any], entry: str = "CreatePet", **extra: Any) -> dict[str, Any]:
    return {"id": trace_id, "entry": entry, "label": "POST /pets", "status": "completed", "spans": len(spans),
            "errors": 0, "durationMs": 50, "start": 1000, "spanList": list(spans), **extra}  # fmt: skip


def emit(topic: str) -> dict[str, Any]:
    return {"kind": "emit", "topic": topic}


def state(op: str, key: str, after: Any, before: Any = None) -> dict[str, Any]:
    return {"kind": "state", "op": op, "group": "pets", "key": key, "before": before, "after": after}


API = {"kind": "api", "http": {"method": "POST", "path": "/pets", "status": 201}}


def test_identical_traces_have_no_differences() -> None:
    a = trace("A", span("CreatePet", **API, events=[emit("pet.created")]), span("Audit"))
    b = trace("B", span("CreatePet", **API, events=[emit("pet.created")]), span("Audit", run_ms=14))
    cmp = compare_traces(a, b)
    assert cmp.same_entry and cmp.differences == 0 and cmp.summary_differs == []
    assert [(p.step, p.n, p.differs) for p in cmp.spans] == [("CreatePet", 1, []), ("Audit", 1, [])]
    assert cmp.to_json()["a"]["responseStatus"] == 201


def test_each_kind_of_difference_is_named() -> None:
    a = trace(
        "A",
        span("CreatePet", **API, events=[emit("pet.created"), state("set", "1", {"name": "Jack"})]),
        span("Audit", run_ms=10),
    )
    b = trace(
        "B",
        span("CreatePet", **{**API, "http": {"status": 400}}, events=[state("set", "1", {"name": "Jill"})]),
        span("Audit", status="failed", run_ms=400, error={"message": "boom"}),
        status="failed",
    )
    cmp = compare_traces(a, b)
    create, audit = cmp.spans
    assert create.differs == ["httpStatus", "emits", "state"]
    assert audit.differs == ["status", "error", "duration"]
    assert cmp.summary_differs == ["status", "responseStatus"]
    assert cmp.differences == 4


def test_state_operations_pair_in_order_with_the_fields_that_differ_first() -> None:
    a = trace("A", span("S", events=[state("set", "1", {"id": "1", "name": "Jack", "age": 2}),
                                     state("get", "x", None)]))  # fmt: skip
    b = trace("B", span("S", events=[state("set", "1", {"id": "1", "name": "Jill", "vet": "No"})]))
    (pair,) = compare_traces(a, b).spans
    first, second = pair.state_rows
    assert first.differs == ["value"] and first.same_fields == 1
    assert [(f.name, f.a, f.b, f.in_a, f.in_b) for f in first.fields] == [
        ("name", "Jack", "Jill", True, True),
        ("age", 2, None, True, False),
        ("vet", None, "No", False, True),
        ("id", "1", "1", True, True),  # the same: last
    ]
    assert second.differs == ["missing"] and second.b is None


def test_spans_pair_by_step_and_order_and_ones_only_one_trace_has_keep_their_place() -> None:
    a = trace("A", span("Api", kind="api"), span("Flaky", 1), span("Flaky", 2), span("Ship", 3))
    b = trace("B", span("Api", kind="api"), span("Flaky", 1), span("Refund", 2), span("Ship", 3))
    cmp = compare_traces(a, b)
    keys = [(p.step, p.n, p.a is not None, p.b is not None) for p in cmp.spans]
    assert keys == [
        ("Api", 1, True, True),
        ("Flaky", 1, True, True),
        ("Refund", 1, False, True),  # after the span that precedes it in B
        ("Flaky", 2, True, False),  # the second run of Flaky: only A retried
        ("Ship", 1, True, True),
    ]
    assert [p.differs for p in cmp.spans if p.a is None or p.b is None] == [["missing"], ["missing"]]
    assert compare_traces(a, b).spans[2].b.id == "Refund:2"  # type: ignore[union-attr]


def test_a_duration_differs_only_when_it_moved_notably() -> None:
    def one(run_ms: int) -> dict[str, Any]:
        return trace("T", span("S", run_ms=run_ms))

    assert compare_traces(one(10), one(25)).spans[0].differs == []  # 15 ms: noise
    assert compare_traces(one(100), one(140)).spans[0].differs == []  # 40 ms but under half
    assert compare_traces(one(100), one(300)).spans[0].differs == ["duration"]


def test_traces_of_different_entries_compare_with_the_entry_named() -> None:
    cmp = compare_traces(trace("A", span("S")), trace("B", span("S"), entry="Other"))
    assert not cmp.same_entry and "entry" in cmp.summary_differs


# --- the routes, over real traces -----------------------------------------------------------------


@pytest.fixture
async def pets(settings: Settings, registry: Registry) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(create_app(settings, registry)) as client:
        yield client


async def create(client: AsyncTestClient[Any], body: dict[str, Any]) -> str:
    r = await client.post("/pets", json=body)
    return str(r.headers["x-trace-id"])


async def test_the_api_compares_two_pet_creations_and_names_the_state_that_differs(
    pets: AsyncTestClient[Any], settings: Settings, registry: Registry
) -> None:
    a = await create(pets, {"name": "Jack", "species": "dog", "ageMonths": 24})
    b = await create(pets, {"name": "Jill", "species": "cat", "ageMonths": 3})
    await drain(settings, registry)
    r = await pets.get("/_workbench/api/compare", params={"a": a, "b": b})
    assert r.status_code == 200, r.text
    cmp = r.json()
    assert cmp["sameEntry"] is True and cmp["a"]["id"] == a and cmp["b"]["id"] == b
    api = cmp["spans"][0]
    assert (api["step"], api["kind"]) == ("CreatePet", "api")
    assert "state" in api["differs"]  # another name, another id
    assert api["a"]["emits"] == api["b"]["emits"] == ["pet.created", "feeding.reminder.enqueued"]
    assert {p["step"] for p in cmp["spans"]} >= {"SetNextFeedingReminder", "PetLifecycleOrchestrator"}
    found = (await pets.get("/pets/1")).headers["x-trace-id"]
    missing = (await pets.get("/pets/999")).headers["x-trace-id"]
    cmp = (await pets.get("/_workbench/api/compare", params={"a": found, "b": missing})).json()
    assert (cmp["a"]["responseStatus"], cmp["b"]["responseStatus"]) == (200, 404)
    assert cmp["summaryDiffers"] == ["responseStatus"]
    assert cmp["spans"][0]["differs"] == ["httpStatus", "state"]  # it read another key


async def test_bad_or_missing_ids_name_the_parameter(pets: AsyncTestClient[Any]) -> None:
    a = await create(pets, {"name": "Jack", "species": "dog", "ageMonths": 24})
    for path in ("/_workbench/api/compare", "/_workbench/compare"):
        r = await pets.get(path, params={"a": a, "b": "nope"})
        assert r.status_code == 404 and r.json()["detail"] == "b: no trace nope", r.text
        r = await pets.get(path, params={"a": "gone", "b": a})
        assert r.status_code == 404 and r.json()["detail"] == "a: no trace gone"
        r = await pets.get(path)
        assert r.status_code == 400 and r.json()["detail"].startswith("a: required")
    r = await pets.get("/_workbench/api/compare", params={"a": a})
    assert r.status_code == 400 and r.json()["detail"].startswith("b: required")


async def test_the_page_highlights_differences_and_without_b_offers_traces_to_pick(
    pets: AsyncTestClient[Any],
) -> None:
    a = await create(pets, {"name": "Jack", "species": "dog", "ageMonths": 24})
    b = await create(pets, {"name": "<b>Jill</b>", "species": "cat", "ageMonths": 3})
    page = (await pets.get("/_workbench/compare", params={"a": a, "b": b})).text
    assert 'class="differs" data-step="CreatePet"' in page
    assert "&lt;b&gt;Jill&lt;/b&gt;" in page and "<b>Jill</b>" not in page  # escaped
    pick = (await pets.get("/_workbench/compare", params={"a": a})).text
    assert f"/_workbench/compare?a={a}&amp;b={b}" in pick
