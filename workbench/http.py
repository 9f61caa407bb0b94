"""What an API step handler receives and returns."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

# `req["pathParams"]`: the request as Motia's Python handlers read it, a mapping of these keys
_MOTIA_KEYS = {
    "body": "body",
    "pathParams": "path_params",
    "queryParams": "query_params",
    "headers": "headers",
    "method": "method",
    "path": "path",
}


@dataclass(frozen=True)
class ApiRequest(Mapping[str, Any]):
    """What an API handler gets: attributes (`request.body`, `request.path_params`), and, for
    handlers written for Motia, the same as a mapping (`req.get("body")`, `req["pathParams"]`)."""

    method: str
    path: str
    body: Any = None  # parsed JSON (a dict when a body schema validated it)
    path_params: Mapping[str, str] = field(default_factory=dict)
    query_params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    parsed: Any = None  # the validated schema instance, when the step declares `body_schema`

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, _MOTIA_KEYS[key])
        except KeyError:
            raise KeyError(key) from None

    def __iter__(self) -> Iterator[str]:
        return iter(_MOTIA_KEYS)

    def __len__(self) -> int:
        return len(_MOTIA_KEYS)


@dataclass(frozen=True)
class ApiResponse:
    status: int = 200
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


class InvalidResponse(TypeError):
    """A handler's answer HTTP cannot carry; the client gets one clear 500 and the span fails."""


_NO_BODY = (204, 304)  # and 1xx: statuses whose response has no body


def as_response(result: Any) -> ApiResponse:
    """Handlers may return an `ApiResponse` or a dict `{"status": ..., "body": ..., "headers": ...}`;
    raises `InvalidResponse` for one HTTP cannot carry (a status outside 200-599, a body on a 204 or
    304, a header name or value with a line break or a non-text value)."""
    if isinstance(result, ApiResponse):
        response = result
    elif isinstance(result, Mapping) and "status" in result:
        unknown = set(result) - {"status", "body", "headers"}
        if unknown:
            raise InvalidResponse(
                f"response dict has unknown keys {sorted(unknown)}; use status, body, headers"
            )
        status = result["status"]
        if isinstance(status, bool) or not isinstance(status, int):
            raise InvalidResponse(f"response status must be a whole number, got {status!r}")
        headers = result.get("headers") or {}
        if not isinstance(headers, Mapping):
            raise InvalidResponse(f"response headers must be a dict, got {type(headers).__name__}")
        response = ApiResponse(status, result.get("body"), dict(headers))
    else:
        raise InvalidResponse(
            f"an API handler must return ApiResponse or {{'status', 'body'}}, not {type(result).__name__}"
        )
    if (
        isinstance(response.status, bool)
        or not isinstance(response.status, int)
        or not 200 <= response.status <= 599
    ):
        raise InvalidResponse(
            f"response status {response.status!r} is not an HTTP status a handler may answer (200-599)"
        )
    if response.status in _NO_BODY and response.body not in (None, b"", ""):
        raise InvalidResponse(f"a {response.status} response has no body, but the handler gave one")
    for name, value in response.headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise InvalidResponse(f"response header {name!r}: names and values must be strings")
        if not name or any(c in name for c in "\r\n: ") or any(c in value for c in "\r\n\x00"):
            raise InvalidResponse(f"response header {name!r}: names and values may not hold line breaks")
    return response
