"""Step definitions: the validated form of a step file's `config` and `handler`.

A step file is `*_step.py` with a module-level `config` dict and (except noop steps) an async
`handler`. `build_step` turns the pair into one of four small records, or raises `StepError`
naming the file and the key at fault.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .cron import CronError, CronSchedule

StepKind = Literal["api", "event", "cron", "noop"]
Handler = Callable[..., Awaitable[Any]]

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_PATH_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")


class StepError(Exception):
    """A step file that cannot be used; the message names the file and the key at fault."""

    def __init__(self, file: Path | str, key: str | None, reason: str) -> None:
        self.file = str(file)
        self.key = key
        self.reason = reason
        where = f"{self.file}: config[{key!r}]" if key else self.file
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class RetryPolicy:
    """How often a failing background step is tried, and how long to wait between tries."""

    attempts: int = 3
    backoff_s: float = 1.0  # wait before the second attempt; doubles each time ...
    max_backoff_s: float = 30.0  # ... up to this cap; each wait gets up to 25% random jitter

    def delay_s(self, failed_attempt: int, rand: float) -> float:
        """The wait after attempt number `failed_attempt` (1-based) failed; `rand` is in [0, 1)."""
        base = min(self.max_backoff_s, self.backoff_s * 2.0 ** min(failed_attempt - 1, 60))
        return base * (1 + 0.25 * rand)


@dataclass(frozen=True)
class Step:
    name: str
    kind: StepKind
    file: Path
    description: str = ""
    flows: tuple[str, ...] = ()
    emits: tuple[str, ...] = ()
    virtual_emits: tuple[str, ...] = ()
    virtual_subscribes: tuple[str, ...] = ()
    handler: Handler | None = None


@dataclass(frozen=True)
class ApiStep(Step):
    method: str = "GET"
    path: str = "/"
    body_schema: Any = None
    response_schema: Mapping[int, Any] = field(default_factory=dict)
    query_params: tuple[str, ...] = ()

    @property
    def path_params(self) -> list[str]:
        return _PATH_PARAM.findall(self.path)


@dataclass(frozen=True)
class EventStep(Step):
    subscribes: tuple[str, ...] = ()
    input_schema: Any = None
    retries: RetryPolicy = field(default_factory=RetryPolicy)
    timeout_s: float = 30.0


@dataclass(frozen=True)
class CronStep(Step):
    cron: str = ""
    timezone: str | None = None
    schedule: CronSchedule | None = None
    retries: RetryPolicy = field(default_factory=lambda: RetryPolicy(attempts=1))
    timeout_s: float = 300.0


@dataclass(frozen=True)
class NoopStep(Step):
    pass


def is_api(step: Step) -> bool:
    return isinstance(step, ApiStep)


def is_event(step: Step) -> bool:
    return isinstance(step, EventStep)


def is_cron(step: Step) -> bool:
    return isinstance(step, CronStep)


# --- validation -----------------------------------------------------------------------------------

_COMMON = {"type", "name", "description", "flows", "emits", "virtual_emits", "virtual_subscribes"}
_KEYS: dict[str, tuple[set[str], set[str]]] = {  # kind -> (required, optional)
    "api": ({"type", "name", "path", "method"}, _COMMON | {"body_schema", "response_schema", "query_params"}),
    "event": ({"type", "name", "subscribes"}, _COMMON | {"input_schema", "retries", "timeout"}),
    "cron": ({"type", "name", "cron"}, _COMMON | {"timezone", "retries", "timeout"}),
    "noop": ({"type", "name"}, _COMMON),
}
_HANDLER_PARAMS = {"api": ("request", "ctx"), "event": ("data", "ctx"), "cron": ("ctx",)}


def _str(file: Path, cfg: Mapping[str, Any], key: str, default: str = "") -> str:
    value = cfg.get(key, default)
    if not isinstance(value, str):
        raise StepError(file, key, f"must be a string, got {type(value).__name__}")
    return value


def _topics(file: Path, cfg: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = cfg.get(key, [])
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise StepError(file, key, f"must be a list of strings, got {type(value).__name__}")
    for item in value:
        if not isinstance(item, str) or not _NAME.match(item):
            raise StepError(file, key, f"{item!r} is not a valid topic name")
    return tuple(value)


def _schema(file: Path, key: str, value: Any) -> Any:
    """Schemas are pydantic models or msgspec Structs (anything Litestar can document)."""
    if value is None:
        return None
    if inspect.isclass(value) and (hasattr(value, "model_validate") or hasattr(value, "__struct_fields__")):
        return value
    raise StepError(file, key, f"must be a pydantic model or msgspec Struct class, got {value!r}")


def _number(file: Path, key: str, value: Any, minimum: float) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < minimum
    ):
        raise StepError(file, key, f"must be a number ≥ {minimum}, got {value!r}")
    return float(value)


def _retries(file: Path, value: Any) -> RetryPolicy:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise StepError(file, "retries", f"must be at least 1 attempt, got {value}")
        return RetryPolicy(attempts=value)
    if isinstance(value, Mapping):
        unknown = set(value) - {"attempts", "backoff", "max_backoff"}
        if unknown:
            raise StepError(
                file, "retries", f"unknown keys {sorted(unknown)}; use attempts, backoff, max_backoff"
            )
        default = RetryPolicy()
        attempts = value.get("attempts", default.attempts)
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise StepError(file, "retries", f"attempts must be a whole number ≥ 1, got {attempts!r}")
        return RetryPolicy(
            attempts=attempts,
            backoff_s=_number(file, "retries", value.get("backoff", default.backoff_s), 0),
            max_backoff_s=_number(file, "retries", value.get("max_backoff", default.max_backoff_s), 0),
        )
    raise StepError(file, "retries", f"must be a number of attempts or a dict, got {type(value).__name__}")


def _check_handler(file: Path, kind: str, handler: Any) -> Handler:
    if handler is None:
        raise StepError(file, None, f"a {kind} step needs an `async def handler{_HANDLER_PARAMS[kind]}`")
    if not inspect.iscoroutinefunction(handler):
        raise StepError(file, None, "handler must be an `async def` function")
    params = [
        p
        for p in inspect.signature(handler).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    expected = _HANDLER_PARAMS[kind]
    if len(params) != len(expected):
        shown = ", ".join(expected)
        raise StepError(file, None, f"handler must take ({shown}); it takes {len(params)} parameters")
    return handler  # type: ignore[no-any-return]


def build_step(file: Path, config: Any, handler: Any) -> Step:
    """Validate one step file's config and handler."""
    if not isinstance(config, Mapping):
        raise StepError(file, None, "`config` must be a dict")
    kind = config.get("type")
    if kind not in _KEYS:
        if "type" not in config:
            raise StepError(file, "type", "missing; one of api, event, cron, noop")
        raise StepError(file, "type", f"{kind!r} is not one of api, event, cron, noop")
    required, optional = _KEYS[kind]
    for key in config:
        if key not in required | optional:
            allowed = ", ".join(sorted(required | optional))
            raise StepError(file, key, f"unknown key for a {kind} step (allowed: {allowed})")
    for key in sorted(required):
        if key not in config:
            raise StepError(file, key, f"missing (a {kind} step needs {', '.join(sorted(required))})")
    name = _str(file, config, "name")
    if not _NAME.match(name):
        raise StepError(file, "name", f"{name!r} is not a valid step name")
    common: dict[str, Any] = dict(
        name=name,
        kind=kind,
        file=file,
        description=_str(file, config, "description"),
        flows=_topics(file, config, "flows"),
        emits=_topics(file, config, "emits"),
        virtual_emits=_topics(file, config, "virtual_emits"),
        virtual_subscribes=_topics(file, config, "virtual_subscribes"),
    )
    if kind == "noop":
        return NoopStep(**common)
    common["handler"] = _check_handler(file, kind, handler)
    if kind == "api":
        method = _str(file, config, "method").upper()
        if method not in HTTP_METHODS:
            raise StepError(file, "method", f"{method!r} is not one of {', '.join(HTTP_METHODS)}")
        path = _str(file, config, "path")
        if not path.startswith("/") or path.startswith("/_workbench") or "//" in path:
            raise StepError(file, "path", f"{path!r} must start with / and not be under /_workbench")
        responses = config.get("response_schema", {})
        if not isinstance(responses, Mapping):
            responses = {200: responses}
        for status, schema in responses.items():
            if not isinstance(status, int) or not 100 <= status <= 599:
                raise StepError(file, "response_schema", f"keys must be HTTP status codes, got {status!r}")
            _schema(file, "response_schema", schema)
        return ApiStep(
            **common,
            method=method,
            path=path,
            body_schema=_schema(file, "body_schema", config.get("body_schema")),
            response_schema=dict(responses),
            query_params=_topics(file, config, "query_params"),
        )
    if kind == "event":
        subscribes = _topics(file, config, "subscribes")
        if not subscribes:
            raise StepError(file, "subscribes", "an event step must subscribe to at least one topic")
        return EventStep(
            **common,
            subscribes=subscribes,
            input_schema=_schema(file, "input_schema", config.get("input_schema")),
            retries=_retries(file, config.get("retries", RetryPolicy().attempts)),
            timeout_s=_number(file, "timeout", config.get("timeout", 30.0), 0.001),
        )
    expression = _str(file, config, "cron")
    timezone = config.get("timezone")
    if timezone is not None and not isinstance(timezone, str):
        raise StepError(file, "timezone", f"must be a string, got {type(timezone).__name__}")
    try:
        schedule = CronSchedule.parse(expression, timezone)
    except CronError as exc:
        raise StepError(file, "timezone" if "time zone" in str(exc) else "cron", str(exc)) from exc
    return CronStep(
        **common,
        cron=schedule.expression,
        timezone=timezone,
        schedule=schedule,
        retries=_retries(file, config.get("retries", 1)),
        timeout_s=_number(file, "timeout", config.get("timeout", 300.0), 0.001),
    )
