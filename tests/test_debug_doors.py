"""The debugging actions' doors (replay, rerun, re-emit, curl, save as test, compare, state changes, span
event pages) under bad input: a 4xx naming the field, never a 5xx, and a generated file that stays the
text it was given. The pet steps in the harness (real Redis, the app in-process, a real worker behind
`drain()`), and a real web process for token mode."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from workbench.testing import Harness

from .conftest import start_stack, wait_until

W = {"X-Workbench": "1"}
PET = {"name": "Jack", "species": "dog", "ageMonths": 24}


def create(workbench: Harness, **headers: Any) -> str:
    response = workbench.client.post("/pets?source=test", json=PET, headers=headers)
    assert response.status_code == 201, response.text
    workbench.drain()
    return str(response.headers["x-trace-id"])


def post(workbench: Harness, path: str, content: bytes | None = None, **headers: str) -> Any:
    return workbench.client.post(
        f"/_workbench/api{path}",
        content=content,
        headers={**W, "content-type": "application/json", **headers},
    )


def replay(workbench: Harness, trace_id: str, edits: Any) -> Any:
    return post(workbench, f"/traces/{trace_id}/replay", json.dumps(edits).encode())


def recorded_request(workbench: Harness, trace_id: str) -> dict[str, Any]:
    request: dict[str, Any] = workbench.trace(trace_id).span("CreatePet").raw["exchange"]["request"]
    return request


def ids(workbench: Harness) -> tuple[str, str, str]:
    """An API trace, one of its event spans and one of its emits."""
    trace_id = create(workbench)
    trace = workbench.trace(trace_id).raw
    span = next(s["id"] for s in trace["spanList"] if s["kind"] == "event")
    emit = next(e["id"] for s in trace["spanList"] for e in s.get("events", []) if e["kind"] == "emit")
    return trace_id, span, emit


# --- header and query edits: defects fixed here ---------------------------------------------------------


def test_a_header_value_that_is_not_latin_1_is_400_naming_the_header(workbench: Harness) -> None:
    """Was a 500: httpx could not encode the value (and then nothing said which header)."""
    original = create(workbench)
    answer = replay(workbench, original, {"headers": {"content-type": "application/json", "x-a": "☃"}})
    assert answer.status_code == 400, answer.text
    assert answer.json()["extra"]["field"] == "headers.x-a" and "Latin-1" in answer.json()["detail"]


def test_a_latin_1_header_value_is_sent_as_is(workbench: Harness) -> None:
    """Was a 500, for an edit and for a recorded value alike (a client sent the byte 0xE9)."""
    original = create(workbench)
    edited = replay(workbench, original, {"headers": {"content-type": "application/json", "x-a": "café"}})
    assert edited.status_code == 202, edited.text
    assert recorded_request(workbench, edited.json()["traceId"])["headers"]["x-a"] == "café"

    from_client = create(workbench, **{"x-note": "caf\xe9".encode("latin-1")})  # type: ignore[arg-type]
    kept = recorded_request(workbench, from_client)["headers"]["x-note"]
    assert not kept.isascii()
    again = post(workbench, f"/traces/{from_client}/replay")
    assert again.status_code == 202, again.text
    assert recorded_request(workbench, again.json()["traceId"])["headers"]["x-note"] == kept  # the same bytes


@pytest.mark.parametrize(
    ("query", "sent"),
    [
        ("a=b c", "a=b%20c"),
        ("a=1#frag", "a=1%23frag"),
        ("a=x\ny", "a=x%0Ay"),
        ("a=\x00\x7f", "a=%00%7F"),
        ("a=%zz&b=%", "a=%zz&b=%"),  # a stray percent is sent as typed: the app says what it makes of it
        ("a=☃", "a=%E2%98%83"),
        ("source=edited&page=2", "source=edited&page=2"),
    ],
)
def test_a_query_edit_with_odd_characters_is_sent_percent_encoded(
    workbench: Harness, query: str, sent: str
) -> None:
    """Was a 500 for a space, `#`, a line break or a control character (httpx refused the URL)."""
    original = create(workbench)
    answer = replay(workbench, original, {"query": query})
    assert answer.status_code == 202, answer.text
    assert recorded_request(workbench, answer.json()["traceId"])["query"] == sent


def test_the_recorded_host_never_changes_the_path_replayed(workbench: Harness) -> None:
    """The Host was spliced into the URL: one holding `/` or `?` (a hand-edited or odd record) changed
    which path the replay requested. It is now sent as the header only."""
    original = create(workbench)
    span_id = workbench.trace(original).span("CreatePet").id

    async def tamper() -> None:
        redis = workbench.runtime.store.redis
        span = json.loads(await redis.hget(f"wb:spans:{original}", span_id))
        span["exchange"]["request"]["headers"]["host"] = "testserver.local/_workbench/api/queues?x="
        await redis.hset(f"wb:spans:{original}", span_id, json.dumps(span))

    workbench.call(tamper)
    answer = post(workbench, f"/traces/{original}/replay")
    # was a POST to /_workbench/api/queues?x=/pets (405); now /pets is asked for, and the app refuses
    # the odd Host itself
    assert answer.status_code == 409, answer.text
    assert "answered 400" in answer.json()["detail"] and "Invalid host header" in answer.json()["detail"]


# --- save as test: the request's text stays text ----------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/pets/%22%22%22%0Aimport%20os%0Aos.environ%5B%22PWNED%22%5D%20%3D%20%221%22%0A%22%22%22",
        "/pets/%5CN",
        "/pets/a%5Cx",
        "/pets/%22",
        "/pets/tab%09nul%00",
    ],
)
def test_a_generated_test_file_keeps_the_path_as_text(workbench: Harness, path: str) -> None:
    """A quote in the recorded path ended the file's docstring (what followed became code, run by
    pytest), a backslash made it a SyntaxError."""
    response = workbench.client.get(path)
    trace_id = response.headers["x-trace-id"]
    workbench.drain()
    source = workbench.client.get(f"/_workbench/api/traces/{trace_id}/test")
    assert source.status_code == 200, source.text
    tree = ast.parse(source.text)
    docstring = ast.get_docstring(tree, clean=False) or ""
    assert f"GET {unquote(path)} -> {response.status_code}" in docstring
    assert [type(node).__name__ for node in tree.body] == ["Expr", "ImportFrom", "FunctionDef"]


# --- doors that held on today's code (pinned) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "ctype", "detail"),
    [
        (b"{nope", "application/json", "body: not valid JSON"),
        (b"[1]", "application/json", "body: expected"),
        (b'{"body":"\\ud800"}', "application/json", "lone surrogate"),
        (b'{"body":' + b"[" * 10_000 + b"]" * 10_000 + b"}", "application/json", "nested deeper"),
        (b'{"headers":{"x-a":1}}', "application/json", "headers.x-a"),
        (b'{"headers":{"x-a":"a\\r\\nb"}}', "application/json", "headers.x-a"),
        (b'{"query":{"a":{"b":1}}}', "application/json", "query:"),
        (b'{"bogus":1}', "application/json", "bogus:"),
        (b"{nope", "text/plain", "body: not valid JSON"),
    ],
)
def test_bad_replay_bodies_are_400_naming_the_field(
    workbench: Harness, content: bytes, ctype: str, detail: str
) -> None:
    original = create(workbench)
    answer = post(workbench, f"/traces/{original}/replay", content, **{"content-type": ctype})
    assert answer.status_code == 400, answer.text
    assert detail in answer.json()["detail"]


@pytest.mark.parametrize(
    ("action", "content", "detail"),
    [
        ("rerun", b"[1]", 'body: expected {"data": ...}'),
        ("rerun", b'{"data":"\\ud800"}', "lone surrogate"),
        ("rerun", b'{"data":' + b"[" * 10_000 + b"]" * 10_000 + b"}", "nested deeper"),
        ("rerun", b'{"payload":1}', "payload: not a field of this action"),
        ("reemit", b"[1]", 'body: expected {"payload": ...}'),
        ("reemit", b'{"payload":"\\ud800"}', "lone surrogate"),
        ("reemit", b"not json", "body: not valid JSON"),
    ],
)
def test_bad_rerun_and_reemit_bodies_are_400(
    workbench: Harness, action: str, content: bytes, detail: str
) -> None:
    trace_id, span, emit = ids(workbench)
    path = (
        f"/traces/{trace_id}/spans/{span}/rerun"
        if action == "rerun"
        else f"/traces/{trace_id}/emits/{emit}/reemit"
    )
    answer = post(workbench, path, content)
    assert answer.status_code == 400, answer.text
    assert detail in answer.json()["detail"]


def test_a_huge_body_is_413_not_5xx(workbench: Harness) -> None:
    original = create(workbench)
    answer = post(workbench, f"/traces/{original}/replay", json.dumps({"body": "x" * 20_000_000}).encode())
    assert answer.status_code == 413


BAD_IDS = ["nope", "a%00b", "%E2%98%83", "x" * 5000, "a:b", "%ED%A0%80"]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_unknown_or_malformed_ids_are_404(workbench: Harness, bad: str) -> None:
    trace_id, span, _ = ids(workbench)
    for path in (f"/traces/{bad}/replay", f"/traces/{trace_id}/spans/{bad}/rerun",
                 f"/traces/{trace_id}/emits/{bad}/reemit", f"/traces/{bad}/spans/{span}/rerun"):  # fmt: skip
        assert post(workbench, path).status_code == 404, path
    for path in (f"/_workbench/api/traces/{bad}/replays", f"/_workbench/api/traces/{bad}/curl",
                 f"/_workbench/api/traces/{bad}/test", f"/_workbench/traces/{bad}/replay-panel",
                 f"/_workbench/traces/{trace_id}/spans/{bad}/rerun-panel",
                 f"/_workbench/traces/{trace_id}/spans/{bad}/events?offset=0"):  # fmt: skip
        assert workbench.client.get(path).status_code == 404, path
    for path in ("/_workbench/api/traces/../replay", "/_workbench/api/traces/a%2Fb/replay"):
        assert workbench.client.post(path, headers=W).status_code == 404


@pytest.mark.parametrize("offset", ["-1", "abc", "1.5", "", "99999999999999999999999", "0x10", "%00"])
def test_span_event_pages_refuse_a_bad_offset_with_400(workbench: Harness, offset: str) -> None:
    trace_id = create(workbench)
    span = workbench.trace(trace_id).span("CreatePet").id
    answer = workbench.client.get(f"/_workbench/traces/{trace_id}/spans/{span}/events?offset={offset}")
    assert answer.status_code == 400, answer.text


def test_compare_with_itself_and_with_bad_ids(workbench: Harness) -> None:
    trace_id = create(workbench)
    same = workbench.client.get(f"/_workbench/api/compare?a={trace_id}&b={trace_id}")
    assert same.status_code == 200 and not same.json()["differences"]
    assert workbench.client.get(f"/_workbench/compare?a={trace_id}&b={trace_id}").status_code == 200
    cases = [
        ("", 400, "a:"),
        (f"b={trace_id}", 400, "a:"),
        (f"a={trace_id}", None, ""),
        (f"a=%00&b={trace_id}", 404, "a:"),
        (f"a={trace_id}&b=nope", 404, "b:"),
    ]
    for query, status, field in cases:
        for base in ("/_workbench/api/compare", "/_workbench/compare"):
            answer = workbench.client.get(f"{base}?{query}")
            assert answer.status_code < 500, (base, query, answer.text)
            if status:
                assert answer.status_code == status and answer.json()["detail"].startswith(field)


def test_state_changes_needs_both_names_and_takes_any_text(workbench: Harness) -> None:
    assert "group, key" in workbench.client.get("/_workbench/api/state/changes").json()["detail"]
    for query in ("group=%00&key=%00", "group=a:b&key=c:d", "group=%ED%A0%80&key=y", "group=..&key=%2F"):
        answer = workbench.client.get(f"/_workbench/api/state/changes?{query}")
        assert answer.status_code == 200 and answer.json()["changes"] == [], query


def test_replaying_a_replay_and_things_that_are_gone(workbench: Harness) -> None:
    trace_id, span, _ = ids(workbench)
    first = post(workbench, f"/traces/{trace_id}/replay").json()["traceId"]
    workbench.drain()
    second = post(workbench, f"/traces/{first}/replay")
    assert second.status_code == 202 and workbench.trace(second.json()["traceId"]).raw["replayOf"] == first

    async def forget(field: str, value: str, span_id: str) -> None:
        redis = workbench.runtime.store.redis
        raw = json.loads(await redis.hget(f"wb:spans:{trace_id}", span_id))
        if field == "step":
            raw["step"] = value
        else:
            raw["exchange"]["request"]["path"] = value
        await redis.hset(f"wb:spans:{trace_id}", span_id, json.dumps(raw))

    workbench.call(lambda: forget("step", "GoneStep", span))  # its step file was removed since
    answer = post(workbench, f"/traces/{trace_id}/spans/{span}/rerun")
    assert answer.status_code == 409 and "no background step named 'GoneStep'" in answer.json()["detail"]
    api_span = workbench.trace(trace_id).span("CreatePet").id
    workbench.call(lambda: forget("path", "/gone-route", api_span))  # its route is gone
    answer = post(workbench, f"/traces/{trace_id}/replay")
    assert answer.status_code == 409 and "before the step ran" in answer.json()["detail"]


def test_every_action_needs_the_header_and_the_same_origin(workbench: Harness) -> None:
    trace_id, span, emit = ids(workbench)
    for path in (f"/traces/{trace_id}/replay", f"/traces/{trace_id}/spans/{span}/rerun",
                 f"/traces/{trace_id}/emits/{emit}/reemit"):  # fmt: skip
        bare = workbench.client.post(f"/_workbench/api{path}")
        assert bare.status_code == 403 and "X-Workbench" in bare.json()["detail"]
        foreign = post(workbench, path, **{"origin": "http://evil.example"})
        assert foreign.status_code == 403 and "cross-origin" in foreign.json()["detail"]
        assert post(workbench, path, **{"origin": "null"}).status_code == 403
    assert len(workbench.traces()) == 1  # none of them started anything


def test_token_mode_refuses_every_new_door_without_the_token(redis_url: str, tmp_path: Path) -> None:
    stack = start_stack(redis_url, tmp_path, WORKBENCH_TOKEN="t0k-for-the-debug-doors")
    try:
        with stack.client() as client:
            created = client.post("/pets", json=PET)
            assert created.status_code == 201, created.text
            trace_id = created.headers["x-trace-id"]
            auth = {"authorization": "Bearer t0k-for-the-debug-doors"}
            trace = wait_until(
                lambda: (
                    (t := client.get(f"/_workbench/api/traces/{trace_id}", headers=auth).json())
                    and any(s["kind"] == "event" and s.get("status") == "completed" for s in t["spanList"])
                    and t
                ),
                timeout=20,
                message="the pet's event run",
            )
            span = next(s["id"] for s in trace["spanList"] if s["kind"] == "event")
            emit = next(
                e["id"] for s in trace["spanList"] for e in s.get("events", []) if e["kind"] == "emit"
            )
            queue = "/_workbench/api/queues/PetLifecycleOrchestrator"
            posts = [
                f"/_workbench/api/traces/{trace_id}/replay",
                f"/_workbench/api/traces/{trace_id}/spans/{span}/rerun",
                f"/_workbench/api/traces/{trace_id}/emits/{emit}/reemit",
                f"/_workbench/api/traces/{trace_id}/cancel",
                f"/_workbench/api/jobs/{span}/cancel",
                f"{queue}/pause",
                f"{queue}/resume",
                f"{queue}/purge?confirm=PetLifecycleOrchestrator",
            ]
            gets = [f"/_workbench/api/traces/{trace_id}/{p}" for p in ("replays", "curl", "test")] + [
                f"/_workbench/api/compare?a={trace_id}&b={trace_id}",
                f"/_workbench/compare?a={trace_id}&b={trace_id}",
                "/_workbench/api/state/changes?group=pets&key=1",
                f"/_workbench/traces/{trace_id}/replay-panel",
                f"/_workbench/traces/{trace_id}/spans/{span}/rerun-panel",
                "/_workbench/api/queues",
                "/_workbench/queues",
                f"/_workbench/traces/{trace_id}/spans/{span}/events?offset=0",
            ]
            for path in posts:
                for headers in (
                    {**W},
                    {**W, "authorization": "Bearer wrong"},
                    {**W, "cookie": "wb_token=wrong"},
                ):
                    assert client.post(path, headers=headers).status_code == 401, (path, headers)
            for path in gets:
                assert client.get(path).status_code == 401, path
                assert client.get(path, headers=auth).status_code == 200, path
            assert client.post(posts[0], headers={**W, **auth}).status_code == 202
    finally:
        stack.stop()


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_nan_and_infinity_are_400_naming_the_field(workbench: Harness, number: bytes) -> None:
    """Was 202: Python's parser reads them, the job's encoding made them null, so a re-emit of
    `{"payload": NaN}` ran its subscriber on null (and failed there)."""
    trace_id, span, emit = ids(workbench)
    before = len(workbench.traces())
    for path, field in [
        (f"/traces/{trace_id}/emits/{emit}/reemit", "payload"),
        (f"/traces/{trace_id}/spans/{span}/rerun", "data"),
        (f"/traces/{trace_id}/replay", "body"),
    ]:
        answer = post(workbench, path, b'{"%s": {"n": [%s]}}' % (field.encode(), number))
        assert answer.status_code == 400, (path, answer.text)
        # refused by the JSON door itself, which names where: `body.payload.n[0]: nan is not a JSON number`
        assert f"body.{field}.n[0]: " in answer.json()["detail"]
        assert "not a JSON number" in answer.json()["detail"]
    assert len(workbench.traces()) == before  # nothing was started


def test_a_bad_value_given_outside_http_names_its_field_once(workbench: Harness) -> None:
    """The CLI's --data and --payload reach the checks without the web's parser: the message said
    `data: data: a string holds a lone surrogate`."""
    from workbench import replay as actions

    trace_id, span, emit = ids(workbench)
    for call, field in [
        (lambda: actions.rerun(workbench.runtime, trace_id, span, {"petId": "\ud800"}), "data"),
        (lambda: actions.reemit(workbench.runtime, trace_id, emit, ["\ud800"]), "payload"),
    ]:
        with pytest.raises(actions.BadEdit) as refused:
            workbench.call(call)
        assert refused.value.field == field
        assert str(refused.value).startswith(f"{field}: ") and f"{field}: {field}:" not in str(refused.value)


def test_save_as_test_waits_for_the_trace_to_end(workbench: Harness) -> None:
    """Was a 200 while the pet's jobs were still queued: the file asserted the emits and state of the
    request alone, so it failed against the code that recorded it."""
    response = workbench.client.post("/pets", json=PET)
    trace_id = response.headers["x-trace-id"]
    early = workbench.client.get(f"/_workbench/api/traces/{trace_id}/test")
    assert early.status_code == 409 and "still running" in early.json()["detail"]
    workbench.drain()
    assert workbench.client.get(f"/_workbench/api/traces/{trace_id}/test").status_code == 200


def test_host_and_content_length_edits_are_not_sent(workbench: Harness) -> None:
    """Pinned (held on today's code): the connection's own headers are shown, never re-sent as edited."""
    original = create(workbench)
    edits = {"content-type": "application/json", "host": "evil.example", "content-length": "1"}
    answer = replay(workbench, original, {"headers": edits})
    assert answer.status_code == 202, answer.text
    sent = recorded_request(workbench, answer.json()["traceId"])
    assert sent["headers"]["host"] == recorded_request(workbench, original)["headers"]["host"]
    assert sent["headers"]["content-length"] == str(len(sent["body"].encode()))


ODD_VALUES = """
import datetime

config = {"type": "event", "name": "Writer", "subscribes": ["w"], "retries": 1}

async def handler(data, ctx):
    await ctx.state.set("odd", "set", {"tags": {1}, "at": datetime.date(2026, 1, 2)})
    await ctx.state.update("odd", "set", lambda old: {**old, "more": {2}})
"""


def test_a_state_diff_shows_the_value_as_stored(tmp_path: Path, workbench_redis_url: str) -> None:
    """A value with parts that are not JSON (a set, a date) is stored with those parts as text; the diff
    showed the Python value instead (`[1]` where `"{1}"` was stored)."""
    from .conftest import steps_harness

    with steps_harness(tmp_path / "steps", workbench_redis_url, {"writer": ODD_VALUES}) as h:
        trace_id = h.emit("w", {"kind": "set"})
        h.drain()
        stored = h.state.get("odd", "set")
        assert stored == {"tags": "{1}", "at": "2026-01-02", "more": "{2}"}
        events = [e for e in h.trace(trace_id).span("Writer").events if e["kind"] == "state"]
        assert [e["op"] for e in events] == ["set", "update"]
        assert events[0]["after"] == {"tags": "{1}", "at": "2026-01-02"}
        assert events[1]["after"] == stored
