"""workbench/web/views.py: the pure helpers behind the pages (formatting, percentiles, the
waterfall's geometry, the flow graph's layout), tested without a server."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from workbench.registry import Registry, discover
from workbench.web import views
from workbench.web.views import NODE_H, NODE_W, PAD

from .conftest import PET_STEPS, write_step

# --- formatting -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "…"),
        (0, "0 ms"),
        (0.0, "0 ms"),
        (0.25, "0.25 ms"),
        (0.994, "0.99 ms"),
        (0.999, "1.0 ms"),
        (9.96, "10 ms"),
        (999.6, "1.00 s"),
        (59_996, "1.0 min"),
        (1, "1.0 ms"),
        (9.94, "9.9 ms"),
        (10, "10 ms"),
        (123.4, "123 ms"),
        (999, "999 ms"),
        (1000, "1.00 s"),
        (1234, "1.23 s"),
        (59_990, "59.99 s"),
        (60_000, "1.0 min"),
        (90_000, "1.5 min"),
        (3_600_000, "60.0 min"),
    ],
)
def test_fmt_ms(value: float | None, shown: str) -> None:
    assert views.fmt_ms(value) == shown


@pytest.fixture
def utc() -> Iterator[None]:
    """Local time is UTC while the test runs (fmt_clock and fmt_datetime show local time)."""
    if not hasattr(time, "tzset"):
        pytest.skip("needs time.tzset")
    mp = pytest.MonkeyPatch()
    mp.setenv("TZ", "UTC")
    time.tzset()
    yield
    mp.undo()
    time.tzset()


# 2023-11-14 22:13:20 UTC
T0 = 1_700_000_000_000


def test_fmt_clock_shows_local_time_with_zero_padded_milliseconds(utc: None) -> None:
    assert views.fmt_clock(T0 + 123) == "22:13:20.123"
    assert views.fmt_clock(T0 + 5) == "22:13:20.005"
    assert views.fmt_clock(T0 + 60_999) == "22:14:20.999"
    assert views.fmt_clock(None) == "" and views.fmt_clock(0) == ""


def test_fmt_datetime(utc: None) -> None:
    assert views.fmt_datetime(T0 + 999) == "2023-11-14 22:13:20 UTC"
    assert views.fmt_datetime(None) == "" and views.fmt_datetime(0) == ""


@pytest.mark.parametrize(
    ("ago_ms", "shown"),
    [
        (0, "now"),
        (4_999, "now"),
        (5_000, "5s ago"),
        (59_999, "59s ago"),
        (60_000, "1m ago"),
        (3_599_999, "59m ago"),
        (3_600_000, "1h ago"),
        (86_399_999, "23h ago"),
        (86_400_000, "1d ago"),
        (10 * 86_400_000, "10d ago"),
        (-60_000, "now"),  # a time in the future (another process's clock) is not "-60s ago"
    ],
)
def test_fmt_ago(ago_ms: int, shown: str) -> None:
    assert views.fmt_ago(T0 - ago_ms, now_ms=T0) == shown


def test_fmt_ago_defaults_to_the_current_time_and_ignores_missing_values() -> None:
    now = int(time.time() * 1000)
    assert views.fmt_ago(now - 125_000) == "2m ago"
    assert views.fmt_ago(None) == "" and views.fmt_ago(0, now_ms=now) == ""


def test_pretty_json() -> None:
    value = {"name": "Léa", "when": datetime(2024, 1, 2, tzinfo=UTC), "where": Path("/x"), "n": [1]}
    assert views.pretty_json(value) == (
        '{\n  "name": "Léa",\n  "when": "2024-01-02 00:00:00+00:00",\n  "where": "/x",\n'
        '  "n": [\n    1\n  ]\n}'
    )  # indented, non-ASCII kept as is, anything JSON has no type for as its str()


# --- percentile -------------------------------------------------------------------------------------


def test_percentile_of_nothing_is_none() -> None:
    assert views.percentile([], 50) is None


def test_percentile_is_a_nearest_rank_of_the_sorted_values() -> None:
    values = [float(v) for v in range(20, 0, -1)]  # 20 … 1, unsorted on purpose
    kept = list(values)
    assert views.percentile(values, 0) == 1.0
    assert views.percentile(values, 50) == 11.0  # index round(0.5 * 19) = round(9.5) = 10
    assert views.percentile(values, 95) == 19.0  # index round(0.95 * 19) = 18
    assert views.percentile(values, 100) == 20.0
    assert values == kept  # the caller's list is left alone


@pytest.mark.parametrize("p", [0, 50, 95, 100])
def test_percentile_of_one_value_is_that_value(p: float) -> None:
    assert views.percentile([7.5], p) == 7.5


def test_percentile_out_of_range_is_clamped() -> None:
    assert views.percentile([3.0, 1.0, 2.0], 150) == 3.0
    assert views.percentile([3.0, 1.0, 2.0], -10) == 1.0


def test_percentile_p95_picks_out_a_slow_tail() -> None:
    durations = [500.0] * 6 + [10.0] * 94  # 6% slow
    assert views.percentile(durations, 50) == 10.0
    assert views.percentile(durations, 95) == 500.0  # index round(0.95 * 99) = 94: the first slow one
    assert views.percentile(durations, 94) == 10.0  # index 93


# --- waterfall --------------------------------------------------------------------------------------


def span(
    sid: str,
    started: int,
    finished: int | None = None,
    *,
    queued: int | None = None,
    parent: str | None = None,
    attempt: int = 1,
    events: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "id": sid,
        "step": sid.upper(),
        "startedAt": started,
        "finishedAt": finished,
        "enqueuedAt": queued,
        "parentId": parent,
        "attempt": attempt,
        "events": events or [],
    }


def geometry(bar: views.Bar) -> tuple[Any, ...]:
    return (bar.span["id"], bar.depth, bar.wait_left, bar.wait_width, bar.run_left, bar.run_width,
            bar.wait_ms, bar.run_ms, bar.markers)  # fmt: skip


def test_waterfall_of_a_trace_without_spans() -> None:
    assert views.waterfall({"spanList": []}, T0) == ([], [], 0.0)
    assert views.waterfall({}, T0) == ([], [], 0.0)


def test_waterfall_puts_queue_wait_apart_from_run_time_children_under_their_parent() -> None:
    trace = {
        "spanList": [
            # listed out of order: the layout orders them
            span("job", 1120, 1200, queued=1060, parent="api"),
            span("api", 1000, 1100, events=[
                {"kind": "emit", "ts": 1050, "topic": "pet.created"},
                {"kind": "log", "ts": 1060, "message": "not a marker"},
            ]),
        ]
    }  # fmt: skip
    bars, ticks, total = views.waterfall(trace, now_ms=T0)
    assert total == 200.0  # from the first start (1000) to the last end (1200)
    assert [geometry(b) for b in bars] == [
        ("api", 0, 0.0, 0.0, 0.0, 50.0, None, 100, [(25.0, "pet.created")]),  # no queue: no wait
        ("job", 1, 30.0, 30.0, 60.0, 40.0, 60, 80, []),  # queued at 30%, ran from 60% to 100%
    ]
    assert ticks == [(0.0, "0 ms"), (25.0, "50 ms"), (50.0, "100 ms"), (75.0, "150 ms"), (100.0, "200 ms")]


def test_waterfall_scale_starts_at_the_earliest_enqueue() -> None:
    trace = {"spanList": [span("a", 1100, 1200, queued=1000)]}
    (bar,), _, total = views.waterfall(trace, now_ms=T0)
    assert total == 200.0
    assert geometry(bar) == ("a", 0, 0.0, 50.0, 50.0, 50.0, 100, 100, [])


def test_waterfall_retries_are_bars_of_their_own_in_attempt_order() -> None:
    trace = {
        "spanList": [
            span("api", 0 + 1000, 1010),
            span("try2", 1100, 1150, queued=1050, parent="api", attempt=2),
            span("try1", 1020, 1030, queued=1010, parent="api", attempt=1),
            span("sibling", 1020, 1040, queued=1010, parent="api", attempt=1),
        ]
    }
    bars, _, _ = views.waterfall(trace, now_ms=T0)
    # children by enqueue time, then attempt; equal keys keep their stored order
    assert [(b.span["id"], b.depth) for b in bars] == [("api", 0), ("try1", 1), ("sibling", 1), ("try2", 1)]
    same_time = {
        "spanList": [span("b", 1000, 1010, queued=990, attempt=2), span("a", 1000, 1010, queued=990)]
    }
    assert [b.span["id"] for b in views.waterfall(same_time, now_ms=T0)[0]] == ["a", "b"]


def test_waterfall_span_whose_parent_is_missing_is_a_root() -> None:
    trace = {"spanList": [span("a", 1000, 1100), span("b", 1110, 1115, queued=1100, parent="gone")]}
    bars, _, _ = views.waterfall(trace, now_ms=T0)
    assert [(b.span["id"], b.depth) for b in bars] == [("a", 0), ("b", 0)]


def test_waterfall_running_span_grows_to_now_and_has_no_run_time_yet() -> None:
    trace = {"spanList": [span("a", 1000, 1100), span("b", 1200, None, queued=1100, parent="a")]}
    bars, ticks, total = views.waterfall(trace, now_ms=1400)
    assert total == 400.0
    b = bars[1]
    assert (b.run_left, b.run_width, b.run_ms, b.wait_ms) == (50.0, 50.0, None, 100)
    assert ticks[-1] == (100.0, "400 ms")


def test_waterfall_instant_span_gets_a_visible_bar() -> None:
    bars, ticks, total = views.waterfall({"spanList": [span("a", 1000, 1000)]}, now_ms=T0)
    assert total == 1.0  # never a division by zero
    assert (bars[0].run_width, bars[0].run_ms) == (0.4, 0)
    assert ticks == [(0.0, "0 ms"), (100.0, "1.0 ms")]


def test_waterfall_depth_is_capped_at_six() -> None:
    chain = [span("s0", 1000, 2000)] + [
        span(f"s{i}", 1000 + i * 10, 2000, queued=1000 + i * 10 - 5, parent=f"s{i - 1}") for i in range(1, 9)
    ]
    bars, _, _ = views.waterfall({"spanList": chain}, now_ms=T0)
    assert [b.depth for b in bars] == [0, 1, 2, 3, 4, 5, 6, 6, 6]


def test_waterfall_percentages_are_rounded_to_three_places() -> None:
    bars, _, _ = views.waterfall({"spanList": [span("a", 0 + 1, 301), span("b", 101, 301)]}, now_ms=T0)
    assert bars[1].run_left == 33.333 and bars[1].run_width == 66.667


@pytest.mark.parametrize(
    ("total_ms", "ticks"),
    [
        (100, ["0 ms", "25 ms", "50 ms", "75 ms", "100 ms"]),
        (7, ["0 ms", "2.0 ms", "4.0 ms", "6.0 ms"]),
        (1_000, ["0 ms", "250 ms", "500 ms", "750 ms", "1.00 s"]),
        (9_000, ["0 ms", "5.00 s"]),
        (600_000, ["0 ms", "3.0 min", "6.0 min", "9.0 min"]),  # beyond the table: whole minutes
    ],
)
def test_waterfall_ticks_are_round_numbers(total_ms: int, ticks: list[str]) -> None:
    _, got, total = views.waterfall({"spanList": [span("a", 1000, 1000 + total_ms)]}, now_ms=T0)
    assert [label for _, label in got] == ticks
    assert all(0 <= pos <= 100 for pos, _ in got)
    assert got[0][0] == 0.0 and total == total_ms


# --- flows --------------------------------------------------------------------------------------------

API_HANDLER = "async def handler(request, ctx):\n    return None\n"
EVENT_HANDLER = "async def handler(data, ctx):\n    return None\n"
CRON_HANDLER = "async def handler(ctx):\n    return None\n"
HANDLERS = {"api": API_HANDLER, "event": EVENT_HANDLER, "cron": CRON_HANDLER, "noop": ""}


@pytest.fixture(autouse=True)
def _isolate_imports() -> Iterator[None]:
    path, modules = list(sys.path), set(sys.modules)
    yield
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        if name.startswith("workbench_steps"):
            del sys.modules[name]


def registry_of(folder: Path, *configs: dict[str, Any]) -> Registry:
    for i, config in enumerate(configs):
        write_step(folder, f"s{i:02d}", f"config = {config!r}\n\n\n{HANDLERS[config['type']]}")
    return discover(folder)


def api(name: str, emits: list[str], flows: list[str], path: str | None = None) -> dict[str, Any]:
    return {"type": "api", "name": name, "method": "POST", "path": path or f"/{name.lower()}",
            "emits": emits, "flows": flows}  # fmt: skip


def event(name: str, subscribes: list[str], emits: list[str], flows: list[str]) -> dict[str, Any]:
    return {"type": "event", "name": name, "subscribes": subscribes, "emits": emits, "flows": flows}


def boxes_apart(graph: views.FlowGraph) -> None:
    """No two node boxes overlap, and every box lies inside the drawing with its padding."""
    for a, b in ((a, b) for i, a in enumerate(graph.nodes) for b in graph.nodes[i + 1 :]):
        apart = a.x + NODE_W <= b.x or b.x + NODE_W <= a.x or a.y + NODE_H <= b.y or b.y + NODE_H <= a.y
        assert apart, f"{a.name} and {b.name} overlap"
    for n in graph.nodes:
        assert PAD <= n.x and n.x + NODE_W <= graph.width - PAD, n
        assert PAD <= n.y and n.y + NODE_H <= graph.height - PAD, n


def path_points(d: str) -> list[tuple[float, float]]:
    """The end point of every segment of an SVG path made of M, L and C commands."""
    points = []
    for part in d.replace("M", "|M").replace("L", "|L").replace("C", "|C").split("|"):
        if part.strip():
            x, y = part[1:].split()[-1].split(",")
            points.append((float(x), float(y)))
    return points


def test_flows_of_lists_every_flow_once_and_default_for_steps_without_one(tmp_path: Path) -> None:
    registry = registry_of(
        tmp_path, api("A", [], ["b", "a"]), api("B", [], ["a"]), event("E", ["x.y"], [], [])
    )
    assert views.flows_of(registry) == ["a", "b", "default"]
    assert views.flows_of(discover(PET_STEPS)) == ["pet-lifecycle", "pets"]


def test_layout_places_each_step_one_column_right_of_the_furthest_step_emitting_to_it(
    tmp_path: Path,
) -> None:
    registry = registry_of(
        tmp_path,
        api("Start", ["one", "two", "nowhere"], ["f"]),
        event("One", ["one"], ["two"], ["f"]),
        event("Two", ["two"], [], ["f"]),
        event("Elsewhere", ["one"], [], ["g"]),  # subscribed, but in another flow
    )
    graph = views.layout_flow(registry, "f")
    nodes = {n.name: n for n in graph.nodes}
    assert {name: (n.kind, n.label, n.layer) for name, n in nodes.items()} == {
        "Start": ("api", "POST /start", 0),
        "One": ("event", "one", 1),
        "Two": ("event", "two", 2),  # after One (which emits to it), not beside Start
    }
    assert not any(n.dummy for n in graph.nodes)
    assert [(e.source, e.target, e.topic, e.virtual) for e in graph.edges] == [
        ("Start", "One", "one", False),
        ("Start", "Two", "two", False),
        ("One", "Two", "two", False),
    ]
    assert graph.dangling == [("Start", "nowhere")]
    assert graph.name == "f"
    # three columns; the tallest holds two slots (One, and Start→Two passing through)
    assert graph.width == 3 * (NODE_W + views.GAP_X) - views.GAP_X + 2 * PAD
    assert graph.height == 2 * (NODE_H + views.GAP_Y) - views.GAP_Y + 2 * PAD
    boxes_apart(graph)
    for n in graph.nodes:
        assert n.x == PAD + n.layer * (NODE_W + views.GAP_X)
        if n.name != "One":  # alone in its column: centred in the drawing's height
            assert n.y + NODE_H / 2 == graph.height / 2, n


def test_edges_run_from_the_source_right_side_to_the_target_left_side(tmp_path: Path) -> None:
    registry = registry_of(
        tmp_path,
        api("Start", ["one", "two"], ["f"]),
        event("One", ["one"], ["two"], ["f"]),
        event("Two", ["two"], [], ["f"]),
    )
    graph = views.layout_flow(registry, "f")
    nodes = {n.name: n for n in graph.nodes}
    for e in graph.edges:
        src, dst = nodes[e.source], nodes[e.target]
        points = path_points(e.path)
        assert points[0] == (src.x + NODE_W, src.y + NODE_H / 2), e
        assert points[-1] == (dst.x, dst.y + NODE_H / 2), e
        assert e.label_x == (src.x + NODE_W + src.x + NODE_W + views.GAP_X) / 2  # in the gap after the source
    # the long edge Start→Two crosses column 1 straight, through a slot of its own, clear of One
    long = next(e for e in graph.edges if (e.source, e.target) == ("Start", "Two"))
    column1 = PAD + NODE_W + views.GAP_X
    (enter, leave) = [(x, y) for x, y in path_points(long.path) if column1 <= x <= column1 + NODE_W]
    assert enter[0] == column1 and leave[0] == column1 + NODE_W and enter[1] == leave[1]
    one = nodes["One"]
    assert not (one.y <= enter[1] <= one.y + NODE_H), "the long edge runs through One"
    assert " L" in long.path


def test_columns_are_ordered_to_avoid_crossings_and_entry_points_by_kind(tmp_path: Path) -> None:
    registry = registry_of(
        tmp_path,
        {"type": "cron", "name": "Aaa", "cron": "0 2 * * *", "emits": ["a"], "flows": ["f"]},
        api("Zzz", ["z"], ["f"]),
        event("Alpha", ["z"], [], ["f"]),  # fed by Zzz (row 0): first, although its name sorts first anyway
        event("Beta", ["a"], [], ["f"]),  # fed by Aaa (row 1)
    )
    graph = views.layout_flow(registry, "f")
    y = {n.name: n.y for n in graph.nodes}
    assert y["Zzz"] < y["Aaa"]  # api before cron in the first column, whatever the names
    assert y["Alpha"] < y["Beta"]  # each event step level with the step feeding it: no crossing
    labels = {n.name: n.label for n in graph.nodes}
    assert labels["Aaa"] == "cron 0 2 * * *"

    swapped = registry_of(
        tmp_path / "swapped",
        api("Zzz", ["z"], ["f"]),
        api("Yyy", ["y"], ["f"], path="/y"),
        event("Aaa", ["z"], [], ["f"]),  # fed by the lower entry point: it goes below, despite its name
        event("Bbb", ["y"], [], ["f"]),
    )
    graph = views.layout_flow(swapped, "f")
    y = {n.name: n.y for n in graph.nodes}
    assert y["Yyy"] < y["Zzz"] and y["Bbb"] < y["Aaa"]


def test_noop_steps_are_drawn_with_virtual_edges(tmp_path: Path) -> None:
    registry = registry_of(
        tmp_path,
        api("Submit", ["review.requested"], ["r"]),
        {"type": "noop", "name": "HumanReview", "virtual_subscribes": ["review.requested"],
         "virtual_emits": ["review.done"], "flows": ["r"]},
        event("Publish", ["review.done"], [], ["r"]),
    )  # fmt: skip
    graph = views.layout_flow(registry, "r")
    assert [(e.source, e.target, e.virtual) for e in graph.edges] == [
        ("Submit", "HumanReview", False),
        ("HumanReview", "Publish", True),
    ]
    assert {n.name: (n.kind, n.label, n.layer) for n in graph.nodes} == {
        "Submit": ("api", "POST /submit", 0),
        "HumanReview": ("noop", "review.requested", 1),
        "Publish": ("event", "review.done", 2),
    }
    assert graph.dangling == []


def test_cycles_are_drawn_without_looping_forever(tmp_path: Path) -> None:
    registry = registry_of(
        tmp_path,
        api("Start", ["ping"], ["c"]),
        event("Ping", ["ping"], ["pong"], ["c"]),
        event("Pong", ["pong"], ["ping"], ["c"]),
        event("Echo", ["echo"], ["echo"], ["c"]),  # a step that feeds itself
    )
    graph = views.layout_flow(registry, "c")
    layers = {n.name: n.layer for n in graph.nodes}
    assert layers == {"Start": 0, "Ping": 1, "Pong": 2, "Echo": 0}  # the edge closing the cycle is ignored
    assert {(e.source, e.target) for e in graph.edges} == {
        ("Start", "Ping"), ("Ping", "Pong"), ("Pong", "Ping"), ("Echo", "Echo"),
    }  # fmt: skip
    boxes_apart(graph)


def test_a_flow_of_event_steps_only(tmp_path: Path) -> None:
    registry = registry_of(tmp_path, event("A", ["x"], ["y"], ["e"]), event("B", ["y"], ["x"], ["e"]))
    graph = views.layout_flow(registry, "e")
    assert sorted(n.layer for n in graph.nodes) == [0, 1]
    boxes_apart(graph)


def test_a_single_step_flow(tmp_path: Path) -> None:
    graph = views.layout_flow(registry_of(tmp_path, api("Only", [], ["solo"])), "solo")
    (node,) = graph.nodes
    assert (node.x, node.y) == (PAD, PAD)
    assert (graph.width, graph.height) == (NODE_W + 2 * PAD, NODE_H + 2 * PAD)
    assert graph.edges == [] and graph.dangling == []


def test_a_flow_no_step_belongs_to_is_empty(tmp_path: Path) -> None:
    graph = views.layout_flow(registry_of(tmp_path, api("Only", [], ["solo"])), "gone")
    assert (graph.nodes, graph.edges, graph.dangling) == ([], [], [])
    assert (graph.width, graph.height) == (2 * PAD, 2 * PAD)


def test_pet_app_flows() -> None:
    pets = discover(PET_STEPS)
    lifecycle = views.layout_flow(pets, "pet-lifecycle")
    layers = {n.name: n.layer for n in lifecycle.nodes}
    assert layers == {
        "CreatePet": 0,
        "UpdatePet": 0,
        "SetNextFeedingReminder": 1,
        "PetLifecycleOrchestrator": 2,
    }
    assert sorted((e.source, e.topic, e.target) for e in lifecycle.edges) == [
        ("CreatePet", "feeding.reminder.enqueued", "SetNextFeedingReminder"),
        ("CreatePet", "pet.created", "PetLifecycleOrchestrator"),
        ("SetNextFeedingReminder", "feeding.reminder.completed", "PetLifecycleOrchestrator"),
        ("UpdatePet", "pet.status.update.requested", "PetLifecycleOrchestrator"),
    ]
    assert lifecycle.dangling == [("PetLifecycleOrchestrator", "pet.status.changed")]
    boxes_apart(lifecycle)
    everything = views.layout_flow(pets, "pets")
    assert {n.name for n in everything.nodes} == {s.name for s in pets if "pets" in s.flows}
    # the orchestrator is not in "pets": CreatePet's pet.created dangles there
    assert ("CreatePet", "pet.created") in everything.dangling
    boxes_apart(everything)
    for graph in (lifecycle, everything):
        for a, b in pairwise(sorted(graph.nodes, key=lambda n: (n.layer, n.y))):
            assert a.layer < b.layer or b.y - a.y >= NODE_H + views.GAP_Y
