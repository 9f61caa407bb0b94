"""Two traces side by side: their spans matched by step and order, and what differs between them.

A span of trace A is paired with the span of trace B that ran the same step the same n-th time
(`CreatePet` #1 with `CreatePet` #1, a retry's attempt 2 with attempt 2): the pairs, and the spans
only one trace has, keep the order they ran in. For each pair the comparison names what differs:
status, error, the HTTP status, the topics emitted, the state operations (and the values they
left) and, when it moved notably, the duration. Pure functions over `TraceStore.get_trace`'s
shape, so the page, the JSON API and the tests share them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# a duration "differs" when it moved by more than both of these (run times always wobble a little)
DURATION_SLACK_MS = 20
DURATION_SLACK_RATIO = 0.5


@dataclass
class SpanSide:
    """What one span did, as the comparison reads it."""

    id: str
    status: str
    duration_ms: int | None
    attempt: int
    http_status: int | None
    error: str | None
    emits: list[str]
    state: list[dict[str, Any]]  # op, group, key, before, after (as recorded)
    logs: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "durationMs": self.duration_ms,
            "attempt": self.attempt,
            "httpStatus": self.http_status,
            "error": self.error,
            "emits": self.emits,
            "state": self.state,
            "logs": self.logs,
        }


@dataclass
class FieldPair:
    """One field of the objects two state operations left (`in_a`/`in_b`: whether each has it)."""

    name: str
    a: Any
    b: Any
    in_a: bool
    in_b: bool

    @property
    def same(self) -> bool:
        return self.in_a == self.in_b and self.a == self.b


@dataclass
class StateRow:
    """The i-th state operation of a pair of spans, side by side: which parts differ and, when both
    left an object, its fields, those that differ first."""

    a: dict[str, Any] | None
    b: dict[str, Any] | None
    differs: list[str]  # of op, group, key, count, value (what the op read or left); or ["missing"]
    fields: list[FieldPair] = field(default_factory=list)

    @property
    def same_fields(self) -> int:
        return sum(1 for f in self.fields if f.same)


def _left(op: dict[str, Any]) -> tuple[bool, Any]:
    """What an op read or left (a write's after, a read's value), and whether there is one."""
    for name in ("after", "value"):
        if name in op:
            return True, op[name]
    return False, None


def state_rows(a: SpanSide | None, b: SpanSide | None) -> list[StateRow]:
    """The state operations of two spans paired in order."""
    ops_a, ops_b = (a.state if a else []), (b.state if b else [])
    rows = []
    for i in range(max(len(ops_a), len(ops_b))):
        op_a = ops_a[i] if i < len(ops_a) else None
        op_b = ops_b[i] if i < len(ops_b) else None
        if op_a is None or op_b is None:
            rows.append(StateRow(op_a, op_b, ["missing"]))
            continue
        left_a, left_b = _left(op_a), _left(op_b)
        differs = [k for k in ("op", "group", "key", "count") if op_a.get(k) != op_b.get(k)]
        if left_a != left_b:
            differs.append("value")
        fields: list[FieldPair] = []
        value_a, value_b = left_a[1], left_b[1]
        if isinstance(value_a, dict) and isinstance(value_b, dict):
            names = list(value_a) + [n for n in value_b if n not in value_a]
            fields = [FieldPair(n, value_a.get(n), value_b.get(n), n in value_a, n in value_b) for n in names]
            fields.sort(key=lambda f: f.same)  # the ones that differ first, each part in its order
        rows.append(StateRow(op_a, op_b, differs, fields))
    return rows


@dataclass
class SpanPair:
    """The n-th run of a step in each trace (`a` or `b` is None when only one trace has it)."""

    step: str
    n: int  # 1 for the step's first span in the trace, 2 for its second, ...
    kind: str
    a: SpanSide | None
    b: SpanSide | None
    differs: list[str] = field(default_factory=list)  # names of the fields that differ

    @property
    def state_rows(self) -> list[StateRow]:
        return state_rows(self.a, self.b)

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "n": self.n,
            "kind": self.kind,
            "a": self.a.to_json() if self.a else None,
            "b": self.b.to_json() if self.b else None,
            "differs": self.differs,
        }


@dataclass
class Comparison:
    a: dict[str, Any]  # each trace's summary (no spans)
    b: dict[str, Any]
    same_entry: bool
    summary_differs: list[str]  # trace-level fields that differ
    spans: list[SpanPair]

    @property
    def differences(self) -> int:
        return len(self.summary_differs) + sum(1 for p in self.spans if p.differs)

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "sameEntry": self.same_entry,
            "summaryDiffers": self.summary_differs,
            "differences": self.differences,
            "spans": [p.to_json() for p in self.spans],
        }


def _side(span: dict[str, Any]) -> SpanSide:
    events = span.get("events") or []
    started, finished = span.get("startedAt"), span.get("finishedAt")
    state = [
        {k: e.get(k) for k in ("op", "group", "key", "before", "after", "count") if k in e}
        for e in events
        if e.get("kind") == "state"
    ]
    return SpanSide(
        id=span["id"],
        status=span.get("status") or "",
        duration_ms=(finished - started) if (started and finished) else None,
        attempt=int(span.get("attempt") or 1),
        http_status=(span.get("http") or {}).get("status"),
        error=(span.get("error") or {}).get("message"),
        emits=[e["topic"] for e in events if e.get("kind") == "emit"],
        state=state,
        logs=sum(1 for e in events if e.get("kind") == "log"),
    )


def _keyed(spans: list[dict[str, Any]]) -> list[tuple[tuple[str, int], dict[str, Any]]]:
    """Each span keyed by (step, n): its step, and how many spans of that step came before it, plus one."""
    seen: dict[str, int] = {}
    keyed = []
    for span in spans:
        n = seen[span["step"]] = seen.get(span["step"], 0) + 1
        keyed.append(((span["step"], n), span))
    return keyed


def _state_changes(side: SpanSide) -> list[tuple[Any, ...]]:
    """What a span's state operations did, as compared: each op, its key and the value it left."""
    return [(s.get("op"), s.get("group"), s.get("key"), s.get("after"), s.get("count")) for s in side.state]


def _duration_differs(a: int | None, b: int | None) -> bool:
    if a is None or b is None:
        return a != b
    moved = abs(a - b)
    return moved > DURATION_SLACK_MS and moved > DURATION_SLACK_RATIO * max(a, b, 1)


def _pair_differs(a: SpanSide | None, b: SpanSide | None) -> list[str]:
    if a is None or b is None:
        return ["missing"]
    differs = [
        name
        for name, left, right in (
            ("status", a.status, b.status),
            ("attempt", a.attempt, b.attempt),
            ("httpStatus", a.http_status, b.http_status),
            ("error", a.error, b.error),
            ("emits", a.emits, b.emits),
            ("state", _state_changes(a), _state_changes(b)),
        )
        if left != right
    ]
    if _duration_differs(a.duration_ms, b.duration_ms):
        differs.append("duration")
    return differs


def _merged_order(a_keys: list[tuple[str, int]], b_keys: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """A's keys in A's order, each key only B has placed right after the key that precedes it in B."""
    order = list(a_keys)
    placed = set(order)
    previous: tuple[str, int] | None = None
    for key in b_keys:
        if key not in placed:
            at = order.index(previous) + 1 if previous is not None else 0
            order.insert(at, key)
            placed.add(key)
        previous = key
    return order


def response_status(trace: dict[str, Any]) -> int | None:
    """The HTTP status the trace's API span answered (None for traces that did not start at an API)."""
    for span in trace.get("spanList") or []:
        if span.get("kind") == "api" and span.get("http"):
            status = span["http"].get("status")
            return int(status) if status is not None else None
    return None


SUMMARY_FIELDS = ("entry", "status", "responseStatus", "spans", "errors")


def summary(trace: dict[str, Any]) -> dict[str, Any]:
    """A trace's summary for the comparison: the stored summary, its API response status, no spans."""
    out = {k: v for k, v in trace.items() if k != "spanList"}
    out["responseStatus"] = response_status(trace)
    return out


def compare_traces(a: dict[str, Any], b: dict[str, Any]) -> Comparison:
    """Compare two traces (each as `TraceStore.get_trace` returns it)."""
    sa, sb = summary(a), summary(b)
    summary_differs = [name for name in SUMMARY_FIELDS if sa.get(name) != sb.get(name)]
    if _duration_differs(sa.get("durationMs"), sb.get("durationMs")):
        summary_differs.append("durationMs")
    keyed_a, keyed_b = _keyed(a.get("spanList") or []), _keyed(b.get("spanList") or [])
    by_a, by_b = dict(keyed_a), dict(keyed_b)
    pairs = []
    for key in _merged_order([k for k, _ in keyed_a], [k for k, _ in keyed_b]):
        span_a, span_b = by_a.get(key), by_b.get(key)
        side_a = _side(span_a) if span_a else None
        side_b = _side(span_b) if span_b else None
        kind = (span_a or span_b or {}).get("kind") or ""
        pairs.append(SpanPair(key[0], key[1], kind, side_a, side_b, _pair_differs(side_a, side_b)))
    return Comparison(sa, sb, sa.get("entry") == sb.get("entry"), summary_differs, pairs)
