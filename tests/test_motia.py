"""Motia 0.17's Python steps run unchanged (issue 12): a Motia-style project (steps in `src/`, helper
modules beside them, tests/fixtures/motia_project) through the real web process and worker.

The choices these tests pin, as Motia 0.17's own source has them (MotiaDev/motia):
- `ctx.state.get` answers `{"data": value}` for a stored dict and `{"data": None}` for a missing key;
  `get_group` the list of values (packages/core/src/python/motia_rpc_state_manager.py);
- `infrastructure.queue.maxRetries` counts every attempt: the queue gives up when attempts reach it
  (packages/core/src/queue-manager.ts; the BullMQ adapter passes it as BullMQ's `attempts`,
  packages/adapter-bullmq-events/src/worker-manager.ts);
- middleware listed first is the outermost; `next()` takes no argument (python motia_middleware.py).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import Redis as SyncRedis

from workbench.redis_server import RedisServer

from .conftest import FIXTURES, Stack, start_stack, wait_until

PROJECT = FIXTURES / "motia_project"
SRC = PROJECT / "src"
H = {"x-workbench": "1"}
FLOW = "PyPetManagement"
STEPS = {
    "PyCreatePet", "PyGetPets", "PyGetPet", "PyUpdatePet", "PyDeletePet", "PySetNextFeedingReminder",
    "PyPetCreatedAudit", "PyPetLifecycleOrchestrator", "PyDeletionReaper", "PyVetCheck", "PyVetFollowup",
    "PyStateProbe", "PyAdminStats", "PyPetSummary",
}  # fmt: skip


@pytest.fixture(scope="module")
def motia(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One web process and one worker on the fixture project for the whole module (each test makes
    its own pets, so they do not see each other's)."""
    client = SyncRedis.from_url(redis_server.url)
    client.flushall()
    client.close()
    tmp = tmp_path_factory.mktemp("motia")
    stack = start_stack(redis_server.url, tmp, steps_dir=SRC, PET_STORE_PATH=str(tmp / "pets.json"))
    yield stack
    stack.stop()


@pytest.fixture
def client(motia: Stack) -> Iterator[httpx.Client]:
    with motia.client() as c:
        yield c


# --- helpers -------------------------------------------------------------------------------------------


def trace_of(client: httpx.Client, trace_id: str) -> dict[str, Any]:
    r = client.get(f"/_workbench/api/traces/{trace_id}")
    return dict(r.json()) if r.status_code == 200 else {"status": "missing", "spanList": []}


def spans(trace: dict[str, Any], step: str) -> list[dict[str, Any]]:
    return [s for s in trace["spanList"] if s["step"] == step]


def events(span: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in span.get("events", []) if e["kind"] == kind]


def log_named(span: dict[str, Any], message: str) -> dict[str, Any] | None:
    return next((e for e in events(span, "log") if e["message"] == message), None)


def settled(client: httpx.Client, trace_id: str, timeout: float = 15) -> dict[str, Any]:
    return wait_until(  # type: ignore[no-any-return]
        lambda: (t := trace_of(client, trace_id))["status"] not in ("running", "missing") and t,
        timeout,
        message=f"trace {trace_id} to settle",
    )


def runs_of(client: httpx.Client, trace_id: str, step: str, statuses: list[str]) -> dict[str, Any]:
    """The trace once `step`'s spans in it have exactly these statuses."""

    def ready() -> dict[str, Any] | None:
        trace = trace_of(client, trace_id)
        return trace if [s["status"] for s in spans(trace, step)] == statuses else None

    return wait_until(ready, 15, message=f"{step} {statuses} in trace {trace_id}")  # type: ignore[no-any-return]


def warns_about(span: dict[str, Any], topic: str) -> bool:
    """The span shows `topic` as a warning: a warning-level log about it (a field naming it, or the
    message naming it before any parenthesis, where the declared topics may be listed), or its emit
    marked."""
    for e in span.get("events", []):
        if e["kind"] == "log" and e.get("level") == "warning":
            if topic in (e.get("fields") or {}).values() or topic in e["message"].split("(")[0]:
                return True
        if e["kind"] == "emit" and e.get("topic") == topic and (e.get("warning") or e.get("undeclared")):
            return True
    return False


def create_pet(client: httpx.Client, **body: Any) -> tuple[dict[str, Any], str]:
    payload = {"name": f"Rex-{uuid.uuid4().hex[:6]}", "species": "dog", "ageMonths": 24, **body}
    r = client.post("/py/pets", json=payload)
    assert r.status_code == 201, r.text
    return dict(r.json()), r.headers["x-trace-id"]


def pet_status(client: httpx.Client, pet_id: str) -> str | None:
    r = client.get(f"/py/pets/{pet_id}")
    return r.json().get("status") if r.status_code == 200 else None


def settle_lifecycle(client: httpx.Client, pet_id: str) -> None:
    """new → in_quarantine (after the feeding reminder) → healthy (the orchestrator's late emit)."""
    wait_until(lambda: pet_status(client, pet_id) == "healthy", 15, message=f"pet {pet_id} healthy")


def emit_new_trace(client: httpx.Client, topic: str, data: Any) -> str:
    r = client.post("/_workbench/api/emit", json={"topic": topic, "data": data}, headers=H)
    assert r.status_code == 202, r.text
    return str(r.json()["traceId"])


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "WORKBENCH_STEPS"}
    return subprocess.run(
        [sys.executable, "-m", "workbench", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


# --- 1. discovery ----------------------------------------------------------------------------------------


def test_without_steps_flag_src_is_used_and_every_step_file_found_helpers_not(tmp_path: Path) -> None:
    assert not (PROJECT / "steps").exists()
    listed = run_cli("steps", cwd=PROJECT)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    rows = [x for x in listed.stdout.splitlines()[1:] if x.strip() and not x.startswith("note:")]
    names = {x.split()[0] for x in rows}
    # `*_step.py`, the dotted `deletion_reaper.cron_step.py` / `set_next_feeding_reminder.job_step.py`,
    # and `pet_summary.step.py`; `types.py`, `pet_store.py`, `auth.py` are helpers, not steps
    assert names == STEPS, listed.stdout
    assert "includeFiles" in listed.stdout + listed.stderr  # accepted, and said to have no effect
    checked = run_cli("check", cwd=PROJECT)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert re.search(rf"ok: {len(STEPS)} steps in (.*/)?src\b", checked.stdout), checked.stdout


def test_a_key_given_in_both_spellings_is_an_error_naming_both(tmp_path: Path) -> None:
    step = tmp_path / "src" / "python" / "both_step.py"
    step.parent.mkdir(parents=True)
    step.write_text(
        "SCHEMA = {'type': 'object', 'properties': {'name': {'type': 'string'}}}\n"
        "config = {'type': 'api', 'name': 'Both', 'path': '/both', 'method': 'POST', 'emits': [],\n"
        "          'bodySchema': SCHEMA, 'body_schema': SCHEMA}\n"
        "async def handler(req, ctx=None):\n"
        "    return {'status': 200, 'body': {}}\n"
    )
    checked = run_cli("check", cwd=tmp_path)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "both_step.py" in checked.stderr
    assert "bodySchema" in checked.stderr and "body_schema" in checked.stderr, checked.stderr


# --- 2. API steps: `req` as a mapping, `:id` routes, bodies checked ---------------------------------------


def test_create_read_update_delete_through_colon_id_routes(client: httpx.Client) -> None:
    pet, _ = create_pet(client, species="cat", ageMonths=13)
    assert pet["status"] == "new" and pet["species"] == "cat" and pet["ageMonths"] == 13
    pid = pet["id"]
    got = client.get(f"/py/pets/{pid}")  # `req["pathParams"]["id"]`
    assert got.status_code == 200 and got.json()["name"] == pet["name"]
    updated = client.put(f"/py/pets/{pid}", json={"name": "Felix", "ageMonths": 14})
    assert updated.status_code == 200, updated.text
    assert (updated.json()["name"], updated.json()["ageMonths"]) == ("Felix", 14)
    assert client.get(f"/py/pets/{pid}").json()["name"] == "Felix"
    bird, _ = create_pet(client, species="bird")
    birds = client.get("/py/pets", params={"species": "bird"}).json()["pets"]  # `req.get("queryParams")`
    assert bird["id"] in [p["id"] for p in birds] and all(p["species"] == "bird" for p in birds)
    deleted = client.delete(f"/py/pets/{pid}")
    assert deleted.status_code == 202 and deleted.json()["petId"] == pid
    assert client.get(f"/py/pets/{pid}").json()["status"] == "deleted"
    assert pid not in [p["id"] for p in client.get("/py/pets").json()["pets"]]
    for method in ("GET", "PUT", "DELETE"):
        missing = client.request(method, "/py/pets/no-such-pet", json={} if method == "PUT" else None)
        assert (missing.status_code, missing.json()) == (404, {"message": "Not found"}), method


@pytest.mark.parametrize(
    ("method", "body", "field"),
    [
        ("POST", {"name": "Bad", "species": "fish", "ageMonths": 1}, "species"),
        ("POST", {"name": "Bad", "species": "dog"}, "ageMonths"),
        ("POST", {"name": "", "species": "dog", "ageMonths": 1}, "name"),
        ("POST", {"name": "Bad", "species": "dog", "ageMonths": -1}, "ageMonths"),
        ("POST", {"name": "Bad", "species": "dog", "ageMonths": 1, "colour": "red"}, "colour"),
        ("PUT", {"ageMonths": -1}, "ageMonths"),  # the pydantic model's bound
        ("PUT", {"owner": "x"}, "owner"),  # extra="forbid"
    ],
)
def test_a_body_its_schema_rejects_is_400_naming_the_field(
    client: httpx.Client, method: str, body: dict[str, Any], field: str
) -> None:
    if method == "POST":
        r = client.post("/py/pets", json=body)
    else:
        pet, _ = create_pet(client)
        r = client.put(f"/py/pets/{pet['id']}", json=body)
    assert r.status_code == 400, r.text
    assert field in r.text
    if method == "POST":
        assert "Bad" not in [p["name"] for p in client.get("/py/pets").json()["pets"]]


def test_middleware_answers_401_without_the_header_and_the_outer_one_adds_a_header(
    client: httpx.Client,
) -> None:
    refused = client.get("/py/admin/stats")
    assert (refused.status_code, refused.json()) == (401, {"error": "Unauthorized"})
    # listed first, so outermost: it wraps the early answer too
    assert refused.headers["x-powered-by"] == "motia-style-middleware"
    trace = settled(client, refused.headers["x-trace-id"])
    [span] = spans(trace, "PyAdminStats")
    warning = log_named(span, "Rejected: no API key")
    assert warning is not None and warning["level"] == "warning"  # `ctx.logger.warn(message, {fields})`
    assert warning["fields"] == {"path": "/py/admin/stats"}
    allowed = client.get("/py/admin/stats", headers={"x-api-key": "k"})
    assert allowed.status_code == 200 and isinstance(allowed.json()["pets"], int)
    assert allowed.headers["x-powered-by"] == "motia-style-middleware"
    assert allowed.headers["cache-control"] == "no-store"  # the handler's own headers are kept


# --- 3. events: dict emits, Motia's looser emits, late emits ------------------------------------------------


def test_a_dict_emit_feeds_the_event_step_with_its_input_schema(client: httpx.Client) -> None:
    pet, trace_id = create_pet(client)
    trace = runs_of(client, trace_id, "PySetNextFeedingReminder", ["completed"])
    [create] = spans(trace, "PyCreatePet")
    created = log_named(create, "🐾 Pet created")
    assert created is not None and created["level"] == "info"
    # the positional dict shows as the log's fields
    assert created["fields"] == {"petId": pet["id"], "name": pet["name"], "species": "dog"}
    [job] = spans(trace, "PySetNextFeedingReminder")
    assert job["topic"] == "py.feeding.reminder.enqueued" and job["attempt"] == 1
    line = log_named(job, "🔄 Setting next feeding reminder")
    assert line is not None and line["fields"]["petId"] == pet["id"]
    stored = client.get(f"/py/pets/{pet['id']}").json()
    assert stored["notes"] == "Welcome!" and stored["nextFeedingAt"] > stored["createdAt"]
    # `emits: []` may emit anything (Motia's rule): the job's emit reached the orchestrator
    assert "py.feeding.reminder.completed" in [e["topic"] for e in events(job, "emit")]
    wait_until(lambda: spans(trace_of(client, trace_id), "PyPetLifecycleOrchestrator"), 15)


def test_an_undeclared_emit_is_delivered_and_shown_as_a_warning(motia: Stack, client: httpx.Client) -> None:
    pet, trace_id = create_pet(client)
    trace = runs_of(client, trace_id, "PyPetCreatedAudit", ["completed"])  # fed by the undeclared emit
    [create] = spans(trace, "PyCreatePet")
    assert create["status"] == "completed" and create["http"]["status"] == 201
    assert warns_about(create, "py.pet.created"), create["events"]
    assert not warns_about(create, "py.feeding.reminder.enqueued")  # declared (as an object)
    audit = client.get("/_workbench/api/state").json()["groups"]["py-audit"][pet["id"]]
    assert audit == {"name": pet["name"], "traceId": trace_id}
    terminal = motia.web.output().splitlines()
    assert any("py.pet.created" in x and "warn" in x.lower() for x in terminal), motia.web.output()[-3000:]
    flows = client.get("/_workbench/flows")  # and on the flows page: a warning edge to its subscriber
    assert flows.status_code == 200
    assert 'class="edge-label undeclared"' in flows.text
    assert "⚠ py.pet.created (not declared)" in flows.text


def test_tasks_a_handler_starts_log_and_emit_after_it_returned_into_the_same_trace(
    client: httpx.Client,
) -> None:
    pet, trace_id = create_pet(client)
    settle_lifecycle(client, pet["id"])  # healthy only through the orchestrator's late emit

    def both_runs() -> dict[str, Any] | None:
        t = trace_of(client, trace_id)
        runs = spans(t, "PyPetLifecycleOrchestrator")
        done = len(runs) == 2 and all(s["status"] == "completed" for s in runs)
        return t if done else None

    trace = wait_until(both_runs, 15, message="both orchestrator runs in the create trace")
    first, second = sorted(spans(trace, "PyPetLifecycleOrchestrator"), key=lambda s: s["startedAt"])
    assert first["topic"] == "py.feeding.reminder.completed"
    assert second["topic"] == "py.pet.status.update.requested"
    late_log = wait_until(lambda: log_named(_span(client, trace_id, first["id"]), "🤖 Automatic progression"))
    assert late_log["fields"] == {"petId": pet["id"], "nextStatus": "healthy"}
    span = _span(client, trace_id, first["id"])
    late_emit = next(e for e in events(span, "emit") if e["topic"] == "py.pet.status.update.requested")
    # recorded in the span that started them, after that span ended (the handler slept 0.3 s first)
    assert late_log["ts"] >= span["finishedAt"] + 200
    assert late_emit["ts"] >= late_log["ts"]
    moved = log_named(second, "✅ Lifecycle transition completed")
    assert moved is not None and moved["fields"]["newStatus"] == "healthy"
    assert settled(client, trace_id)["status"] == "completed"


def _span(client: httpx.Client, trace_id: str, span_id: str) -> dict[str, Any]:
    return next(s for s in trace_of(client, trace_id)["spanList"] if s["id"] == span_id)


# --- 4. cron in a dotted file ----------------------------------------------------------------------------


def test_the_cron_step_in_a_dotted_file_name_runs_on_demand(client: httpx.Client) -> None:
    crons = {c["step"]: c for c in client.get("/_workbench/api/cron").json()["cron"]}
    assert crons["PyDeletionReaper"]["cron"] == "0 2 * * *"
    pet, _ = create_pet(client)
    assert client.delete(f"/py/pets/{pet['id']}", params={"purgeInMs": "0"}).status_code == 202
    r = client.post("/_workbench/api/cron/PyDeletionReaper/run", headers=H)
    assert r.status_code == 202, r.text
    trace = settled(client, r.json()["traceId"])
    assert trace["status"] == "completed"
    [reaper] = spans(trace, "PyDeletionReaper")
    assert reaper["status"] == "completed" and reaper["kind"] == "cron"
    purged = [
        e["fields"]["petId"] for e in events(reaper, "log") if e["message"] == "💀 Pet permanently purged"
    ]
    assert pet["id"] in purged
    done = log_named(reaper, "✅ Deletion Reaper completed")
    assert done is not None and done["fields"]["purgedCount"] == len(purged)
    assert {"py.pet.purged", "py.reaper.completed"} <= {e["topic"] for e in events(reaper, "emit")}
    assert client.get(f"/py/pets/{pet['id']}").status_code == 404


# --- 5. infrastructure ----------------------------------------------------------------------------------


def test_infrastructure_max_retries_counts_every_attempt_then_dead_letter(client: httpx.Client) -> None:
    trace_id = emit_new_trace(client, "py.vet.check.requested", {"mode": "fail"})
    trace = settled(client, trace_id, 20)
    attempts = spans(trace, "PyVetCheck")
    # "maxRetries": 2 — Motia's queue gives up when attempts reach maxRetries
    assert [(s["attempt"], s["status"]) for s in attempts] == [(1, "failed"), (2, "failed")]
    assert [s["willRetry"] for s in attempts] == [True, False]
    assert attempts[-1]["error"]["message"] == "vet service unavailable"
    assert trace["status"] == "failed"
    letters = client.get("/_workbench/api/dead-letters").json()["deadLetters"]
    assert [(x["step"], x["attempts"]) for x in letters if x["traceId"] == trace_id] == [("PyVetCheck", 2)]


def test_infrastructure_handler_timeout_cancels_a_slow_attempt(client: httpx.Client) -> None:
    trace_id = emit_new_trace(client, "py.vet.check.requested", {"mode": "sleep"})
    trace = settled(client, trace_id, 20)
    attempts = spans(trace, "PyVetCheck")
    assert [(s["attempt"], s["status"]) for s in attempts] == [(1, "timed_out"), (2, "timed_out")]
    for s in attempts:  # "handler": {"timeout": 0.5}, the handler sleeps 3 s
        assert 400 <= s["finishedAt"] - s["startedAt"] < 2500, s
        assert log_named(s, "🩺 Vet check done") is None
    ok = settled(client, emit_new_trace(client, "py.vet.check.requested", {"mode": "ok"}))
    assert [(s["attempt"], s["status"]) for s in spans(ok, "PyVetCheck")] == [(1, "completed")]


def test_infrastructure_delay_seconds_delays_the_first_run(client: httpx.Client) -> None:
    trace = settled(client, emit_new_trace(client, "py.vet.followup.requested", {"petId": "p1"}))
    [run] = spans(trace, "PyVetFollowup")
    assert run["status"] == "completed"
    assert run["startedAt"] - trace["start"] >= 900, (run, trace["start"])  # "delaySeconds": 1 after the emit


# --- 6. ctx.state, ctx.trace_id, ctx.flows --------------------------------------------------------------


def test_ctx_state_round_trip_answers_as_motia_python_does(client: httpx.Client) -> None:
    value = {"name": "Rex", "tags": ["good", "boy"]}
    r = client.post("/py/state-probe/rex", json={"value": value})
    assert r.status_code == 200, r.text
    answers = r.json()
    assert answers["set"] == value  # set answers the value stored
    assert answers["get"] == {"data": value}  # Motia's Python state.get wraps a stored dict
    assert answers["missing"] == {"data": None}
    assert answers["afterDelete"] == {"data": None}
    assert answers["group"] == [value]  # get_group: the list of values
    assert answers["groupCamel"] == [value]  # getGroup, Motia's other spelling
    assert answers["traceId"] == r.headers["x-trace-id"]
    assert answers["flows"] == [FLOW]
    # stored as the value itself, not the wrapper
    assert client.get("/_workbench/api/state").json()["groups"]["py-probe"] == {"rex": value}


# --- 7. the workbench shows them like any other step ---------------------------------------------------


def test_the_flows_page_draws_emit_objects_by_their_label(client: httpx.Client) -> None:
    flows = client.get("/_workbench/flows")
    assert flows.status_code == 200
    one = client.get("/_workbench/flows", params={"flow": FLOW})
    assert one.status_code == 200
    # emit objects by their label: a plain one, a conditional one (to PyPetSummary's virtualSubscribes)
    # and a virtualEmits one (PyPetSummary → the orchestrator)
    for label in ("Schedules feeding", "Flags a very young pet", "Staff request a status by hand"):
        assert label in one.text, label
    assert client.get("/_workbench/flows/node/PyDeletionReaper").status_code == 200


def test_the_endpoints_page_and_openapi_have_colon_id_as_a_path_parameter(client: httpx.Client) -> None:
    endpoints = client.get("/_workbench/endpoints")
    assert endpoints.status_code == 200 and "/py/pets" in endpoints.text
    openapi = client.get("/schema/openapi.json")
    assert openapi.status_code == 200, openapi.text
    paths = openapi.json()["paths"]
    assert not [p for p in paths if ":" in p], list(paths)
    assert {"/py/pets", "/py/pets/{id}", "/py/state-probe/{key}", "/py/summary"} <= set(paths)
    assert {"get", "put", "delete"} <= set(paths["/py/pets/{id}"])
    for method in ("get", "put", "delete"):
        params = paths["/py/pets/{id}"][method].get("parameters", []) + paths["/py/pets/{id}"].get(
            "parameters", []
        )
        assert {"name": "id", "in": "path"} in [{"name": p["name"], "in": p["in"]} for p in params], method
    listed = paths["/py/pets"]["get"].get("parameters", [])
    assert {"name": "species", "in": "query"} in [{"name": p["name"], "in": p["in"]} for p in listed]
    assert "requestBody" in paths["/py/pets"]["post"] and "201" in paths["/py/pets"]["post"]["responses"]
