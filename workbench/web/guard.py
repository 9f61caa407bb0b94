"""Guarding the web process: the Host it answers to, and the workbench's own routes (the steps' API
is otherwise left exactly as the steps define it).

- **Host.** With a list of allowed host names (`dev` allows only loopback names unless told more
  with `--allow-host`), a request whose `Host` is not on it gets 421: a DNS-rebinding page, whose
  requests carry its own name, cannot read state or emit events through a browser on this machine.
- **Actions.** Workbench actions are POSTs, accepted only with a header a cross-site form or image
  cannot send (`X-Workbench`, or htmx's `HX-Request`), and, when the browser sends an `Origin`,
  only the page's own origin (scheme, host and port; `null` is refused).
- **Token.** With a token configured (`WORKBENCH_TOKEN`, required when `start` serves the UI or
  `dev` listens beyond loopback), every workbench route needs it: `Authorization: Bearer <token>`,
  or the cookie set by opening `/_workbench/?token=<token>` once (`Secure` behind HTTPS).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from litestar.types import ASGIApp

COOKIE = "wb_token"
PROTECTED = ("/_workbench", "/metrics")  # /metrics: the web process's Prometheus metrics


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


def parse_cookies(header: str) -> dict[str, str]:
    """Cookies by name, leniently: a malformed cookie another app on the same host set (JSON in its
    value, say) does not hide the others (`http.cookies` drops the whole header then)."""
    found: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name and name not in found:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            found[name] = value
    return found


def same_secret(given: str, token: str) -> bool:
    """A constant-time comparison that any text can be given to (a non-ASCII guess is just wrong)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode("utf-8"))


def host_name(host_header: str) -> str:
    """`Host: 127.0.0.1:3000` → `127.0.0.1`; `[::1]:3000` → `::1`; lower case."""
    try:
        return (urlsplit("//" + host_header).hostname or "").lower()
    except ValueError:
        return ""


def host_allowed(host_header: str, allowed: Iterable[str]) -> bool:
    name = host_name(host_header)
    if not name:
        return False
    for pattern in allowed:
        pattern = pattern.lower()
        if pattern == "*" or name == pattern or (pattern.startswith(".") and name.endswith(pattern)):
            return True
        if pattern == "localhost" and name.endswith(".localhost"):  # RFC 6761: always loopback
            return True
    return False


def _own_origin(scope: Any, headers: dict[str, str]) -> str:
    scheme = headers.get("x-forwarded-proto", "").split(",")[0].strip() or scope.get("scheme", "http")
    return f"{scheme}://{headers.get('host', '')}".lower()


def guard_middleware(
    token: str | None, *, allowed_hosts: Iterable[str] | None = None
) -> Callable[[ASGIApp], ASGIApp]:
    """`allowed_hosts`: the host names this process answers to (None: any)."""
    hosts = tuple(allowed_hosts) if allowed_hosts is not None else None

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Any, receive: Any, send: Any) -> None:  # raw ASGI dicts
            if scope["type"] not in ("http", "websocket"):
                await app(scope, receive, send)
                return
            headers = {k.decode("latin-1").lower(): v.decode("utf-8", "replace") for k, v in scope["headers"]}
            if hosts is not None and not host_allowed(headers.get("host", ""), hosts):
                if scope["type"] == "http":
                    shown = headers.get("host", "")[:100]
                    await _reply(send, 421, f"this server does not answer to the host name {shown!r} "
                                 "(allow it with --allow-host or WORKBENCH_ALLOWED_HOSTS)")  # fmt: skip
                return
            if scope["type"] != "http" or not scope["path"].startswith(PROTECTED):
                await app(scope, receive, send)
                return
            if token is not None:
                query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
                given = headers.get("authorization", "").removeprefix("Bearer ").strip()
                given = given or parse_cookies(headers.get("cookie", "")).get(COOKIE, "")
                from_query = (query.get("token") or [""])[-1]
                if from_query and same_secret(from_query, token):
                    # remember it in a cookie and drop it from the address bar
                    secure = "; Secure" if _own_origin(scope, headers).startswith("https:") else ""
                    cookie_header = f"{COOKIE}={token}; Path=/_workbench; HttpOnly; SameSite=Strict{secure}"
                    redirect = [
                        (b"location", scope["path"].encode()),
                        (b"set-cookie", cookie_header.encode()),
                        (b"content-length", b"0"),
                    ]
                    await send({"type": "http.response.start", "status": 303, "headers": redirect})
                    await send({"type": "http.response.body", "body": b""})
                    return
                if not (given and same_secret(given, token)):
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
                if origin is not None and origin.lower().rstrip("/") != _own_origin(scope, headers):
                    await _reply(send, 403, f"cross-origin request from {origin[:100]} refused")
                    return
            await app(scope, receive, send)

        return middleware

    return factory
