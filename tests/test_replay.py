"""Replay, rerun and re-emit (workbench/replay.py) through the JSON API and the CLI, on the pet steps in
the harness (real Redis, the real app in-process, a real worker behind `drain()`)."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from workbench.testing import Harness

from .conftest import PET_STEPS, ROOT, Stack

W = {"X-Workbench": "1"}
PET = {"name": "Jack", "species": "dog", "ageMonths": 24}


def create(workbench: Harness, **extra: Any) -> str:
    response = workbench.client.post("/pets?source=test", json=PET, headers={"x-request-note": "hi", **extra})
    assert response.status_code == 201, response.text
    workbench.drain()
    return str(response.headers["x-trace-id"])


def api(workbench: Harness, path: str, body: Any = None, *, status: int = 202) -> dict[str, Any]:
    response = workbench.client.post(f"/_workbench/api{path}", json=body, headers=W)
    assert response.status_code == status, response.text
    data: dict[str, Any] = response.json()
    return data


def test_an_api_span_keeps_its_request_and_answer_without_credentials(workbench: Harness) -> None:
    secret = "s3cr3t-token-value-123"
    trace_id = create(
        workbench,
        authorization=f"Bearer {secret}",
        cookie=f"wb_token={secret}",
        **{"x-workbench-token": secret},
    )
    span = workbench.trace(trace_id).span("CreatePet")
    exchange = span.raw["exchange"]
    request, response = exchange["request"], exchange["response"]
    assert (request["method"], request["path"], request["query"]) == ("POST", "/pets", "source=test")
    assert request["headers"]["x-request-note"] == "hi"
    assert request["body"] == '{"name":"Jack","species":"dog","ageMonths":24}'
    assert response["status"] == 201 and '"name":"Jack"' in response["body"]
    stored = workbench.client.get(f"/_workbench/api/traces/{trace_id}").text
    assert secret not in stored
    assert not {"authorization", "cookie", "x-workbench-token"} & set(request["headers"])


@pytest.mark.parametrize(
    ("query", "kept"),
    [
        ("", ""),
        ("source=test&page=2", "source=test&page=2"),
        ("source=test&token=abc&api_key=k&x=1", "source=test&x=1"),
        ("Access%5FToken=abc&q=tokens", "q=tokens"),  # the name decoded; a value that says "token" stays
        ("session", ""),
    ],
)
def test_query_parameters_named_as_secrets_are_not_kept(query: str, kept: str) -> None:
    from workbench.replay import kept_query

    assert kept_query(query) == kept


def test_a_secret_in_the_query_is_not_stored(workbench: Harness) -> None:
    response = workbench.client.post("/pets?source=test&token=s3cr3t-in-query", json=PET)
    assert response.status_code == 201, response.text
    trace_id = str(response.headers["x-trace-id"])
    request = workbench.trace(trace_id).span("CreatePet").raw["exchange"]["request"]
    assert request["query"] == "source=test"
    assert "s3cr3t-in-query" not in workbench.client.get(f"/_workbench/api/traces/{trace_id}").text


def test_a_body_beyond_the_cap_is_cut_and_marked(workbench_redis_url: str, workbench: Harness) -> None:
    from workbench.testing import harness_settings

    settings = harness_settings(workbench_redis_url, PET_STEPS, exchange_cap=10)
    with Harness(settings, workbench.registry) as small:
        trace_id = create(small)
        request = small.trace(trace_id).span("CreatePet").raw["exchange"]["request"]
        assert request["body"] == '{"name":"J' and request["bodyCut"] == len(
            b'{"name":"Jack","species":"dog","ageMonths":24}'
        )
        refused = api(small, f"/traces/{trace_id}/replay", status=409)
        assert "only the first part was kept" in refused["detail"]
        assert api(small, f"/traces/{trace_id}/replay", {"body": PET})["status"] == 201  # given whole: sent
        assert small.client.get(f"/_workbench/api/traces/{trace_id}/curl").status_code == 409


def test_replay_with_an_edited_body_is_a_new_trace_linked_both_ways(workbench: Harness) -> None:
    original = create(workbench)
    edited = {"name": "Rex", "species": "cat", "ageMonths": 3}
    answer = api(workbench, f"/traces/{original}/replay", {"body": edited})
    assert answer["status"] == 201 and '"name":"Rex"' in answer["response"]
    workbench.drain()
    new = workbench.trace(answer["traceId"])
    assert new.raw["replayOf"] == original and new.raw["replayKind"] == "replay"
    assert new.span("CreatePet").raw["exchange"]["request"]["query"] == "source=test"  # kept as recorded
    assert new.span("CreatePet").raw["exchange"]["request"]["headers"]["x-request-note"] == "hi"
    assert new.status == "completed" and "SetNextFeedingReminder" in new.steps  # its jobs ran as usual
    pet_id = answer["response"].split('"id":"')[1].split('"')[0]
    assert workbench.state.get("pets", pet_id)["name"] == "Rex"
    listed = workbench.client.get(f"/_workbench/api/traces/{original}/replays").json()
    assert [r["id"] for r in listed["replays"]] == [new.id]


def test_replay_runs_the_apps_validation_and_edits_of_query_and_headers(workbench: Harness) -> None:
    original = create(workbench)
    refused = api(workbench, f"/traces/{original}/replay", {"body": {"name": "Rex"}}, status=409)
    assert "answered 400 before the step ran" in refused["detail"] and "species" in refused["detail"]
    edits = {"query": {"source": "edited"}, "headers": {"content-type": "application/json", "x-more": "yes"}}
    new = api(workbench, f"/traces/{original}/replay", edits)["traceId"]
    request = workbench.trace(new).span("CreatePet").raw["exchange"]["request"]
    assert request["query"] == "source=edited"
    assert request["headers"]["x-more"] == "yes" and "x-request-note" not in request["headers"]


@pytest.mark.parametrize(
    ("edits", "field"),
    [
        ({"bogus": 1}, "bogus"),
        ({"query": 5}, "query"),
        ({"headers": ["x"]}, "headers"),
        ({"headers": {"bad name": "x"}}, "headers.bad name"),
        ({"headers": {"x-a": "one\r\ntwo"}}, "headers.x-a"),
        ([1, 2], "body"),
    ],
)
def test_bad_edits_are_400_naming_the_field(workbench: Harness, edits: Any, field: str) -> None:
    original = create(workbench)
    answer = api(workbench, f"/traces/{original}/replay", edits, status=400)
    assert answer["detail"].startswith(f"{field}:") and answer["extra"]["field"] == field


def test_unknown_ids_are_404_and_unreplayable_traces_409(workbench: Harness) -> None:
    original = create(workbench)
    assert "no trace nope" in api(workbench, "/traces/nope/replay", status=404)["detail"]
    assert "no span" in api(workbench, f"/traces/{original}/spans/nope/rerun", status=404)["detail"]
    assert "no trace" in api(workbench, "/traces/nope/spans/x/rerun", status=404)["detail"]
    assert "no emit" in api(workbench, f"/traces/{original}/emits/nope/reemit", status=404)["detail"]
    for path in ("curl", "test", "replays"):
        assert workbench.client.get(f"/_workbench/api/traces/nope/{path}").status_code == 404
    api_span = workbench.trace(original).span("CreatePet").id
    assert (
        "only event and cron runs"
        in api(workbench, f"/traces/{original}/spans/{api_span}/rerun", status=409)["detail"]
    )
    # a request recorded before requests were kept (or with the cap at 0) cannot be replayed
    workbench.call(lambda: _drop_exchange(workbench, original, api_span))
    assert "its request was not kept" in api(workbench, f"/traces/{original}/replay", status=409)["detail"]
    assert workbench.client.get(f"/_workbench/api/traces/{original}/curl").status_code == 409
    assert workbench.client.get(f"/_workbench/api/traces/{original}/test").status_code == 409


async def _drop_exchange(workbench: Harness, trace_id: str, span_id: str) -> None:
    import json

    redis = workbench.runtime.store.redis
    span = json.loads(await redis.hget(f"wb:spans:{trace_id}", span_id))
    span["exchange"] = None
    await redis.hset(f"wb:spans:{trace_id}", span_id, json.dumps(span))


def test_run_again_uses_the_recorded_input_or_an_edited_one(workbench: Harness) -> None:
    original = create(workbench)
    pet_id = workbench.emitted("pet.created")[0].data["petId"]
    span = workbench.trace(original).span("PetLifecycleOrchestrator")
    new = api(workbench, f"/traces/{original}/spans/{span.id}/rerun", {})["traceId"]
    workbench.drain()
    rerun = workbench.trace(new)
    assert rerun.entry == "PetLifecycleOrchestrator" and rerun.raw["replayKind"] == "rerun"
    assert rerun.raw["replayOfSpan"] == span.id
    assert rerun.span("PetLifecycleOrchestrator").topic == span.topic
    assert workbench.logs("PetLifecycleOrchestrator", trace_id=new)  # it ran with the same input
    assert api(workbench, f"/traces/{original}/spans/{span.id}/rerun", {"other": 1}, status=400)[
        "detail"
    ].startswith("other:")
    edited = {"petId": pet_id, "event": "pet.created"}
    again = api(workbench, f"/traces/{original}/spans/{span.id}/rerun", {"data": edited})["traceId"]
    workbench.drain()
    # a rerun keeps its input, so it can be rerun (and replayed) in turn
    run = workbench.trace(again).span("PetLifecycleOrchestrator")
    third = api(workbench, f"/traces/{again}/spans/{run.id}/rerun", {})["traceId"]
    replayed = api(workbench, f"/traces/{again}/replay")["traceId"]
    workbench.drain()
    assert workbench.trace(third).status == workbench.trace(replayed).status == "completed"


def test_run_again_refuses_an_input_that_was_cut_when_recorded(workbench: Harness) -> None:
    workbench.runtime.recorder.payload_cap = 10  # emits recorded from now on keep 10 bytes
    original = create(workbench)
    span = workbench.trace(original).span("PetLifecycleOrchestrator")
    refused = api(workbench, f"/traces/{original}/spans/{span.id}/rerun", {}, status=409)
    assert "cut at" in refused["detail"] and "pass" in refused["detail"]
    emit = workbench.emitted("pet.created")[0]
    event_id = next(
        e["id"] for e in workbench.trace(original).span("CreatePet").events if e["kind"] == "emit"
    )
    assert "cut at" in api(workbench, f"/traces/{original}/emits/{event_id}/reemit", {}, status=409)["detail"]
    assert emit.topic == "pet.created"


def test_reemit_sends_the_topic_again_with_an_edited_payload(workbench: Harness) -> None:
    original = create(workbench)
    pet_id = workbench.emitted("pet.created")[0].data["petId"]
    events = workbench.trace(original).span("CreatePet").events
    event_id = next(e["id"] for e in events if e["kind"] == "emit" and e["topic"] == "pet.created")
    new = api(workbench, f"/traces/{original}/emits/{event_id}/reemit", {"payload": {"petId": pet_id}})
    workbench.drain()
    trace = workbench.trace(new["traceId"])
    assert trace.kind == "emit" and trace.raw["replayKind"] == "reemit"
    assert workbench.emitted("pet.created", trace_id=trace.id)[0].data == {"petId": pet_id}
    assert "PetLifecycleOrchestrator" in trace.steps


def test_a_manual_emit_trace_re_emits_and_a_cron_trace_replays_its_tick(workbench: Harness) -> None:
    emitted = workbench.emit("pet.created", {"petId": "404"})
    workbench.drain()
    again = api(workbench, f"/traces/{emitted}/replay", {"body": {"petId": "405"}})["traceId"]
    workbench.drain()
    assert workbench.emitted("pet.created", trace_id=again)[0].data == {"petId": "405"}
    assert api(workbench, f"/traces/{emitted}/replay", {"query": "a=1"}, status=400)["detail"].startswith(
        "query:"
    )
    cron = workbench.run_cron("DeletionReaper")
    tick = api(workbench, f"/traces/{cron.id}/replay")["traceId"]
    workbench.drain()
    replayed = workbench.trace(tick)
    assert replayed.entry == "DeletionReaper" and replayed.status == "completed"
    assert api(workbench, f"/traces/{cron.id}/replay", {"body": 1}, status=400)["detail"].startswith("body:")


def test_copy_as_curl_is_a_shell_command_for_the_recorded_request(workbench: Harness) -> None:
    original = create(workbench)
    curl = workbench.client.get(f"/_workbench/api/traces/{original}/curl").json()["curl"]
    assert curl.startswith("curl -X POST 'http://testserver.local/pets?source=test'")
    assert "-H 'x-request-note: hi'" in curl
    assert """--data-raw '{"name":"Jack","species":"dog","ageMonths":24}'""" in curl


# --- the CLI --------------------------------------------------------------------------------------------


def cli(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": redis_url, "WORKBENCH_STEPS": str(PET_STEPS)}
    return subprocess.run(
        [sys.executable, "-m", "workbench", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_cli_replays_reruns_reemits_and_exports(workbench: Harness, workbench_redis_url: str) -> None:
    original = create(workbench)
    body = '{"name": "Cli", "species": "cat", "ageMonths": 1}'
    done = cli(
        workbench_redis_url, "replay", original, "--body", body, "--header", "x-cli:1", "--query", "from=cli"
    )
    assert done.returncode == 0, done.stderr
    new = done.stdout.strip()
    assert "answered 201" in done.stderr
    request = workbench.trace(new).span("CreatePet").raw["exchange"]["request"]
    assert request["query"] == "from=cli" and request["headers"]["x-cli"] == "1"
    assert request["headers"]["x-request-note"] == "hi" and '"Cli"' in request["body"]
    assert workbench.trace(new).raw["replayOf"] == original

    span = workbench.trace(original).span("PetLifecycleOrchestrator")
    done = cli(workbench_redis_url, "rerun", f"{original}/{span.id}")
    assert done.returncode == 0, done.stderr
    assert workbench.trace(done.stdout.strip()).entry == "PetLifecycleOrchestrator"

    event = next(e["id"] for e in workbench.trace(original).span("CreatePet").events if e["kind"] == "emit")
    done = cli(workbench_redis_url, "reemit", f"{original}/{event}", "--payload", '{"petId": "1"}')
    assert done.returncode == 0, done.stderr
    assert workbench.trace(done.stdout.strip()).kind == "emit"

    done = cli(workbench_redis_url, "export-test", original)
    assert done.returncode == 0 and "def test_post_pets_as_recorded(workbench: Harness)" in done.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["replay", "nope"], 1, "error: no trace nope"),
        (["rerun", "nope/x"], 1, "error: no trace nope"),
        (["rerun", "just-a-span"], 2, "error: TRACE/SPAN: expected TRACE/ID"),
        (["rerun", "{trace}/nope"], 1, "error: no span nope in trace"),
        (["rerun", "{trace}/{api_span}"], 1, "only event and cron runs"),
        (["rerun", "{trace}/{event_span}", "--data", "[oops"], 2, "error: --data: not JSON"),
        (["reemit", "{trace}/nope"], 1, "error: no emit nope"),
        (["replay", "{trace}", "--header", "novalue"], 2, "error: --header: expected NAME:VALUE"),
        (["export-test", "nope"], 1, "error: no trace nope"),
    ],
)
def test_the_cli_says_what_is_wrong_with_a_bad_id(
    workbench: Harness, workbench_redis_url: str, args: list[str], code: int, message: str
) -> None:
    original = create(workbench)
    trace = workbench.trace(original)
    ids = {"trace": original, "api_span": trace.span("CreatePet").id,
           "event_span": trace.span("PetLifecycleOrchestrator").id}  # fmt: skip
    done = cli(workbench_redis_url, *(a.format(**ids) for a in args))
    assert done.returncode == code, (done.stdout, done.stderr)
    assert message in done.stderr and done.stdout == ""


def test_retention_removes_a_trace_with_its_list_of_replays(workbench: Harness) -> None:
    original = create(workbench)
    api(workbench, f"/traces/{original}/replay")
    redis = workbench.runtime.store.redis
    assert workbench.call(lambda: redis.exists(f"wb:replays:{original}")) == 1
    removed = workbench.call(lambda: workbench.runtime.store.enforce_retention(max_traces=0, max_age_s=3600))
    assert removed >= 2
    assert workbench.call(lambda: redis.exists(f"wb:replays:{original}")) == 0


def test_copy_as_curl_runs_in_a_shell_and_sends_the_same_request(stack: Stack) -> None:
    tricky = {"name": 'O\'Brien $HOME `x` "q"', "species": "dog", "ageMonths": 24}
    with stack.client() as c:
        created = c.post("/pets?a=1&b=two%20words", json=tricky, headers={"x-note": "it's"})
        assert created.status_code == 201
        original = created.headers["x-trace-id"]
        curl = c.get(f"/_workbench/api/traces/{original}/curl").json()["curl"]
    assert curl.startswith(f"curl -X POST '{stack.url}/pets?a=1&b=two%20words'")
    sent = subprocess.run(["sh", "-c", curl + " -s -D -"], capture_output=True, text=True, timeout=30)
    assert sent.returncode == 0, sent.stderr
    new = next(
        line.split(":", 1)[1].strip()
        for line in sent.stdout.splitlines()
        if line.lower().startswith("x-trace-id")
    )
    with stack.client() as c:
        spans = {t: c.get(f"/_workbench/api/traces/{t}").json()["spanList"][0] for t in (original, new)}
    first, again = (spans[t]["exchange"]["request"] for t in (original, new))
    assert again["body"] == first["body"] and again["query"] == first["query"]
    assert again["headers"]["x-note"] == "it's"
