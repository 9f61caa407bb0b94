"""workbench/console.py: a process's log lines on the terminal, with the step and trace they ran in."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from workbench.console import ConsoleFormatter, configure_logging
from workbench.tracing.recorder import Recorder, SpanLogHandler, SpanScope, current_scope
from workbench.tracing.records import Span


def record(name: str = "steps.CreateOrder", level: int = logging.INFO, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord(name, level, __file__, 1, "Order %s placed", ("9",), None)
    made.__dict__.update(extra)
    return made


def test_a_line_outside_a_step_names_its_logger() -> None:
    text = ConsoleFormatter(color=False).format(record("workbench.queue", logging.WARNING))
    stamp, level, where, trace, *message = text.split()
    assert (level, where, trace, " ".join(message)) == ("WARNING", "queue", "-", "Order 9 placed")
    assert len(stamp) == len("12:00:00.000")


def test_a_line_inside_a_step_names_its_step_trace_and_fields() -> None:
    span = Span(id="s1", trace_id="01ABCDEFGHJKMNPQ", step="CreateOrder", kind="api")
    token = current_scope.set(SpanScope(recorder=Recorder(store=None, enabled=False), span=span))  # type: ignore[arg-type]
    try:
        text = ConsoleFormatter(color=True).format(record(orderId="9"))
    finally:
        current_scope.reset(token)
    assert text.startswith("\033[36m") and text.endswith("\033[0m")  # INFO in cyan
    assert (
        "CreateOrder" in text and "GHJKMNPQ" in text and text.removesuffix("\033[0m").endswith("orderId='9'")
    )


@pytest.fixture
def root_handlers() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_configure_logging_twice_installs_one_console_and_one_span_capture(root_handlers: None) -> None:
    configure_logging(logging.INFO)
    configure_logging(logging.DEBUG)
    root = logging.getLogger()
    consoles = [h for h in root.handlers if getattr(h, "_workbench", False)]
    assert len(consoles) == 1 and isinstance(consoles[0].formatter, ConsoleFormatter)
    assert consoles[0].level == logging.DEBUG
    assert len([h for h in root.handlers if isinstance(h, SpanLogHandler)]) == 1
