"""Guarding the workbench's own routes (the steps' API is left exactly as the steps define it).

- Actions that change things are POSTs, accepted only with a header a cross-site form or image
  cannot send (`X-Workbench`, or htmx's `HX-Request`), and with a same-origin `Origin` when the
  browser sends one: a page on another site cannot make the workbench emit, run or delete.
- With a token configured (`WORKBENCH_TOKEN`, required when `start` serves the UI), every
  workbench route needs it: `Authorization: Bearer <token>`, or the cookie set by opening
  `/_workbench/?token=<token>` once.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

from litestar.types import ASGIApp

COOKIE = "wb_token"
PROTECTED = ("/_workbench",)


async def _reply(
    send: Any, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"status_code": status, "detail": message}).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    *(headers or [])],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": body, "more_body": False})


def guard_middleware(token: str | None) -> Callable[[ASGIApp], ASGIApp]:
    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Any, receive: Any, send: Any) -> None:  # raw ASGI dicts
            if scope["type"] != "http" or not scope["path"].startswith(PROTECTED):
                await app(scope, receive, send)
                return
            headers = {k.decode().lower(): v.decode(errors="replace") for k, v in scope["headers"]}
            if token is not None:
                query = parse_qs(scope.get("query_string", b"").decode())
                given = headers.get("authorization", "").removeprefix("Bearer ").strip()
                cookie = SimpleCookie(headers.get("cookie", ""))
                given = given or (cookie[COOKIE].value if COOKIE in cookie else "")
                from_query = (query.get("token") or [""])[-1]
                if from_query and hmac.compare_digest(from_query, token):
                    # remember it in a cookie and drop it from the address bar
                    cookie_header = f"{COOKIE}={token}; Path=/_workbench; HttpOnly; SameSite=Strict"
                    redirect = [
                        (b"location", scope["path"].encode()),
                        (b"set-cookie", cookie_header.encode()),
                        (b"content-length", b"0"),
                    ]
                    await send({"type": "http.response.start", "status": 303, "headers": redirect})
                    await send({"type": "http.response.body", "body": b""})
                    return
                if not (given and hmac.compare_digest(given, token)):
                    await _reply(send, 401, "the workbench needs its token: open /_workbench/?token=… once",
                                 [(b"www-authenticate", b"Bearer")])  # fmt: skip
                    return
            if scope["method"] not in ("GET", "HEAD", "OPTIONS"):
                if "x-workbench" not in headers and "hx-request" not in headers:
                    await _reply(
                        send, 403, "workbench actions need the X-Workbench header (cross-site request?)"
                    )
                    return
                origin = headers.get("origin")
                if origin and origin != "null" and urlsplit(origin).netloc != headers.get("host", ""):
                    await _reply(send, 403, f"cross-origin request from {origin} refused")
                    return
            await app(scope, receive, send)

        return middleware

    return factory
