"""What an API step handler receives and returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ApiRequest:
    method: str
    path: str
    body: Any = None  # parsed JSON (a dict when a body schema validated it)
    path_params: Mapping[str, str] = field(default_factory=dict)
    query_params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    parsed: Any = None  # the validated schema instance, when the step declares `body_schema`


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
