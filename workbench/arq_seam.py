"""Every use of arq, in one module: its key prefixes and its job wire format.

Workbench runs its own worker loop (`worker_loop.py`) over arq's data layout rather than arq's
`Worker`: a job is arq's serialized job (function name, args, kwargs, try, enqueue time) at
`JOB_KEY_PREFIX + id`, scored by its due time in a sorted set, and a running job holds
`IN_PROGRESS_KEY_PREFIX + id` while `RETRY_KEY_PREFIX + id` counts its runs. So a job queued by
arq's own `ArqRedis.enqueue_job` (given our serializer) runs here, and a queue written by an
earlier version keeps working.

Only public arq names are used (`arq.constants`, `arq.jobs.serialize_job`/`deserialize_job`), and
nothing else in the framework imports arq. `tests/test_arq_seam.py` fails the day arq renames or
changes one of them. Decoding a job on the hot path is ours (`payload_of`): the contract test
checks it against arq's own encoder and decoder.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from arq import constants as _constants
from arq import jobs as _jobs

JOB_KEY_PREFIX: str = _constants.job_key_prefix  # + job id: the serialized job
IN_PROGRESS_KEY_PREFIX: str = _constants.in_progress_key_prefix  # + job id: a running job's lease
RETRY_KEY_PREFIX: str = _constants.retry_key_prefix  # + job id: how many runs it has started

Serializer = Callable[[dict[str, Any]], bytes]
Deserializer = Callable[[bytes], dict[str, Any]]


def encode_job(function: str, payload: dict[str, Any], enqueued_ms: int, serializer: Serializer) -> bytes:
    """A job in arq's wire format: `function(payload)`, enqueued at `enqueued_ms`."""
    data: bytes = _jobs.serialize_job(function, (payload,), {}, None, enqueued_ms, serializer=serializer)
    return data


def decode_job(raw: bytes, deserializer: Deserializer) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    """Function name, args and kwargs of a job, read by arq's own decoder (tools and tests; the
    worker reads the payload with `payload_of`, which skips arq's datetime conversion)."""
    job = _jobs.deserialize_job(raw, deserializer=deserializer)
    return str(job.function), tuple(job.args), dict(job.kwargs)


def payload_of(job: dict[str, Any]) -> dict[str, Any]:
    """The payload of a decoded job written by `encode_job` (or `ArqRedis.enqueue_job(f, payload)`):
    its first positional argument."""
    payload: dict[str, Any] = job["a"][0]
    return payload
