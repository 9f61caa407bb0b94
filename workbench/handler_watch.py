"""Watching a step's handler while it runs, from inside the run's own task.

`Watched(coro, ...)` drives the handler's coroutine itself (what `await coro` would do), which lets it
see two things an `await` cannot, with no task or thread of its own (the common case costs two
clock reads per stretch of the handler's code):

- **A blocked event loop.** Each stretch of the handler's code that runs without yielding to the
  event loop is timed; one longer than `block_warn_s` is reported (`on_block(seconds)`): a
  `time.sleep(8)` in an `async def`, a long computation. Nothing else in the process runs meanwhile
  (the worker's leases are renewed from a thread, so it costs latency, not a second run of the job).
- **An ignored cancellation.** When the run is cancelled (its timeout, or the worker stopping), the
  handler gets `CLEANUP_S` to finish: `except CancelledError: await cleanup(); raise` is fine. A
  handler that swallows the cancellation and carries on is detached: it goes on in a task of its
  own (Python cannot stop code that will not stop), `on_detach()` is told, and the run ends with
  CancelledError as if the handler had cooperated, so its timeout is recorded and its slot freed.
  A handler that swallows the cancellation and returns still ends the run with CancelledError: a
  cancellation once delivered is never lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Generator
from typing import Any

log = logging.getLogger("workbench.worker")

CLEANUP_S = 1.0  # how long a cancelled handler may take to finish (async cleanup) before it is left

_detached: set[asyncio.Task[None]] = set()


def detached() -> set[asyncio.Task[None]]:
    """Handlers left running after ignoring their cancellation (and not finished since)."""
    return set(_detached)


class Watched:
    """Await `coro`, reporting loop blocks and detaching it if it ignores a cancellation."""

    __slots__ = ("_block_warn_s", "_coro", "_on_block", "_on_detach")

    def __init__(
        self,
        coro: Coroutine[Any, Any, Any],
        *,
        block_warn_s: float,
        on_block: Callable[[float], None],
        on_detach: Callable[[], None],
    ) -> None:
        self._coro = coro
        self._block_warn_s = block_warn_s
        self._on_block = on_block
        self._on_detach = on_detach

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, clock = self._coro, time.perf_counter
        task = asyncio.current_task()
        assert task is not None, "a handler runs in a task"
        # The run's cancellation (its timeout, the worker stopping) is told apart from the ones code
        # inside the handler makes and takes back (asyncio.timeout in the handler or in redis-py:
        # it cancels, then uncancels): after the handler has seen a CancelledError, the task still
        # has a cancellation requested only if it was meant for the run.
        baseline = task.cancelling()
        value: Any = None
        error: BaseException | None = None
        cleanup_until: float | None = None  # once the handler carries on after the run's cancellation
        while True:
            started = clock()
            try:
                yielded = coro.send(value) if error is None else coro.throw(error)
            except StopIteration as stop:
                self._timed(clock() - started)
                if (cleanup_until is not None or isinstance(error, asyncio.CancelledError)) and (
                    task.cancelling() > baseline
                ):
                    raise asyncio.CancelledError from None  # it swallowed the run's cancellation
                return stop.value
            except BaseException:
                self._timed(clock() - started)
                raise
            self._timed(clock() - started)
            if cleanup_until is None and isinstance(error, asyncio.CancelledError):
                if task.cancelling() > baseline:  # the handler carries on after the run's cancellation
                    cleanup_until = asyncio.get_running_loop().time() + CLEANUP_S
            value, error = None, None
            if cleanup_until is None:
                try:
                    value = yield yielded  # what `await` does: the task waits on it for the handler
                except GeneratorExit:
                    coro.close()
                    raise
                except BaseException as exc:  # thrown in by the task: its awaitable failed or was cancelled
                    error = exc
                continue
            # the handler is cleaning up after the run's cancellation, or ignoring it: it gets
            # until `cleanup_until`, and is then left to itself
            outcome = yield from _wait_until(yielded, cleanup_until)
            if outcome == "cancelled":
                error = asyncio.CancelledError()
            elif outcome == "deadline":
                self._detach(yielded)
                raise asyncio.CancelledError

    def _timed(self, elapsed: float) -> None:
        if elapsed >= self._block_warn_s:
            self._on_block(elapsed)

    def _detach(self, pending: Any) -> None:
        task = asyncio.get_running_loop().create_task(_carry_on(self._coro, pending))
        _detached.add(task)
        task.add_done_callback(_forget)
        self._on_detach()


def _wait_until(pending: Any, until: float) -> Generator[Any, Any, str]:
    """Wait for what the handler awaits, but not past `until` (loop time): "done" once it is done,
    "deadline" when `until` passed first, "cancelled" when the task was cancelled meanwhile (the
    cancellation is passed on to what the handler awaits, as the task itself would)."""
    loop = asyncio.get_running_loop()
    if pending is None:  # a bare yield (asyncio.sleep(0)): let the loop run once, as a task would
        try:
            yield None
        except asyncio.CancelledError:
            return "cancelled"
        return "done" if loop.time() < until else "deadline"
    waiter = loop.create_future()

    def wake(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    timer = loop.call_at(until, wake)
    pending.add_done_callback(wake)
    try:
        yield from waiter
    except asyncio.CancelledError:
        pending.cancel()
        return "cancelled"
    finally:
        timer.cancel()
        pending.remove_done_callback(wake)
    return "done" if pending.done() else "deadline"


async def _carry_on(coro: Coroutine[Any, Any, Any], pending: Any) -> None:
    """The rest of a detached handler, in a task of its own."""
    await _Resume(coro, pending)


class _Resume:
    """Await a coroutine that is already under way, suspended on `pending` (what it yielded last:
    the task now waits on it, so a cancellation of the task reaches the handler as usual)."""

    __slots__ = ("_coro", "_pending")

    def __init__(self, coro: Coroutine[Any, Any, Any], pending: Any) -> None:
        self._coro = coro
        self._pending = pending

    def __await__(self) -> Generator[Any, Any, None]:
        yielded = self._pending
        while True:
            value: Any = None
            error: BaseException | None = None
            try:
                value = yield yielded
            except GeneratorExit:
                self._coro.close()
                raise
            except BaseException as exc:
                error = exc
            try:
                yielded = self._coro.send(value) if error is None else self._coro.throw(error)
            except StopIteration:
                return


def _forget(task: asyncio.Task[None]) -> None:
    _detached.discard(task)
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("a handler left running after its cancellation ended with %r", exc)


async def cancel_detached(wait_s: float) -> int:
    """Cancel the detached handlers once more and give them `wait_s`; returns how many are left."""
    await asyncio.sleep(0)  # one just detached starts first (else its cancellation would not reach it)
    tasks = detached()
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=wait_s)
    return len(detached())
