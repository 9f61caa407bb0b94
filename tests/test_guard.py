"""workbench/web/guard.py, driven as the raw ASGI middleware it is, around a tiny ASGI app that
records what reaches it; and once through the real app, to show it is the one in front of it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

import pytest
from litestar.testing import AsyncTestClient

from workbench.registry import discover
from workbench.web.app import create_app
from workbench.web.guard import COOKIE, guard_middleware

from .conftest import PET_STEPS, make_settings

TOKEN = "s3cret-token"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    reached: list[dict[str, Any]] = field(default_factory=list)  # scopes the inner app saw

    def json(self) -> Any:
        return json.loads(self.body)


async def call(
    token: str | None,
    method: str = "GET",
    path: str = "/_workbench/",
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    scope_type: str = "http",
    allowed_hosts: tuple[str, ...] | None = None,
    scheme: str = "http",
) -> Reply:
    reached: list[dict[str, Any]] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope)
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-inner", b"1")]})
        await send({"type": "http.response.body", "body": b"inner", "more_body": False})

    app = guard_middleware(token, allowed_hosts=allowed_hosts)(inner)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    all_headers = {"host": "127.0.0.1:3000", **(headers or {})}
    scope = {
        "type": scope_type,
        "scheme": scheme,
        "method": method,
        "path": path,
        "query_string": urlencode(query or {}).encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in all_headers.items()],
    }
    await app(scope, receive, send)
    if scope_type != "http":
        return Reply(0, {}, b"", reached)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    response_headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return Reply(start["status"], response_headers, body, reached)


def assert_passed(reply: Reply) -> None:
    assert (reply.status, reply.body, len(reply.reached)) == (200, b"inner", 1), reply


def assert_refused(reply: Reply, status: int, detail: str) -> None:
    assert reply.status == status, reply
    assert reply.reached == []  # the app behind never saw it
    assert reply.headers["content-type"] == "application/json"
    assert int(reply.headers["content-length"]) == len(reply.body)
    body = reply.json()
    assert body["status_code"] == status and detail in body["detail"], body


# --- what the guard leaves alone -------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, TOKEN])
@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE"])
async def test_the_steps_routes_are_not_guarded(token: str | None, method: str) -> None:
    assert_passed(await call(token, method, "/pets", headers={"origin": "https://evil.example"}))


@pytest.mark.parametrize("scope_type", ["lifespan", "websocket"])
async def test_non_http_scopes_pass_through(scope_type: str) -> None:
    reply = await call(TOKEN, path="/_workbench/", scope_type=scope_type)
    assert [s["type"] for s in reply.reached] == [scope_type]


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
async def test_reads_need_no_header_without_a_token(method: str) -> None:
    assert_passed(await call(None, method, "/_workbench/api/traces"))


# --- actions need a header a cross-site form cannot send ----------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_actions_without_the_header_are_refused(method: str) -> None:
    reply = await call(None, method, "/_workbench/api/emit")
    assert_refused(reply, 403, "workbench actions need the X-Workbench header")


@pytest.mark.parametrize("header", ["X-Workbench", "HX-Request", "x-workbench"])
async def test_actions_with_x_workbench_or_hx_request_pass(header: str) -> None:
    assert_passed(await call(None, "POST", "/_workbench/api/emit", headers={header: "1"}))


async def test_an_unrelated_custom_header_is_not_enough() -> None:
    reply = await call(None, "POST", "/_workbench/api/emit", headers={"X-Requested-With": "XMLHttpRequest"})
    assert_refused(reply, 403, "X-Workbench")


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://127.0.0.1:3000", True),
        ("HTTP://127.0.0.1:3000/", True),  # origins compare without case or a trailing slash
        ("https://127.0.0.1:3000", False),  # another scheme is another origin
        ("null", False),  # sandboxed or file pages: no origin to trust
        ("http://127.0.0.1:3001", False),  # another port is another site
        ("http://localhost:3000", False),
        ("https://evil.example", False),
    ],
)
async def test_actions_from_another_origin_are_refused(origin: str, allowed: bool) -> None:
    reply = await call(None, "POST", "/_workbench/api/emit", headers={"x-workbench": "1", "origin": origin})
    if allowed:
        assert_passed(reply)
    else:
        assert_refused(reply, 403, f"cross-origin request from {origin} refused")


async def test_origin_is_not_checked_on_reads() -> None:
    assert_passed(
        await call(None, "GET", "/_workbench/api/traces", headers={"origin": "https://evil.example"})
    )


# --- the token --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/_workbench/", "/_workbench/api/health", "/_workbench/static/x.css"])
async def test_with_a_token_every_workbench_route_needs_it(path: str) -> None:
    reply = await call(TOKEN, "GET", path)
    assert_refused(reply, 401, "the workbench needs its token")
    assert reply.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": f"Bearer {TOKEN}"},
        {"authorization": f"Bearer   {TOKEN}  "},
        {"cookie": f"{COOKIE}={TOKEN}"},
        {"cookie": f"theme=dark; {COOKIE}={TOKEN}; other=1"},
    ],
)
async def test_the_token_as_bearer_or_cookie(headers: dict[str, str]) -> None:
    assert_passed(await call(TOKEN, "GET", "/_workbench/api/traces", headers=headers))


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": "Bearer wrong"},
        {"authorization": f"Bearer {TOKEN}x"},
        {"authorization": f"Bearer {TOKEN[:-1]}"},
        {"authorization": "Bearer "},
        {"cookie": f"{COOKIE}=wrong"},
        {"cookie": f"other={TOKEN}"},  # the right value under another name
        {"x-workbench": TOKEN},
    ],
)
async def test_a_wrong_or_misplaced_token_is_refused(headers: dict[str, str]) -> None:
    assert_refused(await call(TOKEN, "GET", "/_workbench/api/traces", headers=headers), 401, "token")


async def test_the_bearer_wins_over_the_cookie() -> None:
    both = {"authorization": "Bearer wrong", "cookie": f"{COOKIE}={TOKEN}"}
    assert_refused(await call(TOKEN, "GET", "/_workbench/", headers=both), 401, "token")


async def test_the_token_in_the_query_becomes_a_cookie_and_leaves_the_address_bar() -> None:
    reply = await call(TOKEN, "GET", "/_workbench/traces", query={"token": TOKEN})
    assert reply.status == 303 and reply.reached == [] and reply.body == b""
    assert reply.headers["location"] == "/_workbench/traces"
    assert reply.headers["content-length"] == "0"
    cookie = [part.strip() for part in reply.headers["set-cookie"].split(";")]
    assert cookie[0] == f"{COOKIE}={TOKEN}"
    assert set(cookie[1:]) == {"Path=/_workbench", "HttpOnly", "SameSite=Strict"}
    # and the cookie it set opens the page it redirected to
    assert_passed(await call(TOKEN, "GET", "/_workbench/traces", headers={"cookie": cookie[0]}))


async def test_a_wrong_token_in_the_query_is_refused_without_a_cookie() -> None:
    reply = await call(TOKEN, "GET", "/_workbench/", query={"token": "wrong"})
    assert_refused(reply, 401, "token")
    assert "set-cookie" not in reply.headers


async def test_with_the_token_actions_still_need_the_header_and_the_origin() -> None:
    auth = {"authorization": f"Bearer {TOKEN}"}
    assert_refused(await call(TOKEN, "POST", "/_workbench/api/emit", headers=auth), 403, "X-Workbench")
    foreign = {**auth, "x-workbench": "1", "origin": "https://evil.example"}
    assert_refused(await call(TOKEN, "POST", "/_workbench/api/emit", headers=foreign), 403, "cross-origin")
    assert_passed(await call(TOKEN, "POST", "/_workbench/api/emit", headers={**auth, "x-workbench": "1"}))


async def test_without_a_credential_an_action_gets_401_before_403() -> None:
    assert_refused(await call(TOKEN, "POST", "/_workbench/api/emit"), 401, "token")


# --- cookies and tokens as browsers and guessers send them ---------------------------------------------


async def test_the_cookie_is_found_beside_a_cookie_with_json_in_it() -> None:
    headers = {"cookie": f'prefs={{"a":1}}; {COOKIE}={TOKEN}'}
    assert_passed(await call(TOKEN, "GET", "/_workbench/", headers=headers))


async def test_a_non_ascii_token_guess_is_a_401() -> None:
    assert_refused(await call(TOKEN, "GET", "/_workbench/", query={"token": "é"}), 401, "token")
    assert_refused(
        await call(TOKEN, "GET", "/_workbench/", headers={"authorization": "Bearer sé"}), 401, "token"
    )


async def test_behind_https_the_cookie_is_secure() -> None:
    for reply in (
        await call(TOKEN, "GET", "/_workbench/", query={"token": TOKEN}, scheme="https"),
        await call(
            TOKEN, "GET", "/_workbench/", query={"token": TOKEN}, headers={"x-forwarded-proto": "https"}
        ),
    ):
        assert reply.status == 303
        assert "Secure" in [part.strip() for part in reply.headers["set-cookie"].split(";")]


async def test_behind_an_https_proxy_the_https_origin_is_the_own_one() -> None:
    headers = {"x-workbench": "1", "origin": "https://127.0.0.1:3000", "x-forwarded-proto": "https"}
    assert_passed(await call(None, "POST", "/_workbench/api/emit", headers=headers))


# --- the host name (DNS rebinding) ----------------------------------------------------------------------

LOOPBACK = ("localhost", "127.0.0.1", "::1")


@pytest.mark.parametrize(
    "host", ["127.0.0.1:3000", "localhost:3000", "LOCALHOST", "[::1]:3000", "app.localhost:3000", "127.0.0.1"]
)
@pytest.mark.parametrize("path", ["/_workbench/api/state", "/pets"])
async def test_loopback_names_are_answered(host: str, path: str) -> None:
    assert_passed(await call(None, "GET", path, headers={"host": host}, allowed_hosts=LOOPBACK))


@pytest.mark.parametrize(
    "host", ["evil.example:3000", "127.0.0.1.evil.example", "localhost.evil.example", "", "[::2]"]
)
@pytest.mark.parametrize("path", ["/_workbench/api/state", "/pets"])
async def test_a_rebinding_host_name_gets_421_everywhere(host: str, path: str) -> None:
    reply = await call(None, "GET", path, headers={"host": host}, allowed_hosts=LOOPBACK)
    assert_refused(reply, 421, "does not answer to the host name")


async def test_allowed_names_and_subdomains() -> None:
    allowed = (*LOOPBACK, "dev.example", ".corp.example")
    assert_passed(
        await call(None, "GET", "/pets", headers={"host": "dev.example:3000"}, allowed_hosts=allowed)
    )
    assert_passed(
        await call(None, "GET", "/pets", headers={"host": "a.b.corp.example"}, allowed_hosts=allowed)
    )
    refused = await call(None, "GET", "/pets", headers={"host": "corp.example.evil"}, allowed_hosts=allowed)
    assert refused.status == 421


async def test_without_a_host_list_any_host_is_answered() -> None:
    assert_passed(await call(None, "GET", "/pets", headers={"host": "anything.example"}))


# --- the real app puts it in front of its routes --------------------------------------------------------


async def test_the_app_is_guarded_by_its_settings_token(redis_url: str) -> None:
    settings = replace(make_settings(redis_url), workbench_token=TOKEN)
    async with AsyncTestClient(create_app(settings, discover(PET_STEPS))) as client:
        refused = await client.get("/_workbench/api/health")
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        ok = await client.get("/_workbench/api/health", headers={"authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200 and ok.json()["redis"] == "ok"
        # the steps' API is not behind the token, nor the header
        created = await client.post("/pets", json={"name": "Jack", "species": "dog", "ageMonths": 2})
        assert created.status_code == 201, created.text
        emit = await client.post(
            "/_workbench/api/emit",
            json={"topic": "pet.created", "data": {}},
            headers={"authorization": f"Bearer {TOKEN}"},
        )
        assert emit.status_code == 403 and "X-Workbench" in emit.json()["detail"]
