"""The contract with arq: what `workbench/arq_seam.py` takes from it still holds.

These fail the day arq renames or changes one of the names the seam uses, or the data layout the
worker loop relies on (a queue written by one version must stay readable by the next)."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path
from typing import Any

import arq.constants
import arq.jobs
from arq.connections import RedisSettings, create_pool
from redis.asyncio import Redis

from workbench import arq_seam, job_queue
from workbench.job_queue import JobInfo
from workbench.worker_loop import make_worker

PACKAGE = Path(__file__).resolve().parent.parent / "workbench"


def test_the_key_prefixes_are_arqs_and_have_not_changed() -> None:
    # jobs queued before an upgrade live under these names: a change would strand them
    assert arq_seam.JOB_KEY_PREFIX == arq.constants.job_key_prefix == "arq:job:"
    assert arq_seam.IN_PROGRESS_KEY_PREFIX == arq.constants.in_progress_key_prefix == "arq:in-progress:"
    assert arq_seam.RETRY_KEY_PREFIX == arq.constants.retry_key_prefix == "arq:retry:"


def test_a_job_encoded_by_arq_is_read_by_our_decoder() -> None:
    payload = {"step": "S", "data": {"x": [1, "é"]}, "traceId": "t"}
    raw = arq.jobs.serialize_job(
        job_queue.JOB_FUNCTION, (payload,), {}, None, 1_700_000_000_123, serializer=job_queue.serializer
    )
    assert job_queue.payload_of(raw) == payload


def test_a_job_encoded_by_us_is_read_by_arqs_decoder() -> None:
    payload = {"step": "S", "data": None, "traceId": "t"}
    raw = arq_seam.encode_job(job_queue.JOB_FUNCTION, payload, 1_700_000_000_123, job_queue.serializer)
    job = arq.jobs.deserialize_job(raw, deserializer=job_queue.deserializer)
    assert (job.function, tuple(job.args), job.kwargs) == (job_queue.JOB_FUNCTION, (payload,), {})
    assert job.enqueue_time.timestamp() == 1_700_000_000.123
    assert arq_seam.decode_job(raw, job_queue.deserializer) == (job_queue.JOB_FUNCTION, (payload,), {})


async def test_a_job_enqueued_by_arqs_own_client_runs_on_our_worker(redis_url: str) -> None:
    pool = await create_pool(
        RedisSettings.from_dsn(redis_url),
        job_serializer=job_queue.serializer,
        job_deserializer=job_queue.deserializer,
        default_queue_name=job_queue.QUEUE,
    )
    payload = {"step": "S", "data": {"n": 1}}
    job = await pool.enqueue_job(job_queue.JOB_FUNCTION, payload, _job_id="from-arq")
    assert job is not None
    await pool.aclose()
    runs: list[tuple[dict[str, Any], JobInfo]] = []

    async def runner(got: dict[str, Any], info: JobInfo) -> None:
        runs.append((got, info))

    worker = make_worker(
        redis_url,
        run_job=runner,
        concurrency=2,
        poll_delay_s=0.05,
        lease_s=5,
        grace_s=1,
        max_timeout_s=5,
        burst=True,
        handle_signals=False,
    )
    try:
        await asyncio.wait_for(worker.async_run(), 30)
    finally:
        await worker.close()
    assert [(got, info.job_id, info.try_number) for got, info in runs] == [(payload, "from-arq", 1)]
    client = Redis.from_url(redis_url)
    leftovers = [k async for k in client.scan_iter("arq:*")]
    await client.aclose()
    assert leftovers == []


def test_only_the_seam_imports_arq() -> None:
    importers = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            if any(name == "arq" or name.startswith("arq.") for name in names):
                importers.append(path.relative_to(PACKAGE).as_posix())
    assert sorted(set(importers)) == ["arq_seam.py"]
