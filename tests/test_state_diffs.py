"""State operations in a span record what they did (before → after, capped), each change lands in its
key's change list (the State page's "changed by"), and outside a span nothing of it happens."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from redis import Redis as SyncRedis

from workbench.context import MotiaState
from workbench.registry import Registry
from workbench.runtime import Runtime
from workbench.settings import Settings
from workbench.state import changes_key
from workbench.tracing.recorder import current_scope
from workbench.tracing.records import Span
from workbench.ui_files import ui_dir
from workbench.web.app import create_app
from workbench.web.pages import URLS
from workbench.web.templating import environment

from .conftest import drain


@contextmanager
def in_span(runtime: Runtime, step: str = "Probe") -> Iterator[Span]:
    trace_id = runtime.begin_trace(entry=step, kind="api", label="test")
    span = Span(id=f"{trace_id}:1", trace_id=trace_id, step=step, kind="api", started_at=1)
    token = current_scope.set(runtime.scope(span))
    try:
        yield span
    finally:
        current_scope.reset(token)


WHERE = ("id", "ts", "traceId", "spanId", "step", "kind")  # left out: what every event has


async def ops_of(runtime: Runtime, span: Span) -> list[dict[str, Any]]:
    """The span's state events, as recorded in Redis (without the fields every event has)."""
    await runtime.recorder.flush()
    events = [json.loads(e) for e in await runtime.redis.lrange(f"wb:events:{span.trace_id}", 0, -1)]
    return [{k: v for k, v in e.items() if k not in WHERE} for e in events if e["kind"] == "state"]


JACK_4 = {"name": "Jack", "age": 4, "vet": "Dr. No"}


async def test_each_op_records_before_and_after(runtime: Runtime) -> None:
    state = runtime.state
    await state.set("pets", "1", {"name": "Jack", "age": 2})  # outside the span: the starting point
    with in_span(runtime) as span:
        assert await state.get("pets", "1") == {"name": "Jack", "age": 2}
        assert await state.get("pets", "nope") is None
        await state.set("pets", "1", {"name": "Jack", "age": 3, "vet": "Dr. No"})
        await state.set("pets", "2", "new")
        assert await state.increment("meta", "lastId", 5) == 5
        assert await state.update("pets", "1", lambda old: {**old, "age": 4}) == JACK_4
        assert await state.update("pets", "1", lambda old: None) == JACK_4  # left as it was
        assert await state.delete("pets", "2") is True
        assert await state.delete("pets", "2") is False
        assert len(await state.get_group("pets")) == 1
        await state.clear("meta")
    assert await ops_of(runtime, span) == [
        {"op": "get", "group": "pets", "key": "1", "value": {"name": "Jack", "age": 2}},
        {"op": "get", "group": "pets", "key": "nope"},  # absent: no value
        {"op": "set", "group": "pets", "key": "1", "before": {"name": "Jack", "age": 2},
         "after": {"name": "Jack", "age": 3, "vet": "Dr. No"}},
        {"op": "set", "group": "pets", "key": "2", "after": "new"},  # it was absent: no before
        {"op": "increment", "group": "meta", "key": "lastId", "before": 0, "after": 5},
        {"op": "update", "group": "pets", "key": "1", "before": {"name": "Jack", "age": 3, "vet": "Dr. No"},
         "after": {"name": "Jack", "age": 4, "vet": "Dr. No"}},
        {"op": "update", "group": "pets", "key": "1", "before": {"name": "Jack", "age": 4, "vet": "Dr. No"},
         "after": {"name": "Jack", "age": 4, "vet": "Dr. No"}, "changed": False},
        {"op": "delete", "group": "pets", "key": "2", "before": "new"},
        {"op": "delete", "group": "pets", "key": "2"},  # nothing to delete
        {"op": "get_group", "group": "pets", "key": None, "count": 1},
        {"op": "clear", "group": "meta", "key": None, "count": 1},
    ]  # fmt: skip


async def test_an_update_redone_after_another_writer_says_how_many_tries(runtime: Runtime) -> None:
    state = runtime.state
    await state.set("g", "k", 1)
    seen: list[int] = []

    async def change(old: int) -> int:
        seen.append(old)
        if len(seen) == 1:
            await state.set("g", "k", 10)  # outside the span? no: the same span, a set of its own
        return old + 1

    with in_span(runtime) as span:
        assert await state.update("g", "k", change) == 11
    update = (await ops_of(runtime, span))[-1]
    assert (update["op"], update["before"], update["after"], update["tries"]) == ("update", 10, 11, 2)


async def test_values_are_capped_at_the_payload_cap_and_marked(redis_url: str, registry: Registry) -> None:
    settings = replace(Settings(redis_url=redis_url), payload_cap=64)
    rt = Runtime(settings, registry)
    await rt.start()
    try:
        with in_span(rt) as span:
            await rt.state.set("big", "k", {"text": "x" * 500})
            await rt.state.set("big", "k", {"small": 1})
        first, second = await ops_of(rt, span)
        assert first["truncated"] is True and isinstance(first["after"], str)
        assert len(first["after"].encode()) <= 64 + 3 and first["after"].endswith("…")
        assert second["before"] == first["after"] and second["after"] == {"small": 1}
        assert second["truncated"] is True  # its before was cut
        assert await rt.state.get("big", "k") == {"small": 1}  # the stored value is whole
    finally:
        await rt.stop()


async def test_changes_list_the_spans_newest_first_capped_and_go_with_the_key(
    runtime: Runtime, sync_redis: SyncRedis
) -> None:
    state = runtime.state
    state.changes_kept = 3
    spans = []
    for n in range(5):
        with in_span(runtime, step=f"Step{n}") as span:
            await state.set("pets", "7", {"n": n})
        spans.append(span)
    with in_span(runtime, step="Reader"):
        await state.get("pets", "7")  # a read changes nothing: not listed
    await runtime.recorder.flush()
    changed = await state.changed_by("pets", ["7", "none"])
    assert [c["step"] for c in changed["7"]] == ["Step4", "Step3", "Step2"]
    assert changed["7"][0]["traceId"] == spans[4].trace_id and changed["7"][0]["spanId"] == spans[4].id
    assert changed["7"][0]["op"] == "set" and changed["7"][0]["gone"] is False
    assert changed["none"] == []
    name = changes_key("pets", "7")
    assert 0 < sync_redis.ttl(name) <= Settings.retention_age_s  # it expires
    await runtime.store._delete_traces([spans[4].trace_id])  # as retention would
    assert (await state.changed_by("pets", ["7"]))["7"][0]["gone"] is True
    with in_span(runtime):
        await state.delete("pets", "7")
    assert not sync_redis.exists(name)  # the history goes with the key
    # an increment and an update are listed too; a clear drops the lists of the group's keys
    with in_span(runtime, step="Counter"):
        await state.increment("meta", "n")
        await state.update("meta", "m", lambda old: 1)
    changed = await state.changed_by("meta", ["n", "m"])
    assert [c["op"] for k in ("n", "m") for c in changed[k]] == ["increment", "update"]
    await state.clear("meta")
    assert not sync_redis.exists(changes_key("meta", "n")) and not sync_redis.exists(changes_key("meta", "m"))


def test_change_lists_of_look_alike_keys_stay_apart() -> None:
    assert changes_key("a:b", "c") != changes_key("a", "b:c")


async def test_no_span_no_cost_plain_commands_no_record(runtime: Runtime, sync_redis: SyncRedis) -> None:
    state = runtime.state
    sync_redis.execute_command("CONFIG", "RESETSTAT")
    await state.set("g", "k", {"a": 1})
    await state.increment("g", "n")
    await state.get("g", "k")
    stats = sync_redis.info("commandstats")
    assert "cmdstat_evalsha" not in stats and "cmdstat_eval" not in stats  # no script: HSET, HINCRBY, HGET
    assert {"cmdstat_hset", "cmdstat_hincrby", "cmdstat_hget"} <= set(stats)
    await runtime.recorder.flush()
    assert sync_redis.keys("wb:state-changes:*") == [] and sync_redis.keys("wb:events:*") == []


async def test_tracing_off_costs_nothing_either(
    redis_url: str, registry: Registry, sync_redis: SyncRedis
) -> None:
    rt = Runtime(replace(Settings(redis_url=redis_url), tracing=False), registry)
    await rt.start()
    try:
        with in_span(rt):
            sync_redis.execute_command("CONFIG", "RESETSTAT")
            await rt.state.set("g", "k", 1)
            assert "cmdstat_evalsha" not in sync_redis.info("commandstats")
        assert sync_redis.keys("wb:state-changes:*") == []
    finally:
        await rt.stop()


async def test_one_round_trip_per_write_in_a_span(runtime: Runtime, sync_redis: SyncRedis) -> None:
    await runtime.state.set("g", "k", 0)  # the group is listed once per process
    await runtime.state.delete("g", "none")  # and the script loaded (its first call meets NOSCRIPT)
    await runtime.recorder.stop()  # its records stay queued: only the state's own commands are counted
    with in_span(runtime):
        sync_redis.execute_command("CONFIG", "RESETSTAT")
        await runtime.state.set("g", "k", 1)
        await runtime.state.increment("g", "n")
        await runtime.state.delete("g", "k")
        stats = sync_redis.info("commandstats")
    assert stats["cmdstat_evalsha"]["calls"] == 3  # one script call each (the commands inside it count too)
    assert stats["cmdstat_hget"]["calls"] == 2  # both inside the scripts of the set and the delete


async def test_motia_delete_returns_the_old_value_and_records_one_delete(runtime: Runtime) -> None:
    motia = MotiaState(runtime.state)
    await runtime.state.set("pets", "1", {"name": "Jack"})
    with in_span(runtime) as span:
        assert await motia.delete("pets", "1") == {"name": "Jack"}
        assert await motia.delete("pets", "1") is None
    ops = await ops_of(runtime, span)
    assert [(o["op"], o.get("before")) for o in ops] == [("delete", {"name": "Jack"}), ("delete", None)]


# --- the pet app: a real request and its background jobs ---------------------------------------


@pytest.fixture
async def pets(settings: Settings, registry: Registry) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(create_app(settings, registry)) as client:
        yield client


async def test_a_pet_creation_shows_its_diffs_on_the_span_and_the_state_page(
    pets: AsyncTestClient[Any], settings: Settings, registry: Registry
) -> None:
    r = await pets.post("/pets", json={"name": "<i>Jack</i>", "species": "dog", "ageMonths": 24})
    trace_id = r.headers["x-trace-id"]
    await drain(settings, registry)
    trace = (await pets.get(f"/_workbench/api/traces/{trace_id}")).json()
    api = trace["spanList"][0]
    ops = {(e["op"], e["group"]): e for e in api["events"] if e["kind"] == "state"}
    assert ops[("increment", "pets-meta")]["after"] == 1
    assert "before" not in ops[("set", "pets")] and ops[("set", "pets")]["after"]["name"] == "<i>Jack</i>"
    reminder = next(s for s in trace["spanList"] if s["step"] == "SetNextFeedingReminder")
    update = next(e for e in reminder["events"] if e["kind"] == "state" and e["op"] == "update")
    assert "notes" not in update["before"] and update["after"]["notes"].startswith("Welcome")
    html = (await pets.get(f"/_workbench/traces/{trace_id}/spans/{reminder['id']}")).text
    assert '<tr class="changed"><td class="mark">~</td><td class="k">updatedAt</td>' in html
    assert '<tr class="added"><td class="mark">+</td><td class="k">notes</td>' in html
    assert "&lt;i&gt;Jack&lt;/i&gt;" in html and "<i>Jack</i>" not in html  # escaped
    page = (await pets.get("/_workbench/state", params={"group": "pets"})).text
    assert f'href="/_workbench/traces/{trace_id}?span=' in page
    assert ">SetNextFeedingReminder</a>" in page and ">CreatePet</a>" in page


# --- the span's row (partials/record_state.html), as the trace page and the live stream render it ---


def render_op(**event: Any) -> str:
    html = (
        environment(ui_dir("templates"), URLS)
        .get_template("partials/record_state.html")
        .render(record={"ts": 1, "group": "g", "key": "k", **event})
    )
    return re.sub(r">\s+<", "><", html)


def test_a_big_object_keeps_its_changes_in_view_and_folds_the_rest() -> None:
    before = {f"f{i}": i for i in range(20)}
    after = {**before, "f3": 33, "note": "<b>hi</b>"}
    del after["f5"]
    html = render_op(op="set", before=before, after=after)
    shown, folded = html.split("unchanged fields")
    assert '<tr class="changed"><td class="mark">~</td><td class="k">f3</td>' in shown
    assert '<tr class="removed"><td class="mark">−</td><td class="k">f5</td>' in shown
    assert '<tr class="added"><td class="mark">+</td><td class="k">note</td>' in shown
    assert "&#34;&lt;b&gt;hi&lt;/b&gt;&#34;" in shown and "<b>hi</b>" not in html  # escaped
    assert 'class="k">f0<' not in shown and 'class="k">f0<' in folded


def test_a_cut_or_plain_value_shows_whole_before_and_after() -> None:
    html = render_op(op="set", before='{"text":"xxxx…', after={"small": 1}, truncated=True)
    assert "value cut at the payload cap" in html
    assert '<pre class="old">{&#34;text&#34;:&#34;xxxx…</pre>' in html  # the cut text, as it was kept
    html = render_op(op="delete")
    assert "it was absent: nothing deleted" in html
    html = render_op(op="increment", before=0, after=1)
    assert '<span class="old">0</span> → <span class="new">1</span>' in html  # numbers: inline


async def test_the_json_api_lists_a_keys_changes_and_names_a_missing_parameter(
    pets: AsyncTestClient[Any],
) -> None:
    trace_id = (await pets.post("/pets", json={"name": "Jack", "species": "dog", "ageMonths": 24})).headers[
        "x-trace-id"
    ]
    r = await pets.get("/_workbench/api/state/changes", params={"group": "pets", "key": "1"})
    assert r.status_code == 200, r.text
    (change,) = r.json()["changes"]
    assert (change["traceId"], change["step"], change["op"], change["gone"]) == (
        trace_id,
        "CreatePet",
        "set",
        False,
    )
    r = await pets.get("/_workbench/api/state/changes", params={"group": "pets"})
    assert r.status_code == 400 and r.json()["detail"] == "group, key: both are required"


async def test_a_stored_value_that_is_not_json_is_recorded_as_text_and_the_op_works(
    runtime: Runtime, sync_redis: SyncRedis
) -> None:
    sync_redis.hset("wb:state:g", "bad", "{not json")  # written by hand
    sync_redis.hset("wb:state:g", "lone", '"\\ud800"')  # a lone surrogate, before the doors refused it
    with in_span(runtime) as span:
        await runtime.state.set("g", "bad", {"fixed": True})
        await runtime.state.set("g", "lone", "ok")
    bad, lone = await ops_of(runtime, span)
    assert (bad["before"], bad["unreadable"], bad["after"]) == ("{not json", True, {"fixed": True})
    assert (lone["before"], lone["unreadable"]) == ('"\\ud800"', True)
    page_ok = await runtime.store.get_trace(span.trace_id)
    assert page_ok is not None


async def test_the_changes_list_lives_as_long_as_the_runtime_keeps_traces(
    settings: Settings, registry: Registry, sync_redis: SyncRedis
) -> None:
    rt = Runtime(replace(settings, retention_age_s=600), registry)
    await rt.start()
    try:
        with in_span(rt, step="Writer"):
            await rt.state.set("pets", "7", {"n": 1})
        await rt.recorder.flush()
    finally:
        await rt.stop()
    assert 0 < sync_redis.ttl(changes_key("pets", "7")) <= 600  # WORKBENCH_RETENTION_AGE, not the default
