"""`ctx`, the handle every step handler gets: trace id, logger, emit and state."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .otel import traceparent
from .state import State
from .tracing.recorder import current_scope

if TYPE_CHECKING:
    from .step_config import Step


class UndeclaredEmitError(RuntimeError):
    """A step emitted a topic its config does not list in `emits`."""


_NO_DATA: Any = object()


def _fields(given: Any, keywords: Mapping[str, Any]) -> dict[str, Any]:
    """Fields as keywords (ours) or one positional dict (Motia's `info("msg", {"petId": 7})`)."""
    if given is None:
        return dict(keywords)
    if isinstance(given, Mapping):
        return {**given, **keywords}
    if hasattr(given, "__dict__"):  # as Motia's logger does with an object
        return {**vars(given), **keywords}
    return {"data": given, **keywords}


class StepLogger:
    """`ctx.logger.info("Pet created", petId=7)`: a message plus structured fields.

    It writes through Python's `logging` (logger `steps.<StepName>`), so the console, the span
    capture and any handler a user adds see the same records. Motia's spelling works too: the
    fields as one positional dict, and `warn` for `warning`.
    """

    def __init__(self, step_name: str) -> None:
        self._logger = logging.getLogger(f"steps.{step_name}")

    def _log(self, level: int, message: str, fields: Mapping[str, Any]) -> None:
        self._logger.log(level, message, extra={"wb_fields": dict(fields)}, stacklevel=3)

    def debug(self, message: str, fields: Any = None, /, **keywords: Any) -> None:
        self._log(logging.DEBUG, message, _fields(fields, keywords))

    def info(self, message: str, fields: Any = None, /, **keywords: Any) -> None:
        self._log(logging.INFO, message, _fields(fields, keywords))

    def warning(self, message: str, fields: Any = None, /, **keywords: Any) -> None:
        self._log(logging.WARNING, message, _fields(fields, keywords))

    def error(self, message: str, fields: Any = None, /, **keywords: Any) -> None:
        self._log(logging.ERROR, message, _fields(fields, keywords))

    warn = warning  # Motia's name


class MotiaState:
    """`ctx.state` as Motia 0.17's Python runner answers, for steps that follow Motia's rules.

    `get` wraps a dict value as `{"data": value}` (a missing key is `{"data": None}`; a dict that
    has a "data" key, and any other value, comes back as it is), `get_group` is the list of the
    group's values, `getGroup` its alias, `set` returns the value and `delete` the deleted value.
    Everything else is our `State` (`increment`, `update`, ...)."""

    def __init__(self, state: State) -> None:
        self._state = state

    async def get(self, group: str, key: str) -> Any:
        value = await self._state.get(group, key)
        if value is None:
            return {"data": None}
        if isinstance(value, dict) and "data" not in value:
            return {"data": value}
        return value

    async def set(self, group: str, key: str, value: Any) -> Any:
        return await self._state.set(group, key, value)

    async def delete(self, group: str, key: str) -> Any:
        return await self._state.take(group, key)  # one round trip, recorded as one delete

    async def get_group(self, group: str) -> list[Any]:
        return list((await self._state.get_group(group)).values())

    getGroup = get_group  # Motia's camelCase name

    async def clear(self, group: str) -> None:
        await self._state.clear(group)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._state, name)


@dataclass
class Context:
    trace_id: str
    step: Step
    state: State
    logger: StepLogger
    _emit: Callable[[str, Any], Awaitable[None]] = field(repr=False)
    attempt: int = 1
    topic: str | None = None  # the topic that triggered an event step's run

    @property
    def flows(self) -> list[str]:
        return list(self.step.flows)

    @property
    def traceparent(self) -> str:
        """The W3C `traceparent` of the running span, for outgoing calls: the callee's trace joins this
        one (the same ids with export off or on; see `workbench.otel`)."""
        scope = current_scope.get()
        span_id = scope.span.id if scope is not None and scope.trace_id == self.trace_id else self.trace_id
        return traceparent(self.trace_id, span_id)

    async def emit(self, topic: str | Mapping[str, Any], data: Any = _NO_DATA) -> None:
        """Send an event: one background job per step subscribed to `topic`, in this trace.

        `emit(topic, data)`, or Motia's `emit({"topic": ..., "data": ...})`. A topic the step does
        not declare in `emits` raises `UndeclaredEmitError`, except for steps that follow Motia's
        rules (see `workbench.motia`): theirs is delivered, and warned about in the span."""
        if isinstance(topic, Mapping):
            event = topic
            if data is not _NO_DATA:
                raise TypeError('emit({"topic": ..., "data": ...}) takes no second argument')
            unknown = set(event) - {"topic", "data"}
            if unknown or not isinstance(event.get("topic"), str):
                raise TypeError(f'emit() takes {{"topic": str, "data": ...}}, got keys {sorted(event)}')
            name: str = event["topic"]
            data = event.get("data")
        elif data is _NO_DATA:
            raise TypeError(f"emit({topic!r}) is missing its data: emit(topic, data)")
        else:
            name = topic
        await self._emit_checked(name, data)

    async def _emit_checked(self, topic: str, data: Any) -> None:
        if topic not in self.step.emits:
            declared = ", ".join(self.step.emits) or "none"
            if not self.step.motia_rules:
                raise UndeclaredEmitError(
                    f"step {self.step.name!r} emitted {topic!r}, which its config does not declare "
                    f"in `emits` (declared: {declared})"
                )
            logging.getLogger(f"steps.{self.step.name}").warning(
                "Emitted %s, which is not declared in emits (declared: %s); delivered under Motia's rules",
                topic, declared, extra={"wb_fields": {"topic": topic, "undeclaredEmit": True}},
            )  # fmt: skip
        await self._emit(topic, data)
