"""The job queue as the rest of the framework sees it: jobs in Redis, and the operations on them.

Producers (`runtime.py`, the web process) use `new_job_id`, `add_job` and `add_wake` (commands added
to a pipeline, so an emit, its trace bookkeeping and the wake-up travel in one round trip),
`claim_once` (a cron tick's single owner), `queue_stats` and, in tests, `make_all_due`. The worker
(`worker_loop.py`) runs jobs through `JobQueue`: claim due jobs, end them, put them back.

The data is arq's layout (see `arq_seam.py`, the only module that imports arq): the queue is a
sorted set of job ids scored by due time (ms); a job stays in it until it ends. What we add:
- **Wake-up.** Each enqueue publishes on `WAKE_CHANNEL`; an idle worker waits on that channel
  instead of sleeping, so pickup takes milliseconds and polling is only a fallback.
- **Lean claims.** One script call finds, claims and reads due jobs (arq spends three round trips
  per job before it starts one); the endings of jobs that finish together go in one MULTI/EXEC.
- **Leases.** A running job's in-progress key lives for the lease (a few seconds) and is renewed
  while the job runs, so a job whose worker died runs again after the lease, whatever the longest
  step timeout is.
- **Interrupted runs.** A run stopped by a graceful shutdown is counted apart (`INTERRUPTS`): it is
  not an attempt of the step.
- **Paused steps.** The claim parks a due job of a paused step (`PAUSED`) in `PARKED` instead of
  starting it; resuming moves them back (`unpark`). A cancel or a purge takes a job that no worker
  holds out of either (`remove_waiting`); a running one is asked for on `CANCEL_CHANNEL`.
"""

from __future__ import annotations

import itertools
import os
import socket
from collections import deque
from collections.abc import Awaitable, Callable, Container, Sequence
from typing import Any
from uuid import uuid4

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from . import arq_seam, keys, lua
from .ids import now_ms

QUEUE = keys.PREFIX + "queue"  # zset: job id -> due ms
WAKE_CHANNEL = keys.PREFIX + "wake"
INTERRUPTS = keys.PREFIX + "interrupts:"  # + job id: runs stopped by a graceful shutdown
PAUSED = keys.PREFIX + "paused"  # hash: step -> ms it was paused (queue_control.py)
PARKED = keys.PREFIX + "parked"  # zset: job id -> due ms: due jobs of paused steps, until resumed
CANCEL_CHANNEL = keys.PREFIX + "cancel"  # channel: job ids whose running run is to be cancelled
JOB_FUNCTION = "workbench.step"  # the one function name every job carries (arq's format has one)
JOB_EXPIRES_MS = 7 * 24 * 3600 * 1000  # a queued job not started within a week is dropped by Redis
TRIES_TTL_S = 88_400  # a job's run counter outlives any retry schedule
INTERRUPTS_TTL_S = 86_400

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def serializer(obj: dict[str, Any]) -> bytes:
    """How a job is encoded inside arq's format (JSON: readable with redis-cli, no pickle)."""
    return _encode(obj)


def deserializer(raw: bytes) -> dict[str, Any]:
    result: dict[str, Any] = _decode(raw)
    return result


def job_key(job_id: str) -> str:
    return arq_seam.JOB_KEY_PREFIX + job_id


def lease_key(job_id: str) -> str:
    return arq_seam.IN_PROGRESS_KEY_PREFIX + job_id


def tries_key(job_id: str) -> str:
    return arq_seam.RETRY_KEY_PREFIX + job_id


def interrupts_key(job_id: str) -> str:
    return INTERRUPTS + job_id


_job_seq = itertools.count()


def new_job_id() -> str:
    """32 hex digits that sort in creation order within a process (ms, then a counter): jobs due in
    the same millisecond run in the order they were enqueued (a sorted set orders ties by member)."""
    return f"{now_ms():012x}{next(_job_seq) & 0xFFFFFF:06x}{uuid4().hex[:14]}"


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def add_job(pipe: Pipeline, payload: dict[str, Any], *, job_id: str, run_at_ms: int | None = None) -> None:
    """Queue one job (to be run by `JOB_FUNCTION` with `payload`), as commands on `pipe`."""
    enqueued = now_ms()
    score = run_at_ms if run_at_ms is not None else enqueued
    data = arq_seam.encode_job(JOB_FUNCTION, payload, enqueued, serializer)
    pipe.psetex(job_key(job_id), JOB_EXPIRES_MS + max(0, score - enqueued), data)
    pipe.zadd(QUEUE, {job_id: score})


def add_wake(pipe: Pipeline, job_ids: Sequence[str] = ()) -> None:
    """Tell idle workers to look at the queue now; naming the jobs just queued saves them a read."""
    pipe.publish(WAKE_CHANNEL, ",".join(job_ids) or "1")


def woken_for(message: bytes) -> list[str]:
    """The job ids a wake-up message names (none for a bare wake-up)."""
    return [] if message == b"1" else message.decode().split(",")


async def claim_once(redis: Redis, name: str, ttl_s: int = 3600) -> bool:
    """True for the first caller only (per name, within the ttl): a cron tick's single owner."""
    return bool(await redis.set(name, b"1", nx=True, ex=ttl_s))


async def queue_stats(redis: Redis) -> dict[str, int]:
    now = now_ms()
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcount(QUEUE, "-inf", now)
        pipe.zcount(QUEUE, f"({now}", "+inf")
        ready, deferred = await pipe.execute()
    return {"ready": int(ready), "deferred": int(deferred)}


class QueuedJob(msgspec.Struct):
    """A job waiting in the queue (or parked) or running, as `waiting_jobs` reads it."""

    job_id: str
    due_ms: int
    payload: dict[str, Any] | None  # None when its data expired or cannot be read
    parked: bool  # its step is paused
    leased: bool  # a worker runs it
    runs: int  # runs started so far (a waiting job with runs > 0 waits for its next attempt)

    @property
    def step(self) -> str:
        return str((self.payload or {}).get("step") or "_unreadable")


async def waiting_jobs(redis: Redis, *, limit: int = 10_000) -> list[QueuedJob]:
    """Every job in the queue and the parked set (at most `limit` of each, in due order), with its
    payload, whether it runs and how often it ran: for the queues page, cancels and purges."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zrange(QUEUE, 0, limit - 1, withscores=True)
        pipe.zrange(PARKED, 0, limit - 1, withscores=True)
        queued, parked = await pipe.execute()
    rows = [(_text(i), int(s), False) for i, s in queued] + [(_text(i), int(s), True) for i, s in parked]
    if not rows:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for job_id, _, _ in rows:
            pipe.get(job_key(job_id))
            pipe.exists(lease_key(job_id))
            pipe.get(tries_key(job_id))
        answers = await pipe.execute()
    jobs = []
    for n, (job_id, due, is_parked) in enumerate(rows):
        raw, leased, runs = answers[3 * n : 3 * n + 3]
        jobs.append(QueuedJob(job_id, due, _payload_or_none(raw), is_parked, bool(leased), int(runs or 0)))
    return jobs


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _payload_or_none(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        return payload_of(raw.encode() if isinstance(raw, str) else raw)
    except Exception:
        return None


class Removed(msgspec.Struct):
    """A job taken out of the queue before it ran (again)."""

    payload: dict[str, Any] | None
    runs: int  # runs it had started
    interrupted: int
    due_ms: int


async def remove_waiting(redis: Redis, job_id: str) -> Removed | str:
    """Take a job no worker holds out of the queue or the parked set, atomically with claims:
    the removed job, or "running" (a worker holds it) or "gone" (queued nowhere)."""
    script = redis.register_script(lua.load("remove_job"))
    names = [QUEUE, PARKED, lease_key(job_id), tries_key(job_id), job_key(job_id), interrupts_key(job_id)]
    answer = await script(keys=names, args=[job_id])
    state = _text(answer[0])
    if state != "removed":
        return state
    _, raw, runs, interrupted, due = answer
    return Removed(_payload_or_none(raw), int(runs), int(interrupted), int(float(due)))


async def unpark(redis: Redis, job_ids: Sequence[str]) -> int:
    """Move parked jobs back to the queue at their due times, and wake the workers."""
    if not job_ids:
        return 0
    script = redis.register_script(lua.load("unpark"))
    moved = int(await script(keys=[PARKED, QUEUE], args=list(job_ids)))
    if moved:
        await redis.publish(WAKE_CHANNEL, "1")
    return moved


async def make_all_due(redis: Redis) -> int:
    """Move every deferred job (a retry waiting out its backoff, a future cron tick) to now, keeping
    their order; returns how many moved. The test harness's `drain()` uses it so that tests never
    wait for real time to pass."""
    now = now_ms()
    deferred = await redis.zrangebyscore(QUEUE, f"({now}", "+inf")
    if deferred:
        # just before now, in their order (equal scores would be ordered by job id instead)
        await redis.zadd(QUEUE, {job_id: now - 1 + i * 1e-6 for i, job_id in enumerate(deferred)}, xx=True)
    return len(deferred)


class JobInfo(msgspec.Struct):
    job_id: str
    try_number: int  # 1 for the first run of this job id; every run counts up (retries, crashes, stops)
    ready_at: int  # ms at which the job became due (enqueue time, retry time or cron tick)
    interrupted: int = 0  # earlier runs stopped by a graceful shutdown (they are not attempts)
    ended: bool = False  # its ending already went out with the run's emits (Runtime.send_outbox)

    @property
    def attempt(self) -> int:
        return self.try_number - self.interrupted


# what the worker calls for each job: returns seconds to wait before running it again, or None
JobRunner = Callable[[dict[str, Any], JobInfo], Awaitable[float | None]]


def payload_of(raw: bytes) -> dict[str, Any]:
    """The payload `add_job` queued, from the job's stored bytes."""
    return arq_seam.payload_of(_decode(raw))


_CLAIMED_FIELDS = 5  # per claimed job, in the claim script's answer
MAX_SPARE = 64  # candidates passed beyond the jobs wanted, at most (others may have taken some)
# a busy worker reads the queue at least this often, even while wake-ups keep naming new jobs: jobs no
# wake-up names (a dead worker's, once their leases run out) would otherwise wait until the load stops
REREAD_MS = 1000


class JobQueue:
    """The worker's side of the queue, over one Redis client (bytes responses)."""

    def __init__(self, redis: Redis, *, lease_s: float, read_limit: int, token: str | None = None) -> None:
        self.redis = redis
        self.lease_ms = int(lease_s * 1000)
        self.read_limit = read_limit
        self.token = token or f"{worker_name()}:{uuid4().hex[:8]}"  # the value of this worker's leases
        self._claim = redis.register_script(lua.load("claim"))
        # due job ids read from the queue (in its order) or named by a wake-up, not tried yet:
        # a claim passes its candidates' keys in KEYS, so ids are known before the script runs
        self._candidates: deque[str] = deque()
        self._known: set[str] = set()
        # how many more candidates than wanted a claim passes: none while they are all there to take
        # (one worker), more while other workers take some first (each key costs the client time)
        self._spare = 0
        self._read_ms = 0  # when the queue was last read

    def hint(self, job_ids: Sequence[str]) -> None:
        """Jobs a wake-up named (just queued): candidates for the next claim, with no read first."""
        for job_id in job_ids:
            if job_id not in self._known:
                self._known.add(job_id)
                self._candidates.append(job_id)

    async def _read_candidates(self, running: Container[str], *, ahead: bool = False) -> None:
        """The queue's due jobs, in its order, as candidates: after those already known, or (`ahead`)
        before them, since the queue's head has waited longest."""
        self._read_ms = now_ms()
        ids = await self.redis.zrangebyscore(QUEUE, "-inf", self._read_ms, start=0, num=self.read_limit)
        fresh = [i for i in (raw.decode() for raw in ids) if i not in running and i not in self._known]
        self._known.update(fresh)
        if ahead:
            self._candidates.extendleft(reversed(fresh))
        else:
            self._candidates.extend(fresh)

    async def claim(
        self,
        wanted: int,
        running: Container[str] = (),
        *,
        holding: Callable[[list[str]], None] | None = None,
        not_held: Callable[[list[str]], None] | None = None,
    ) -> list[tuple[JobInfo, bytes | None]]:
        """Claim up to `wanted` due jobs (not those in `running`, this worker's own): each with its
        run's info and its stored bytes (None when the job's data expired before it could run).

        Usually one round trip: the candidates come from the last read of the queue or from
        wake-ups (an idle worker starts a new job after one round trip); the queue is read again,
        in its order, once they are used up, and at least every REREAD_MS. `holding` is told
        each batch of candidates before it is sent (the lease keeper renews them from then on: an
        answer may wait a long time for an event loop a handler blocks) and `not_held` those the
        claim did not get."""
        claimed: list[tuple[JobInfo, bytes | None]] = []
        read = False
        if self._candidates and now_ms() - self._read_ms >= REREAD_MS:
            await self._read_candidates(running, ahead=True)
            read = True
        while not claimed:  # claimed some: they start now, and the worker asks again if it has room
            if not self._candidates:
                if read:
                    break
                await self._read_candidates(running)
                read = True
                if not self._candidates:
                    break
            batch = list(itertools.islice(self._candidates, wanted + self._spare))
            names = [QUEUE, PAUSED, PARKED]
            for job_id in batch:
                names += (lease_key(job_id), tries_key(job_id), job_key(job_id), interrupts_key(job_id))
            if holding is not None:
                holding(batch)
            args: list[str | int] = [now_ms(), self.lease_ms, wanted, TRIES_TTL_S, self.token, *batch]
            try:
                flat = await self._claim(keys=names, args=args)
            except BaseException:
                if not_held is not None:
                    not_held(batch)  # (a claim that did reach Redis leaves leases that run out)
                raise
            looked = int(flat[0])
            for _ in range(looked):  # the candidates looked at are used up, claimed or not
                self._known.discard(self._candidates.popleft())
            got = set()
            for i in range(1, len(flat), _CLAIMED_FIELDS):
                number, score, raw, run, interrupted = flat[i : i + _CLAIMED_FIELDS]
                info = JobInfo(batch[int(number) - 1], int(run), int(float(score)), int(interrupted))
                claimed.append((info, raw))
                got.add(info.job_id)
            if not_held is not None and len(got) < len(batch):
                not_held([job_id for job_id in batch if job_id not in got])
            if looked > len(got):  # other workers took some first: look further ahead next time
                self._spare = min(MAX_SPARE, max(2, self._spare * 2))
            else:
                self._spare //= 2
        return claimed

    @staticmethod
    def end(pipe: Pipeline, job_id: str) -> None:
        """The job is done (completed, dead-lettered or expired): remove it and its keys."""
        pipe.zrem(QUEUE, job_id)
        pipe.delete(lease_key(job_id), tries_key(job_id), job_key(job_id), interrupts_key(job_id))

    @staticmethod
    def retry_at(pipe: Pipeline, job_id: str, at_ms: int) -> None:
        """Run the job again at `at_ms`; idle workers work out their sleep again (it may be first)."""
        pipe.zadd(QUEUE, {job_id: at_ms}, xx=True)
        pipe.delete(lease_key(job_id))
        add_wake(pipe)

    @staticmethod
    def interrupt(pipe: Pipeline, job_id: str) -> None:
        """A run stopped by a graceful shutdown: the job is due again at once (its score has not
        changed), and this run does not count against its attempts."""
        pipe.incr(interrupts_key(job_id))
        pipe.expire(interrupts_key(job_id), INTERRUPTS_TTL_S)
        pipe.delete(lease_key(job_id))

    def renew_args(self, job_ids: Sequence[str]) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of the renew script for these jobs' leases (the lease keeper runs it
        from its own thread, on a connection of its own)."""
        return [lease_key(job_id) for job_id in job_ids], [self.token, self.lease_ms]

    async def next_deferred_ms(self) -> int | None:
        """When the next job not yet due falls due."""
        due = await self.redis.zrangebyscore(QUEUE, f"({now_ms()}", "+inf", start=0, num=1, withscores=True)
        return int(due[0][1]) if due else None

    async def size(self) -> int:
        return int(await self.redis.zcard(QUEUE))
