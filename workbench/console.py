"""The terminal side of logging: every log line of a process to stdout, one line each, coloured by
level when the terminal allows it, with the step and trace it ran in; or, for machines (`start` and
`worker` with `--log-format json`), one JSON object a line. (What spans keep is `tracing.recorder`'s
`SpanLogHandler`; `configure_logging` installs both.)"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any, Literal

from .tracing.recorder import SpanLogHandler, current_scope, install_span_capture, record_fields

_COLORS = {
    "DEBUG": "\033[2m",
    "INFO": "\033[36m",
    "WARNING": "\033[33m",
    "ERROR": "\033[31m",
    "CRITICAL": "\033[1;31m",
}


class ConsoleFormatter(logging.Formatter):
    """`time level step trace message fields`, coloured by level when the terminal allows it."""

    def __init__(self, color: bool) -> None:
        super().__init__()
        self.color = color

    def format(self, record: logging.LogRecord) -> str:
        scope = current_scope.get()
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created)) + f".{int(record.msecs):03d}"
        step = scope.span.step if scope else record.name.removeprefix("workbench.")
        trace = scope.trace_id[-8:] if scope else "-"
        fields = record_fields(record)
        extra = " ".join(f"{k}={v!r}" for k, v in fields.items())
        text = f"{stamp} {record.levelname:<7} {step:<24} {trace:<8} {record.getMessage()}"
        if extra:
            text += "  " + extra
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        if self.color:
            text = _COLORS.get(record.levelname, "") + text + "\033[0m"
        return text


class JsonFormatter(logging.Formatter):
    """One JSON object a line: `time` (ISO 8601, UTC, ms), `level`, `logger`, `message`, `trace_id`,
    `span_id` and `step` of the span it was logged in (null outside one), `fields` (the structured
    fields of the line), and `exception` (its traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        scope = current_scope.get()
        stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        line: dict[str, Any] = {
            "time": stamp.replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "trace_id": scope.span.trace_id if scope else None,
            "span_id": scope.span.id if scope else None,
            "step": scope.span.step if scope else None,
            "fields": record_fields(record),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        # values JSON has no type for are written as their text; a line never fails to format
        return json.dumps(line, default=_as_text, ensure_ascii=False)


def _as_text(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return repr(value)


LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")


def configure_logging(level: int, log_format: LogFormat = "text") -> None:
    """Console output for every log line (coloured text, or JSON lines), plus capture into spans."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, (SpanLogHandler,)) or getattr(handler, "_workbench", False):
            root.removeHandler(handler)
    console = logging.StreamHandler(sys.stdout)
    console.setLevel(level)
    if log_format == "json":
        console.setFormatter(JsonFormatter())
    else:
        color = sys.stdout.isatty() or bool(os.environ.get("FORCE_COLOR"))
        console.setFormatter(ConsoleFormatter(color=color))
    console._workbench = True  # type: ignore[attr-defined]
    root.addHandler(console)
    install_span_capture(level)
    for noisy in ("arq.worker", "arq.jobs", "uvicorn.access", "watchfiles"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
