"""What an API step answers: a response HTTP cannot carry is one clear 500 and a failed span (the client
and the trace agree); a JSON body needs a JSON content type (a cross-site form cannot reach a step)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench.testing import Harness

from .conftest import steps_harness

ANSWERS = {
    "no_content_with_body": '{"status": 204, "body": {"a": 1}}',
    "not_modified_with_body": '{"status": 304, "body": "x"}',
    "zero": '{"status": 0, "body": None}',
    "ninety_nine": '{"status": 99, "body": None}',
    "too_big": '{"status": 999, "body": None}',
    "crlf_header": '{"status": 200, "body": {}, "headers": {"x-a": "1\\r\\nset-cookie: evil=1"}}',
    "unserialisable": '{"status": 200, "body": {"when": object()}}',
    "not_a_number": '{"status": "200", "body": {}}',
    "nothing": "None",
}


def _sources() -> dict[str, str]:
    sources = {}
    for name, answer in ANSWERS.items():
        config = {"type": "api", "name": name.title().replace("_", ""), "method": "GET", "path": f"/{name}"}
        sources[name] = f"config = {config!r}\n\n\nasync def handler(request, ctx):\n    return {answer}\n"
    sources["echo"] = (
        'config = {"type": "api", "name": "Echo", "method": "POST", "path": "/echo"}\n\n\n'
        'async def handler(request, ctx):\n    return {"status": 200, "body": request.body}\n'
    )
    return sources


@pytest.fixture
def answers(tmp_path: Path, workbench_redis_url: str) -> Iterator[Harness]:
    with steps_harness(tmp_path, workbench_redis_url, _sources()) as harness:
        yield harness


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_an_answer_http_cannot_carry_is_a_500_and_a_failed_span(answers: Harness, name: str) -> None:
    response = answers.client.get(f"/{name}")
    assert response.status_code == 500
    assert response.json()["error"] == "Internal server error"
    assert "set-cookie" not in response.headers
    trace = answers.trace(response)
    assert trace.status == "failed"
    span = trace.spans[0]
    assert span.status == "failed" and span.http is not None and span.http["status"] == 500
    assert span.error is not None and span.error["message"]


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""]
)
def test_a_json_body_needs_a_json_content_type(answers: Harness, content_type: str) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = answers.client.post("/echo", content=b'{"a": 1}', headers=headers)
    assert response.status_code == 415
    assert response.json()["fields"][0]["field"] == "content-type"
    assert answers.traces() == []  # refused at the door: no step ran


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "application/vnd.x+json"]
)
def test_json_content_types_are_read(answers: Harness, content_type: str) -> None:
    response = answers.client.post("/echo", content=b'{"a": 1}', headers={"content-type": content_type})
    assert response.status_code == 200 and response.json() == {"a": 1}


def test_the_pet_store_refuses_a_text_plain_form_from_another_site(workbench: Harness) -> None:
    body = b'{"name": "Jack", "species": "dog", "ageMonths": 1}'
    response = workbench.client.post("/pets", content=body, headers={"content-type": "text/plain"})
    assert response.status_code == 415
    assert workbench.state.group("pets") == {} and workbench.traces() == []
