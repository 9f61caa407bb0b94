"""Warnings that repeat (Redis away or full, every batch failing) said once per interval, with how
many were held back: a full Redis produced 23,620 identical warnings in a minute before."""

from __future__ import annotations

import logging
import time
from typing import Any


class Limited:
    """`Limited(log).warning("key", msg, *args)`: at most one line per key per `interval_s`."""

    def __init__(self, logger: logging.Logger, interval_s: float = 10.0) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warning(self, key: str, message: str, *args: Any) -> None:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            self._held[key] = self._held.get(key, 0) + 1
            return
        held = self._held.pop(key, 0)
        self._last[key] = now
        if held:
            message += f" ({held} more like it in the last {self.interval_s:.0f} s not shown)"
        self.logger.warning(message, *args)
