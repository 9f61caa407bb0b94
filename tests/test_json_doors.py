"""Input JSON cannot carry, or nests absurdly, is refused at every door with a 400 (state edits, emits,
step bodies, page forms) and never stored; a bad value already stored shows as an error in its row.
State keys of any text round-trip through the page and the API, and an action touches only its own key."""

from __future__ import annotations

import pytest
from redis import Redis

from workbench import keys
from workbench.testing import Harness

from .conftest import Stack

H = {"x-workbench": "1"}
SURROGATE = '{"name": "\\ud800", "species": "dog", "ageMonths": 1}'  # JSON text with a lone surrogate
DEEP = "[" * 10_000 + "]" * 10_000


def post_json(workbench: Harness, path: str, text: str) -> int:
    response = workbench.client.post(path, content=text, headers={**H, "content-type": "application/json"})
    return response.status_code


@pytest.mark.parametrize("text", [SURROGATE, DEEP, '{"value": "\\udfff"}'])
def test_the_json_apis_refuse_it_and_store_nothing(workbench: Harness, text: str) -> None:
    bodies = {
        "/_workbench/api/state/set": text.replace("{", '{"group": "g", "key": "k", "value": {', 1) + "}"
        if text.startswith("{")
        else '{"group": "g", "key": "k", "value": ' + text + "}",
        "/_workbench/api/emit": '{"topic": "pet.created", "data": ' + text + "}",
        "/pets": text,
    }
    for path, body in bodies.items():
        assert post_json(workbench, path, body) == 400, path
    assert workbench.state.groups() == [] or workbench.state.groups() == ["pets-meta"]
    assert workbench.state.group("g") == {} and workbench.state.group("pets") == {}
    assert workbench.traces() == [] or all(t.entry == "CreatePet" for t in workbench.traces())
    assert workbench.emitted() == []


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_numbers_json_cannot_carry_are_refused_at_the_json_apis_and_forms(
    workbench: Harness, number: str
) -> None:
    """Python's parser reads NaN and Infinity (and 1e999 as inf); stored, they came back as null."""
    state = post_json(
        workbench, "/_workbench/api/state/set", f'{{"group": "g", "key": "k", "value": {number}}}'
    )
    emit = post_json(
        workbench, "/_workbench/api/emit", f'{{"topic": "pet.created", "data": {{"n": {number}}}}}'
    )
    form = workbench.client.post(
        "/_workbench/state/set", data={"group": "g", "key": "k", "value": number}, headers=H
    )
    assert (state, emit, form.status_code) == (400, 400, 400)
    assert "not a JSON number" in form.text
    assert workbench.state.group("g") == {} and workbench.emitted() == []
    with pytest.raises(ValueError, match="not a JSON number"):
        workbench.state.set("g", "k", {"ratio": float("nan")})


def test_the_forms_refuse_it(workbench: Harness) -> None:
    form = workbench.client.post(
        "/_workbench/state/set", data={"group": "g", "key": "k", "value": '"\\ud800"'}, headers=H
    )
    assert form.status_code == 400 and "lone surrogate" in form.text
    deep = workbench.client.post(
        "/_workbench/state/set", data={"group": "g", "key": "k", "value": DEEP}, headers=H
    )
    assert deep.status_code == 400 and "nested deeper" in deep.text
    emit = workbench.client.post(
        "/_workbench/emit", data={"topic": "pet.created", "data": '["\\ud800"]'}, headers=H
    )
    assert emit.status_code == 400 and "lone surrogate" in emit.text
    assert workbench.state.group("g") == {} and workbench.emitted() == []


def test_a_step_cannot_store_or_emit_it(workbench: Harness) -> None:
    with pytest.raises(ValueError, match="lone surrogate"):
        workbench.state.set("g", "k", {"bad": "\ud800"})
    with pytest.raises(ValueError, match="nested deeper than 64"):
        nested: list[object] = []
        for _ in range(100):
            nested = [nested]
        workbench.state.set("g", "k", nested)
    assert workbench.state.group("g") == {}


def test_a_bad_value_stored_earlier_shows_as_an_error_not_a_500(
    workbench: Harness, workbench_redis_url: str
) -> None:
    workbench.state.set("pets", "1", {"name": "fine"})
    raw = Redis.from_url(workbench_redis_url)
    try:
        raw.hset(keys.STATE + "pets", "2", b'{"name": "\\ud800"}')  # as an older version stored it
    finally:
        raw.close()
    api = workbench.client.get("/_workbench/api/state")
    assert api.status_code == 200
    assert api.json()["groups"]["pets"] == {"1": {"name": "fine"}}
    assert "lone surrogate" in api.json()["errors"]["pets"]["2"]
    page = workbench.client.get("/_workbench/state")
    assert page.status_code == 200
    assert (
        "This stored value cannot be shown" in page.text and "&#34;fine&#34;" in page.text
    ) or '"fine"' in page.text


KEYS = ["7/delete", "a?b=c", "x#y", "100%", "with space", "ünï/cödé", "..", "-"]


@pytest.mark.parametrize("key", KEYS)
def test_any_key_round_trips_through_the_api_and_the_page(workbench: Harness, key: str) -> None:
    workbench.state.set("pets", "7", {"keep": True})
    set_ = workbench.client.post(
        "/_workbench/api/state/set", json={"group": "pets", "key": key, "value": 1}, headers=H
    )
    assert set_.status_code == 200 and set_.json()["key"] == key
    assert workbench.client.get("/_workbench/api/state").json()["groups"]["pets"] == {
        "7": {"keep": True},
        key: 1,
    }
    edited = workbench.client.post(
        "/_workbench/state/set", data={"group": "pets", "key": key, "value": "2"}, headers=H
    )
    assert edited.status_code == 200
    assert workbench.state.get("pets", key) == 2
    page = workbench.client.get("/_workbench/state")
    assert page.status_code == 200
    deleted = workbench.client.post("/_workbench/state/delete", data={"group": "pets", "key": key}, headers=H)
    assert deleted.status_code == 200
    assert workbench.state.group("pets") == {"7": {"keep": True}}  # only its own key went


def test_the_api_delete_touches_only_its_own_key(workbench: Harness) -> None:
    workbench.state.set("pets", "7", {"keep": True})
    workbench.state.set("pets", "7/delete", {"doomed": True})
    gone = workbench.client.post(
        "/_workbench/api/state/delete", json={"group": "pets", "key": "7/delete"}, headers=H
    )
    assert gone.status_code == 200
    assert workbench.state.group("pets") == {"7": {"keep": True}}
    missing = workbench.client.post(
        "/_workbench/api/state/delete", json={"group": "pets", "key": "nope"}, headers=H
    )
    assert missing.status_code == 404
    for body in ({"group": "pets"}, {"key": "7"}, {"group": "", "key": "7"}, ["pets", "7"]):
        assert workbench.client.post("/_workbench/api/state/delete", json=body, headers=H).status_code == 400


@pytest.mark.parametrize(
    ("path", "cursor"),
    [
        ("/_workbench/api/traces", "abc:x"),
        ("/_workbench/api/traces", "12"),
        ("/_workbench/api/traces", "1:a:b"),
        ("/_workbench/api/logs", "abc"),
        ("/_workbench/api/logs", "1-x"),
        ("/_workbench/traces", "abc:x"),
        ("/_workbench/logs", "abc"),
    ],
)
def test_a_bad_cursor_is_a_400_naming_it(workbench: Harness, path: str, cursor: str) -> None:
    response = workbench.client.get(path, params={"cursor": cursor})
    assert response.status_code == 400, response.text
    assert "cursor" in response.text


def test_the_cursors_the_lists_hand_out_are_taken_back(workbench: Harness) -> None:
    for _ in range(3):
        assert (
            workbench.client.post("/pets", json={"name": "A", "species": "dog", "ageMonths": 1}).status_code
            == 201
        )
    first = workbench.client.get("/_workbench/api/traces", params={"limit": 2}).json()
    rest = workbench.client.get("/_workbench/api/traces", params={"limit": 2, "cursor": first["cursor"]})
    assert rest.status_code == 200 and len(rest.json()["traces"]) == 1
    logs = workbench.client.get("/_workbench/api/logs", params={"limit": 2}).json()
    more = workbench.client.get("/_workbench/api/logs", params={"limit": 2, "cursor": logs["cursor"]})
    assert more.status_code == 200 and len(more.json()["logs"]) == 1


def test_bytes_that_are_not_utf8_on_the_streams_are_a_400(stack: Stack) -> None:
    with stack.client() as client:
        for path in ("/_workbench/api/stream", "/_workbench/stream"):
            bad_id = client.get(path, headers={"last-event-id": b"\xff\xfe-1"})
            assert bad_id.status_code == 400, (path, bad_id.text)
            bad_query = client.get(path + "?types=%ff%fe")
            assert bad_query.status_code == 400, (path, bad_query.text)


@pytest.mark.parametrize("name", ["x%00.css", "%0a.js", "nope.css", "..%2fpyproject.toml"])
def test_a_bad_or_missing_static_file_is_a_plain_404(workbench: Harness, name: str) -> None:
    response = workbench.client.get(f"/_workbench/static/{name}")
    assert response.status_code == 404
    assert response.json() == {"status_code": 404, "detail": "Not Found"}  # no folder, no file name
    assert workbench.client.get("/_workbench/static/workbench.css").status_code == 200
