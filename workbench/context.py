"""`ctx`, the handle every step handler gets: trace id, logger, emit and state."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .state import State

if TYPE_CHECKING:
    from .step_config import Step


class UndeclaredEmitError(RuntimeError):
    """A step emitted a topic its config does not list in `emits`."""


class StepLogger:
    """`ctx.logger.info("Pet created", petId=7)`: a message plus structured fields.

    It writes through Python's `logging` (logger `steps.<StepName>`), so the console, the span
    capture and any handler a user adds see the same records.
    """

    def __init__(self, step_name: str) -> None:
        self._logger = logging.getLogger(f"steps.{step_name}")

    def _log(self, level: int, message: str, fields: Mapping[str, Any]) -> None:
        self._logger.log(level, message, extra={"wb_fields": dict(fields)}, stacklevel=3)

    def debug(self, message: str, **fields: Any) -> None:
        self._log(logging.DEBUG, message, fields)

    def info(self, message: str, **fields: Any) -> None:
        self._log(logging.INFO, message, fields)

    def warning(self, message: str, **fields: Any) -> None:
        self._log(logging.WARNING, message, fields)

    def error(self, message: str, **fields: Any) -> None:
        self._log(logging.ERROR, message, fields)


@dataclass
class Context:
    trace_id: str
    step: Step
    state: State
    logger: StepLogger
    _emit: Callable[[str, Any], Awaitable[None]] = field(repr=False)
    attempt: int = 1
    topic: str | None = None  # the topic that triggered an event step's run

    async def emit(self, topic: str, data: Any) -> None:
        """Send an event: one background job per step subscribed to `topic`, in this trace."""
        if topic not in self.step.emits:
            declared = ", ".join(self.step.emits) or "none"
            raise UndeclaredEmitError(
                f"step {self.step.name!r} emitted {topic!r}, which its config does not declare "
                f"in `emits` (declared: {declared})"
            )
        await self._emit(topic, data)
