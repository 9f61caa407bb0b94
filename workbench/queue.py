"""Kept for imports written before the queue was split (`deadletters.py`'s type import, the test
harness): the queue's interface is in `job_queue.py`, the worker loop in `worker_loop.py` and every
use of arq in `arq_seam.py`. New code imports from those."""

from .job_queue import (
    QUEUE,
    JobInfo,
    JobRunner,
    add_job,
    add_wake,
    claim_once,
    make_all_due,
    new_job_id,
    queue_stats,
    worker_name,
)
from .worker_loop import WorkerLoop, make_worker

__all__ = [
    "QUEUE",
    "JobInfo",
    "JobRunner",
    "WorkerLoop",
    "add_job",
    "add_wake",
    "claim_once",
    "make_all_due",
    "make_worker",
    "new_job_id",
    "queue_stats",
    "worker_name",
]
