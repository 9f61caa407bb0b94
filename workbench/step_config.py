"""Step kinds: the validated form of a step file's `config` and `handler`, and what varies by kind.

A step file is `*_step.py` with a module-level `config` dict and (except noop steps) an async
`handler`. `build_step` finds the kind's class by `config["type"]` and lets it validate its own
keys, or raises `StepError` naming the file and the key at fault.

Everything that differs between kinds lives on the kind's class: its config keys, its handler's
parameters, how its trigger is labelled, whether it runs in the background and how its handler is
invoked there, and how it is described to the UI and the CLI. A new kind is a subclass here (plus,
if it needs one, a template for its panel); `STEP_KINDS` makes it known.
"""

from __future__ import annotations

import abc
import asyncio
import inspect
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .cron import CronError, CronSchedule

if TYPE_CHECKING:
    from .context import Context
    from .motia import MotiaExtras

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

    def to_json(self) -> dict[str, Any]:
        return {"attempts": self.attempts, "backoff": self.backoff_s, "maxBackoff": self.max_backoff_s}


# --- the kinds ----------------------------------------------------------------------------------------

COMMON_KEYS = frozenset(
    {"type", "name", "description", "flows", "emits", "virtual_emits", "virtual_subscribes"}
)


@dataclass(frozen=True)
class Step:
    """What every kind has. Subclasses set the class attributes and override the hooks."""

    kind: ClassVar[str] = ""
    required_keys: ClassVar[frozenset[str]] = frozenset({"type", "name"})
    optional_keys: ClassVar[frozenset[str]] = COMMON_KEYS
    handler_params: ClassVar[tuple[str, ...] | None] = None  # None: the kind has no handler
    background: ClassVar[bool] = False  # runs on a worker, from the queue
    entry_point: ClassVar[bool] = True  # starts traces by itself (drawn first in a flow)

    name: str
    file: Path
    description: str = ""
    flows: tuple[str, ...] = ()
    emits: tuple[str, ...] = ()
    virtual_emits: tuple[str, ...] = ()
    virtual_subscribes: tuple[str, ...] = ()
    handler: Handler | None = None
    # Motia's spelling adds these (see workbench.motia)
    motia_rules: bool = False  # may emit undeclared topics (warned); ctx.state.get answers as Motia's
    emit_labels: Mapping[str, str] = field(default_factory=dict)  # topic -> the flow edge's label
    conditional_emits: frozenset[str] = frozenset()  # drawn dashed: emitted on some runs only
    notes: tuple[str, ...] = ()  # config accepted without effect, said by `workbench steps`

    @classmethod
    def from_config(
        cls, file: Path, config: Mapping[str, Any], common: dict[str, Any], extras: MotiaExtras
    ) -> Step:
        """Validate the kind's own keys; `common` holds the checked keys every kind shares."""
        return cls(**common)

    def trigger_label(self) -> str:
        """One line saying what starts this step (the CLI's TRIGGER column, a flow node's subtitle)."""
        return ", ".join(self.virtual_subscribes) or "-"

    def triggers(self) -> list[str]:
        return list(self.virtual_subscribes)

    def short_trigger(self) -> str:
        """The trigger in a few words, for a flow node's subtitle."""
        return self.trigger_label()

    def subscriptions(self) -> tuple[str, ...]:
        """Topics whose events become runs of this step."""
        return ()

    def listens_to(self, topic: str) -> bool:
        """Drawn as a target of `topic` in a flow (real or virtual subscription)."""
        return topic in self.subscriptions() or topic in self.virtual_subscribes

    def describe(self) -> dict[str, Any]:
        """The step as the JSON API, the flow panel and the CLI show it."""
        return {
            "name": self.name,
            "kind": self.kind,
            "description": self.description,
            "flows": list(self.flows),
            "emits": list(self.emits),
            "virtualEmits": list(self.virtual_emits),
            "virtualSubscribes": list(self.virtual_subscribes),
            "file": str(self.file),
            "triggers": self.triggers(),
            "emitLabels": dict(self.emit_labels),
            "conditionalEmits": sorted(self.conditional_emits),
            "motiaRules": self.motia_rules,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class ApiStep(Step):
    kind: ClassVar[str] = "api"
    required_keys: ClassVar[frozenset[str]] = frozenset({"type", "name", "path", "method"})
    optional_keys: ClassVar[frozenset[str]] = COMMON_KEYS | {"body_schema", "response_schema", "query_params"}
    handler_params: ClassVar[tuple[str, ...] | None] = ("request", "ctx")

    method: str = "GET"
    path: str = "/"
    body_schema: Any = None  # a pydantic model or msgspec Struct, or a JSON Schema dict
    response_schema: Mapping[int, Any] = field(default_factory=dict)
    query_params: tuple[str, ...] = ()
    query_descriptions: Mapping[str, str] = field(default_factory=dict)
    middleware: tuple[Callable[..., Any], ...] = ()  # `async def mw(req, ctx, next)`, outermost first

    @property
    def body_model(self) -> Any:
        """The body schema when it is a class (Litestar parses and documents it), else None."""
        return None if isinstance(self.body_schema, Mapping) else self.body_schema

    @property
    def body_json_schema(self) -> Mapping[str, Any] | None:
        """The body schema when it is a JSON Schema dict (checked by `workbench.web.api_invoke`)."""
        return self.body_schema if isinstance(self.body_schema, Mapping) else None

    @property
    def path_params(self) -> list[str]:
        return _PATH_PARAM.findall(self.path)

    @classmethod
    def from_config(
        cls, file: Path, config: Mapping[str, Any], common: dict[str, Any], extras: MotiaExtras
    ) -> Step:
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
        return cls(
            **common,
            method=method,
            path=path,
            body_schema=_schema(file, "body_schema", config.get("body_schema")),
            response_schema=dict(responses),
            query_params=_topics(file, config, "query_params"),
            query_descriptions=dict(extras.query_descriptions),
            middleware=extras.middleware,
        )

    def trigger_label(self) -> str:
        return f"{self.method} {self.path}"

    def triggers(self) -> list[str]:
        return [self.trigger_label()]

    def describe(self) -> dict[str, Any]:
        data = super().describe()
        data.update(method=self.method, path=self.path)
        if self.body_json_schema is not None:
            data["bodySchema"] = dict(self.body_json_schema)
        elif self.body_schema is not None and hasattr(self.body_schema, "model_json_schema"):
            data["bodySchema"] = self.body_schema.model_json_schema()
        if self.middleware:
            data["middleware"] = [getattr(mw, "__name__", repr(mw)) for mw in self.middleware]
        return data


@dataclass(frozen=True)
class BackgroundStep(Step, abc.ABC):
    """A kind whose runs are jobs on the queue: retried on failure, bounded by a timeout."""

    background: ClassVar[bool] = True
    default_attempts: ClassVar[int] = 3
    default_timeout_s: ClassVar[float] = 30.0

    retries: RetryPolicy = field(default_factory=RetryPolicy)
    timeout_s: float = 30.0
    first_run_delay_s: float = 0.0  # an event's job waits this long before its first run

    @classmethod
    def _run_options(cls, file: Path, config: Mapping[str, Any], extras: MotiaExtras) -> dict[str, Any]:
        return {
            "retries": _retries(file, config.get("retries", cls.default_attempts)),
            "timeout_s": _number(file, "timeout", config.get("timeout", cls.default_timeout_s), 0.001),
            "first_run_delay_s": extras.first_run_delay_s,
        }

    def prepare_input(self, data: Any) -> Any:
        """The job's data as the handler receives it; raises (no retry) when it is not valid."""
        return data

    @abc.abstractmethod
    async def invoke(self, data: Any, ctx: Context) -> Any:
        """Call the handler the way this kind's handlers are written."""

    def describe(self) -> dict[str, Any]:
        data = super().describe()
        data.update(retries=self.retries.to_json(), timeout=self.timeout_s)
        return data


@dataclass(frozen=True)
class EventStep(BackgroundStep):
    kind: ClassVar[str] = "event"
    required_keys: ClassVar[frozenset[str]] = frozenset({"type", "name", "subscribes"})
    optional_keys: ClassVar[frozenset[str]] = COMMON_KEYS | {"input_schema", "retries", "timeout"}
    handler_params: ClassVar[tuple[str, ...] | None] = ("data", "ctx")
    entry_point: ClassVar[bool] = False

    subscribes: tuple[str, ...] = ()
    input_schema: Any = None

    @classmethod
    def from_config(
        cls, file: Path, config: Mapping[str, Any], common: dict[str, Any], extras: MotiaExtras
    ) -> Step:
        subscribes = _topics(file, config, "subscribes")
        if not subscribes:
            raise StepError(file, "subscribes", "an event step must subscribe to at least one topic")
        return cls(
            **common,
            **cls._run_options(file, config, extras),
            subscribes=subscribes,
            input_schema=_schema(file, "input_schema", config.get("input_schema")),
        )

    def trigger_label(self) -> str:
        return ", ".join(self.subscribes)

    def short_trigger(self) -> str:
        return self.subscribes[0] if len(self.subscribes) == 1 else f"{len(self.subscribes)} topics"

    def triggers(self) -> list[str]:
        return list(self.subscribes)

    def subscriptions(self) -> tuple[str, ...]:
        return self.subscribes

    def prepare_input(self, data: Any) -> Any:
        if self.input_schema is None:
            return data
        if isinstance(self.input_schema, Mapping):  # a JSON Schema dict: checked, passed on as it is
            from jsonschema import Draft202012Validator

            errors = list(Draft202012Validator(self.input_schema).iter_errors(data))
            if errors:
                where = ".".join(str(p) for p in errors[0].absolute_path) or "input"
                raise ValueError(f"input does not match the step's schema: {where}: {errors[0].message}")
            return data
        if hasattr(self.input_schema, "model_validate"):
            return self.input_schema.model_validate(data)
        import msgspec

        return msgspec.convert(data, self.input_schema)

    async def invoke(self, data: Any, ctx: Context) -> Any:
        assert self.handler is not None
        return await _call(self.handler, data, ctx)

    def describe(self) -> dict[str, Any]:
        data = super().describe()
        data["subscribes"] = list(self.subscribes)
        return data


@dataclass(frozen=True)
class CronStep(BackgroundStep):
    kind: ClassVar[str] = "cron"
    required_keys: ClassVar[frozenset[str]] = frozenset({"type", "name", "cron"})
    optional_keys: ClassVar[frozenset[str]] = COMMON_KEYS | {"timezone", "retries", "timeout"}
    handler_params: ClassVar[tuple[str, ...] | None] = ("ctx",)
    default_attempts: ClassVar[int] = 1
    default_timeout_s: ClassVar[float] = 300.0

    cron: str = ""
    timezone: str | None = None
    schedule: CronSchedule | None = None

    @classmethod
    def from_config(
        cls, file: Path, config: Mapping[str, Any], common: dict[str, Any], extras: MotiaExtras
    ) -> Step:
        expression = _str(file, config, "cron")
        timezone = config.get("timezone")
        if timezone is not None and not isinstance(timezone, str):
            raise StepError(file, "timezone", f"must be a string, got {type(timezone).__name__}")
        try:
            schedule = CronSchedule.parse(expression, timezone)
        except CronError as exc:
            raise StepError(file, "timezone" if "time zone" in str(exc) else "cron", str(exc)) from exc
        return cls(
            **common,
            **cls._run_options(file, config, extras),
            cron=schedule.expression,
            timezone=timezone,
            schedule=schedule,
        )

    def trigger_label(self) -> str:
        return f"cron {self.cron}"

    def triggers(self) -> list[str]:
        return [self.trigger_label()]

    async def invoke(self, data: Any, ctx: Context) -> Any:
        assert self.handler is not None
        return await _call(self.handler, ctx)

    def describe(self) -> dict[str, Any]:
        data = super().describe()
        data.update(cron=self.cron, timezone=self.timezone)
        return data


@dataclass(frozen=True)
class NoopStep(Step):
    """Drawn in flows (its virtual emits and subscriptions), never run."""

    kind: ClassVar[str] = "noop"

    def trigger_label(self) -> str:
        return ", ".join(self.virtual_subscribes) or "noop"


STEP_KINDS: dict[str, type[Step]] = {k.kind: k for k in (ApiStep, EventStep, CronStep, NoopStep)}


# --- validation of the keys every kind shares ---------------------------------------------------------


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
    """Schemas are pydantic models or msgspec Structs (anything Litestar can document), or JSON
    Schema dicts (as Motia's Python steps write them: `Model.model_json_schema()`)."""
    if value is None:
        return None
    if inspect.isclass(value) and (hasattr(value, "model_validate") or hasattr(value, "__struct_fields__")):
        return value
    expected = "must be a pydantic model or msgspec Struct class, or a JSON Schema dict"
    if isinstance(value, Mapping):
        import json

        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        try:
            json.dumps(value)
            Draft202012Validator.check_schema(value)
        except (TypeError, ValueError) as exc:
            raise StepError(file, key, f"{expected}; this dict is not JSON ({exc})") from exc
        except SchemaError as exc:
            raise StepError(
                file, key, f"{expected}; this dict is not a valid JSON Schema: {exc.message}"
            ) from exc
        return dict(value)
    raise StepError(file, key, f"{expected}, got {value!r}")


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


async def _call(handler: Callable[..., Any], *args: Any) -> Any:
    """Await an `async def` handler; run a plain `def` one in the default thread pool, so that it
    cannot block the event loop (the context goes with it: its logging lands in the span)."""
    if inspect.iscoroutinefunction(handler):
        return await handler(*args)
    return await asyncio.to_thread(handler, *args)


def _check_handler(file: Path, kind: type[Step], handler: Any) -> Handler:
    expected = kind.handler_params or ()
    if handler is None:
        raise StepError(file, None, f"a {kind.kind} step needs an `async def handler{expected}`")
    if not inspect.iscoroutinefunction(handler):
        # background handlers may be plain functions, run in a thread (see `_call`); an API
        # handler runs in the web process's event loop and must be `async def`
        if not kind.background:
            raise StepError(file, None, "handler must be an `async def` function")
        if not inspect.isfunction(handler):
            raise StepError(file, None, "handler must be an `async def` function (or a plain `def`)")
    params = [
        p
        for p in inspect.signature(handler).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if len(params) != len(expected):
        shown = ", ".join(expected)
        raise StepError(file, None, f"handler must take ({shown}); it takes {len(params)} parameters")
    return handler  # type: ignore[no-any-return]


def build_step(file: Path, config: Any, handler: Any, *, motia_project: bool = False) -> Step:
    """Validate one step file's config and handler (in our spelling or Motia's)."""
    from .motia import translate

    if not isinstance(config, Mapping):
        raise StepError(file, None, "`config` must be a dict")
    config, extras = translate(file, config, motia_project=motia_project)
    kinds = ", ".join(STEP_KINDS)
    if "type" not in config:
        raise StepError(file, "type", f"missing; one of {kinds}")
    kind = STEP_KINDS.get(config["type"]) if isinstance(config["type"], str) else None
    if kind is None:
        raise StepError(file, "type", f"{config['type']!r} is not one of {kinds}")
    allowed_keys = kind.required_keys | kind.optional_keys
    for key in config:
        if key not in allowed_keys:
            allowed = ", ".join(sorted(allowed_keys))
            raise StepError(file, key, f"unknown key for a {kind.kind} step (allowed: {allowed})")
    for key in sorted(kind.required_keys):
        if key not in config:
            raise StepError(
                file, key, f"missing (a {kind.kind} step needs {', '.join(sorted(kind.required_keys))})"
            )
    name = _str(file, config, "name")
    if not _NAME.match(name):
        raise StepError(file, "name", f"{name!r} is not a valid step name")
    common: dict[str, Any] = dict(
        name=name,
        file=file,
        description=_str(file, config, "description"),
        flows=_topics(file, config, "flows"),
        emits=_topics(file, config, "emits"),
        virtual_emits=_topics(file, config, "virtual_emits"),
        virtual_subscribes=_topics(file, config, "virtual_subscribes"),
    )
    common.update(
        motia_rules=extras.motia_rules,
        emit_labels=dict(extras.emit_labels),
        conditional_emits=extras.conditional_emits,
        notes=extras.notes,
    )
    if kind.handler_params is not None:
        common["handler"] = _check_handler(file, kind, handler)
    return kind.from_config(file, config, common, extras)
