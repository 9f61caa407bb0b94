"""Pure helpers the templates use: formatting, the waterfall geometry and the flow graph layout.

Kept apart from the routes so that they can be tested without a server.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Any

from ..registry import Registry
from ..step_config import Step

# --- formatting -------------------------------------------------------------------------------------


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "…"
    if value == 0:
        return "0 ms"
    # each bound is where the next format's rounding would start: 999.6 ms reads "1.00 s", not "1000 ms"
    if value < 0.995:
        return f"{value:.2f} ms"
    if value < 9.95:
        return f"{value:.1f} ms"
    if value < 999.5:
        return f"{value:.0f} ms"
    if value < 59_995:
        return f"{value / 1000:.2f} s"
    return f"{value / 60_000:.1f} min"


def fmt_clock(ms: int | None) -> str:
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000).strftime("%H:%M:%S.") + f"{ms % 1000:03d}"


def fmt_ago(ms: int | None, now_ms: int | None = None) -> str:
    if not ms:
        return ""
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    secs = max(0, (now - ms) // 1000)
    if secs < 5:
        return "now"
    if secs < 60:
        return f"{secs}s ago"
    if secs < 3600:
        return f"{secs // 60}m ago"
    if secs < 86400:
        return f"{secs // 3600}h ago"
    return f"{secs // 86400}d ago"


def fmt_datetime(ms: int | None) -> str:
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def row_id(parts: Any) -> str:
    """An HTML id for a row named by any text (a state key may hold `/`, quotes or spaces): a digest."""
    return hashlib.sha1("\x00".join(map(str, parts)).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)


# --- waterfall ---------------------------------------------------------------------------------------


@dataclass
class Bar:
    span: dict[str, Any]
    depth: int
    wait_left: float  # percent of the scale
    wait_width: float
    run_left: float
    run_width: float
    wait_ms: float | None
    run_ms: float | None
    markers: list[tuple[float, str]] = field(default_factory=list)  # (percent, topic) of emits


def waterfall(trace: dict[str, Any], now_ms: int) -> tuple[list[Bar], list[tuple[float, str]], float]:
    """Bars to scale for every span (queue wait apart from run time), children under their parent."""
    spans: list[dict[str, Any]] = trace.get("spanList", [])
    if not spans:
        return [], [], 0.0
    start: int = min((s.get("enqueuedAt") or s["startedAt"]) for s in spans)
    end = max((s.get("finishedAt") or now_ms) for s in spans)
    total = max(end - start, 1)

    def pct(ms: float) -> float:
        return round(100.0 * (ms - start) / float(total), 3)

    children: dict[str | None, list[dict[str, Any]]] = {}
    ids = {s["id"] for s in spans}
    for span in spans:
        parent = span.get("parentId") if span.get("parentId") in ids else None
        children.setdefault(parent, []).append(span)
    ordered: list[tuple[dict[str, Any], int]] = []

    def walk(parent: str | None, depth: int) -> None:
        for span in sorted(
            children.get(parent, []), key=lambda s: (s.get("enqueuedAt") or s["startedAt"], s["attempt"])
        ):
            ordered.append((span, depth))
            walk(span["id"], depth + 1)

    walk(None, 0)
    bars = []
    for span, depth in ordered:
        queued = span.get("enqueuedAt") or span["startedAt"]
        started = span["startedAt"]
        finished = span.get("finishedAt") or now_ms
        markers = [(pct(e["ts"]), e["topic"]) for e in span.get("events", []) if e["kind"] == "emit"]
        bars.append(
            Bar(
                span=span,
                depth=min(depth, 6),
                wait_left=pct(queued),
                wait_width=max(pct(started) - pct(queued), 0.0),
                run_left=pct(started),
                run_width=max(pct(finished) - pct(started), 0.4),
                wait_ms=(started - queued) if span.get("enqueuedAt") else None,
                run_ms=(finished - started) if span.get("finishedAt") else None,
                markers=markers,
            )
        )
    step = _nice_step(total / 4)
    ticks = [(100.0 * t / total, fmt_ms(t)) for t in _frange(0, total, step)]
    return bars, ticks, float(total)


def _nice_step(raw: float) -> float:
    for unit in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10_000, 30_000, 60_000):
        if unit >= raw:
            return float(unit)
    return float(int(raw / 60_000 + 1) * 60_000)


def _frange(a: float, b: float, step: float) -> list[float]:
    out: list[float] = []
    x = a
    while x <= b + 1e-9 and len(out) < 12:
        out.append(x)
        x += step
    return out


# --- flow graph ----------------------------------------------------------------------------------------

NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 210, 52, 190, 30, 16


@dataclass
class Node:
    name: str
    kind: str
    label: str
    x: float = 0
    y: float = 0
    layer: int = 0
    dummy: bool = False


@dataclass
class Edge:
    source: str
    target: str
    topic: str
    path: str = ""
    label_x: float = 0
    label_y: float = 0
    virtual: bool = False
    label: str = ""  # what the edge says: the emit's label (Motia's `{"topic", "label"}`), else its topic
    conditional: bool = False  # emitted on some runs only: drawn dashed
    undeclared: bool = False  # seen emitted though the step does not declare it: drawn as a warning


@dataclass
class FlowGraph:
    name: str
    nodes: list[Node]
    edges: list[Edge]
    width: float
    height: float
    dangling: list[tuple[str, str]]  # (step, topic) emitted with no subscriber in this flow


def flows_of(registry: Registry) -> list[str]:
    names: set[str] = set()
    for step in registry:
        names.update(step.flows or ("default",))
    return sorted(names)


def layout_flow(registry: Registry, flow: str, undeclared: Mapping[str, set[str]] | None = None) -> FlowGraph:
    """A layered left-to-right layout: entry points first, each event step one layer right of the
    furthest step that emits to it; long edges pass through placeholder slots so nothing overlaps."""
    steps = [s for s in registry if flow in (s.flows or ("default",))]
    if not steps:  # a flow no step belongs to (a stale link): an empty graph, not an error
        return FlowGraph(flow, [], [], 2 * PAD, 2 * PAD, [])
    edges: list[Edge] = []
    dangling: list[tuple[str, str]] = []
    seen_undeclared = undeclared or {}
    for src in steps:
        extra = sorted(seen_undeclared.get(src.name, set()) - set(src.emits))
        for topic in extra:  # emitted at run time under Motia's rules, not declared
            targets = [d.name for d in steps if d.listens_to(topic)]
            if not targets:
                dangling.append((src.name, topic))
            edges.extend(
                Edge(src.name, t, topic, label=f"⚠ {topic} (not declared)", undeclared=True) for t in targets
            )
        for topic, virtual in [(t, False) for t in src.emits] + [(t, True) for t in src.virtual_emits]:
            targets = [d.name for d in steps if d.listens_to(topic)]
            if not targets:
                dangling.append((src.name, topic))
            label = src.emit_labels.get(topic, topic)
            conditional = topic in src.conditional_emits
            edges.extend(
                Edge(src.name, t, topic, virtual=virtual, label=label, conditional=conditional)
                for t in targets
            )
    # layers by longest path, ignoring edges that close a cycle
    layer = {s.name: 0 for s in steps}
    order = _topological(steps, edges)
    for name in order:
        for e in edges:
            if e.source == name and order.index(e.target) > order.index(name):
                layer[e.target] = max(layer[e.target], layer[name] + 1)
    nodes = {s.name: Node(s.name, s.kind, s.short_trigger(), layer=layer[s.name]) for s in steps}
    # placeholder slots for edges that skip layers
    chains: dict[int, list[str]] = {}
    for i, e in enumerate(edges):
        a, b = layer[e.source], layer[e.target]
        chain = []
        for mid in range(a + 1, b):
            dummy = f"__{i}_{mid}"
            nodes[dummy] = Node(dummy, "dummy", "", layer=mid, dummy=True)
            chain.append(dummy)
        chains[i] = chain
    columns: dict[int, list[Node]] = {}
    for node in nodes.values():
        columns.setdefault(node.layer, []).append(node)
    # order each column by the average position of its predecessors (fewer crossings)
    position: dict[str, float] = {}
    kind_rank = {"api": 0, "cron": 1, "noop": 2, "event": 3, "dummy": 4}
    for col in sorted(columns):
        nodes_in = columns[col]

        def preds(n: Node) -> list[float]:
            found = []
            for i, e in enumerate(edges):
                path = [e.source, *chains[i], e.target]
                for a, b in pairwise(path):
                    if b == n.name and a in position:
                        found.append(position[a])
            return found

        def key(n: Node) -> tuple[float, int, str]:
            p = preds(n)
            return (sum(p) / len(p) if p else -1.0, kind_rank.get(n.kind, 5), n.name)

        nodes_in.sort(key=key)
        for idx, n in enumerate(nodes_in):
            position[n.name] = idx
    height = max(len(c) for c in columns.values()) * (NODE_H + GAP_Y) - GAP_Y + 2 * PAD
    for col, nodes_in in columns.items():
        col_h = len(nodes_in) * (NODE_H + GAP_Y) - GAP_Y
        top = PAD + (height - 2 * PAD - col_h) / 2
        for idx, n in enumerate(nodes_in):
            n.x = PAD + col * (NODE_W + GAP_X)
            n.y = top + idx * (NODE_H + GAP_Y)
    for i, e in enumerate(edges):
        pts = [nodes[e.source], *(nodes[d] for d in chains[i]), nodes[e.target]]
        coords = []
        for j, n in enumerate(pts):
            cy = n.y + NODE_H / 2
            if j == 0:
                coords.append((n.x + NODE_W, cy))
            elif j == len(pts) - 1:
                coords.append((n.x, cy))
            else:
                coords += [(n.x, cy), (n.x + NODE_W, cy)]
        d = f"M{coords[0][0]:.1f},{coords[0][1]:.1f}"
        for (x1, y1), (x2, y2) in pairwise(coords):
            if abs(x2 - x1) < 1e-6 or ((x2 - x1) == NODE_W and y1 == y2):
                d += f" L{x2:.1f},{y2:.1f}"
            else:
                dx = (x2 - x1) / 2
                d += f" C{x1 + dx:.1f},{y1:.1f} {x2 - dx:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
        e.path = d
        # the label sits just after the source, in the gap between the columns
        x1, y1 = coords[0]
        x2, y2 = coords[1]
        e.label_x, e.label_y = x1 + (x2 - x1) * 0.5, y1 + (y2 - y1) * 0.5 - 6
    width = (max(columns) + 1) * (NODE_W + GAP_X) - GAP_X + 2 * PAD
    real = [n for n in nodes.values() if not n.dummy]
    return FlowGraph(flow, real, edges, width, height, dangling)


def _topological(steps: list[Step], edges: list[Edge]) -> list[str]:
    """Entry points first; a DFS order that tolerates cycles."""
    seen: set[str] = set()
    out: list[str] = []
    outgoing: dict[str, list[str]] = {}
    for e in edges:
        outgoing.setdefault(e.source, []).append(e.target)

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for nxt in outgoing.get(name, []):
            visit(nxt)
        out.append(name)

    roots = [s.name for s in steps if s.entry_point]
    for name in roots + [s.name for s in steps]:
        visit(name)
    return list(reversed(out))


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]
