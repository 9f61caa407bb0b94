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


def as_response(result: Any) -> ApiResponse:
    """Handlers may return an `ApiResponse` or a dict `{"status": ..., "body": ..., "headers": ...}`."""
    if isinstance(result, ApiResponse):
        return result
    if isinstance(result, Mapping) and "status" in result:
        unknown = set(result) - {"status", "body", "headers"}
        if unknown:
            raise TypeError(f"response dict has unknown keys {sorted(unknown)}; use status, body, headers")
        return ApiResponse(int(result["status"]), result.get("body"), dict(result.get("headers") or {}))
    raise TypeError(
        f"an API handler must return ApiResponse or {{'status', 'body'}}, not {type(result).__name__}"
    )
