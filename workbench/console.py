"""The terminal side of logging: every log line of a process to stdout, one line each, coloured by
level when the terminal allows it, with the step and trace it ran in. (What spans keep is
`tracing.recorder`'s `SpanLogHandler`; `configure_logging` installs both.)"""

from __future__ import annotations

import logging
import os
import sys
import time

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


def configure_logging(level: int) -> None:
    """Console output for every log line, plus capture into spans."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, (SpanLogHandler,)) or getattr(handler, "_workbench", False):
            root.removeHandler(handler)
    console = logging.StreamHandler(sys.stdout)
    console.setLevel(level)
    console.setFormatter(ConsoleFormatter(color=sys.stdout.isatty() or bool(os.environ.get("FORCE_COLOR"))))
    console._workbench = True  # type: ignore[attr-defined]
    root.addHandler(console)
    install_span_capture(level)
    for noisy in ("arq.worker", "arq.jobs", "uvicorn.access", "watchfiles"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
