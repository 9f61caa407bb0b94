"""The pet lifecycle workflow: the rules and every (from, to) pair through the `workbench` fixture
(in-process requests, drain()); the whole path over real HTTP with a real worker process, and
concurrent conflicting requests against several worker processes."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from workbench.testing import Harness

from .conftest import PET_STEPS, ROOT, Stack, start_stack, wait_until

sys.path.insert(0, str(ROOT / "steps"))
from pets import lifecycle

STATUSES = [
    "new",
    "in_quarantine",
    "healthy",
    "available",
    "pending",
    "adopted",
    "ill",
    "under_treatment",
    "recovered",
]

# DESIGN.md §3, written out again here on purpose: the rules' own table must match it.
ALLOWED = {
    ("in_quarantine", "healthy"), ("healthy", "ill"), ("in_quarantine", "ill"), ("available", "ill"),
    ("healthy", "available"), ("ill", "under_treatment"), ("under_treatment", "recovered"),
    ("recovered", "healthy"), ("available", "pending"), ("pending", "adopted"), ("pending", "available"),
}  # fmt: skip
FOLLOWS = {"healthy": "available", "ill": "under_treatment", "recovered": "healthy"}


def settle(status: str) -> str:
    while status in FOLLOWS:
        status = FOLLOWS[status]
    return status


def transitions(current: str, requested: str) -> list[tuple[str, str, str]]:
    """The moves an allowed request makes: the requested one, then the automatic ones."""
    moves = [(current, requested, "requested")]
    while moves[-1][1] in FOLLOWS:
        moves.append((moves[-1][1], FOLLOWS[moves[-1][1]], "automatic"))
    return moves


def test_the_rules_table_is_the_designs() -> None:
    assert set(lifecycle.REQUESTABLE) == ALLOWED
    assert lifecycle.AUTOMATIC == FOLLOWS
    assert lifecycle.follow_ups("recovered") == ["healthy", "available"]
    assert lifecycle.follow_ups("adopted") == []


def test_every_requested_change_is_applied_exactly_when_a_rule_allows_it(workbench: Harness) -> None:
    pairs = [(a, b) for a, b in itertools.product(STATUSES, STATUSES) if a != b]
    for i, (current, _) in enumerate(pairs):
        pet = {"id": str(i), "name": f"P{i}", "species": "dog", "ageMonths": 1, "status": current,
               "createdAt": 1, "updatedAt": 1}  # fmt: skip
        workbench.state.set("pets", str(i), pet)
    traces = {}
    for i, (current, requested) in enumerate(pairs):  # what UpdatePet emits (test_pets_api.py sends one)
        traces[str(i)] = workbench.emit(
            "pet.status.update.requested",
            {"petId": str(i), "currentStatus": current, "requestedStatus": requested},
        )

    assert workbench.drain().steps == ["PetLifecycleOrchestrator"] * len(pairs)

    pets = workbench.state.group("pets")
    changed: dict[str, list[tuple[str, str, str]]] = {str(i): [] for i in range(len(pairs))}
    for e in workbench.emitted("pet.status.changed"):
        assert e.trace_id == traces[e.data["petId"]]
        changed[e.data["petId"]].append((e.data["from"], e.data["to"], e.data["kind"]))
    applied: dict[str, list[tuple[str, str, str]]] = {str(i): [] for i in range(len(pairs))}
    rejected: dict[str, list[tuple[str, str]]] = {str(i): [] for i in range(len(pairs))}
    for log in workbench.logs("PetLifecycleOrchestrator"):
        f = log.fields
        if log.message == "Transition applied":
            assert log.level == "info"
            applied[f["petId"]].append((f["fromStatus"], f["toStatus"], f["kind"]))
        else:
            assert (log.message, log.level) == ("Transition rejected", "warning"), log
            assert f["reason"] == f"cannot change from {f['fromStatus']} to {f['toStatus']}"
            rejected[f["petId"]].append((f["fromStatus"], f["toStatus"]))
    wrong = []
    for i, (current, requested) in enumerate(pairs):
        pid = str(i)
        if (current, requested) in ALLOWED:
            expected, moves, refused = settle(requested), transitions(current, requested), []
        else:
            expected, moves, refused = current, [], [(current, requested)]
        got = (pets[pid]["status"], changed[pid], applied[pid], rejected[pid])
        if got != (expected, moves, moves, refused):
            wrong.append((current, requested, got, expected))
    assert wrong == []
    assert sum((a, b) in ALLOWED for a, b in pairs) == len(ALLOWED)
    assert {(t.id, t.status) for t in workbench.traces()} == {(t, "completed") for t in traces.values()}
    assert workbench.dead_letters() == []


def status(client: Any, pet_id: str) -> str:
    return str(client.get(f"/pets/{pet_id}").json()["status"])


def request(client: Any, pet_id: str, to: str) -> dict[str, Any]:
    r = client.put(f"/pets/{pet_id}", json={"status": to})
    assert r.status_code == 202, r.text
    return dict(r.json())


def test_the_whole_path_through_the_api_with_a_real_worker(stack: Stack) -> None:
    with stack.client() as client:
        pet = client.post("/pets", json={"name": "Jack", "species": "dog", "ageMonths": 24}).json()
        pid = pet["id"]
        wait_until(lambda: status(client, pid) == "in_quarantine", message="quarantine after the reminder")
        answer = request(client, pid, "healthy")
        assert answer["currentStatus"] == "in_quarantine" and answer["requestedStatus"] == "healthy"
        wait_until(
            lambda: status(client, pid) == "available", message="healthy, then available automatically"
        )
        request(client, pid, "pending")
        wait_until(lambda: status(client, pid) == "pending")
        trace_id = client.put(f"/pets/{pid}", json={"status": "adopted"}).headers["x-trace-id"]
        wait_until(lambda: status(client, pid) == "adopted")
        trace = wait_until(
            lambda: (
                (t := client.get(f"/_workbench/api/traces/{trace_id}").json())["status"] == "completed" and t
            )
        )
        orchestrator = next(s for s in trace["spanList"] if s["step"] == "PetLifecycleOrchestrator")
        applied = [e for e in orchestrator["events"] if e["kind"] == "log"]
        assert [(e["message"], e["fields"]["fromStatus"], e["fields"]["toStatus"]) for e in applied] == [
            ("Transition applied", "pending", "adopted")
        ]
        # a request no rule allows is rejected with its reason, and the pet is unchanged
        trace_id = client.put(f"/pets/{pid}", json={"status": "available"}).headers["x-trace-id"]
        trace = wait_until(
            lambda: (
                (t := client.get(f"/_workbench/api/traces/{trace_id}").json())["status"] == "completed" and t
            )
        )
        orchestrator = next(s for s in trace["spanList"] if s["step"] == "PetLifecycleOrchestrator")
        rejected = next(e for e in orchestrator["events"] if e["kind"] == "log")
        assert rejected["message"] == "Transition rejected" and rejected["level"] == "warning"
        assert rejected["fields"]["reason"] == "cannot change from adopted to available"
        assert status(client, pid) == "adopted"
        # the healthy request's trace shows both the requested and the automatic transition
        logs = client.get(
            "/_workbench/api/logs", params={"step": "PetLifecycleOrchestrator", "limit": 50}
        ).json()
        moves = [(x["fields"].get("fromStatus"), x["fields"].get("toStatus"), x["fields"].get("kind"))
                 for x in reversed(logs["logs"]) if x["message"] == "Transition applied"]  # fmt: skip
        assert moves == [
            ("new", "in_quarantine", "automatic"),
            ("in_quarantine", "healthy", "requested"),
            ("healthy", "available", "automatic"),
            ("available", "pending", "requested"),
            ("pending", "adopted", "requested"),
        ]


@pytest.mark.timeout(90)
def test_concurrent_conflicting_requests_end_in_one_consistent_state(
    redis_url: str, tmp_path: Path, sync_redis: Any
) -> None:
    stack = start_stack(redis_url, tmp_path, steps_dir=PET_STEPS, workers=3, WORKBENCH_CONCURRENCY="10")
    try:
        n = 20
        for i in range(n):
            pet = {"id": str(i), "name": f"P{i}", "species": "cat", "ageMonths": 1, "status": "available",
                   "createdAt": 1, "updatedAt": 1}  # fmt: skip
            sync_redis.hset("wb:state:pets", str(i), json.dumps(pet))
        with stack.client() as client:
            for i in range(n):  # both requests are allowed from `available`; only one can win
                client.put(f"/pets/{i}", json={"status": "pending"})
                client.put(f"/pets/{i}", json={"status": "ill"})
            wait_until(
                lambda: (
                    len(client.get("/_workbench/api/traces", params={"status": "running"}).json()["traces"])
                    == 0
                ),
                30,
                message="all requests processed",
            )
            logs = client.get(
                "/_workbench/api/logs", params={"step": "PetLifecycleOrchestrator", "limit": 500}
            ).json()["logs"]
        final = {k: json.loads(v)["status"] for k, v in sync_redis.hgetall("wb:state:pets").items()}
        for i in range(n):
            mine = [x for x in logs if x["fields"].get("petId") == str(i)]
            requested = [
                x for x in mine if x["message"] == "Transition applied" and x["fields"]["kind"] == "requested"
            ]
            rejected = [x for x in mine if x["message"] == "Transition rejected"]
            assert len(requested) == 1 and len(rejected) == 1, (i, mine)
            winner = requested[0]["fields"]["toStatus"]
            assert final[str(i)] == settle(winner)
            assert rejected[0]["fields"]["fromStatus"] == settle(winner)
    finally:
        stack.stop()
