"""What a trace or a log line must match to be listed: one definition for the store's queries, the
JSON API and the pages' live streams, so a reload and a live update can never disagree.

A filter is built once per query (or per live client) and then asked `matches(record)` for every
record, on hot paths: everything that can be worked out ahead (the lower-cased search text, the
level threshold) is worked out in the constructor. Empty values (`""` from a form) mean "any".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
DEFAULT_LEVEL = LEVELS["info"]  # a log line without a level counts as info


class TraceFilter:
    """Traces by `status`, a `step` that ran in them, their `entry` step and a text `q` (found in the
    id, entry, label, error or step names, ignoring case)."""

    __slots__ = ("entry", "needle", "status", "step")

    def __init__(
        self,
        *,
        status: str | None = None,
        step: str | None = None,
        entry: str | None = None,
        q: str | None = None,
    ) -> None:
        self.status = status or None
        self.step = step or None
        self.entry = entry or None
        self.needle = q.lower() if q else None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> TraceFilter:
        return cls(status=query.get("status"), step=query.get("step"), entry=query.get("entry"),
                   q=query.get("q"))  # fmt: skip

    def matches(self, trace: Mapping[str, Any]) -> bool:
        if self.status is not None and trace["status"] != self.status:
            return False
        if self.step is not None and self.step not in trace["steps"]:
            return False
        if self.entry is not None and trace["entry"] != self.entry:
            return False
        if self.needle is not None:
            needle = self.needle
            fields = (trace["id"], trace["entry"], trace["label"], trace["error"], *trace["steps"])
            return any(needle in str(value).lower() for value in fields)
        return True


class LogFilter:
    """Log lines by `step`, `trace_id`, a minimum `level` and a text `q` (found in the message or the
    fields, ignoring case)."""

    __slots__ = ("min_level", "needle", "step", "trace_id")

    def __init__(
        self,
        *,
        step: str | None = None,
        trace_id: str | None = None,
        level: str | None = None,
        q: str | None = None,
    ) -> None:
        self.step = step or None
        self.trace_id = trace_id or None
        self.min_level = LEVELS.get(level.lower(), 0) if level else 0
        self.needle = q.lower() if q else None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> LogFilter:
        return cls(step=query.get("step"), trace_id=query.get("trace_id"), level=query.get("level"),
                   q=query.get("q"))  # fmt: skip

    def matches(self, line: Mapping[str, Any]) -> bool:
        if self.step is not None and line.get("step") != self.step:
            return False
        if self.trace_id is not None and line.get("traceId") != self.trace_id:
            return False
        if self.min_level:
            level = LEVELS.get(str(line.get("level", "info")).lower(), DEFAULT_LEVEL)
            if level < self.min_level:
                return False
        if self.needle is not None:
            text = line.get("message", "") + " " + json.dumps(line.get("fields", {}), default=str)
            return self.needle in text.lower()
        return True
