"""How an API step's handler is called: its JSON Schema body checked, then its middleware chain
(Motia's `async def mw(req, ctx, next)`, the first in the list outermost), then the handler.

A body schema given as a class is parsed by Litestar before the step runs; one given as a JSON
Schema dict (as Motia's Python steps write them) is checked here, with the same 400 naming the
field.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from litestar.exceptions import ValidationException

from ..context import Context
from ..http import ApiRequest, ApiResponse
from ..step_config import ApiStep

_validators: dict[int, tuple[Mapping[str, Any], Draft202012Validator]] = {}  # id(schema) -> it, compiled


def _validator(schema: Mapping[str, Any]) -> Draft202012Validator:
    cached = _validators.get(id(schema))
    if cached is None or cached[0] is not schema:
        cached = _validators[id(schema)] = (schema, Draft202012Validator(dict(schema)))
    return cached[1]


def _field(error: ValidationError) -> tuple[str, str]:
    """The field at fault (dotted, `body` for the whole body) and what is wrong with it."""
    path = [str(p) for p in error.absolute_path]
    required = error.validator_value
    if error.validator == "required" and isinstance(error.instance, Mapping) and isinstance(required, list):
        missing = [p for p in required if p not in error.instance]
        if missing:
            return ".".join([*path, str(missing[0])]), "required"
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        schema = error.schema if isinstance(error.schema, Mapping) else {}
        allowed = set(schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in allowed)
        if extra:
            return ".".join([*path, str(extra[0])]), "not an allowed field"
    return ".".join(path) or "body", error.message


def check_body(step: ApiStep, body: Any) -> None:
    """Raise a 400 naming each field at fault when the body does not match the step's JSON Schema."""
    schema = step.body_json_schema
    if schema is None:
        return
    errors = sorted(_validator(schema).iter_errors(body), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        fields = [_field(e) for e in errors]
        raise ValidationException(
            detail="; ".join(f"{name}: {message}" for name, message in fields),
            extra=[{"key": name, "message": message} for name, message in fields],
        )


def _as_dict(result: Any) -> Any:
    """What middleware sees of a response: Motia's `{"status", "body", "headers"}` dict."""
    if isinstance(result, ApiResponse):
        return {"status": result.status, "body": result.body, "headers": dict(result.headers)}
    return result


async def invoke(step: ApiStep, request: ApiRequest, ctx: Context) -> Any:
    """The handler's result, after the body check and through the step's middleware."""
    check_body(step, request.body)
    handler = step.handler
    assert handler is not None
    if not step.middleware:
        return await handler(request, ctx)

    def link(index: int) -> Callable[[], Awaitable[Any]]:
        async def call_next() -> Any:
            if index == len(step.middleware):
                return _as_dict(await handler(request, ctx))
            return _as_dict(await step.middleware[index](request, ctx, link(index + 1)))

        return call_next

    return await link(0)()
