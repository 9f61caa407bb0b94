"""`handler_watch.Watched`: a handler that blocks the event loop is reported; one that ignores the
cancellation of its run (timeout, worker stopping) is left behind and the run ends all the same;
cancellations made and taken back inside the handler (asyncio.timeout, redis-py) are its own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from workbench import handler_watch
from workbench.handler_watch import Watched


@pytest.fixture(autouse=True)
def short_cleanup(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(handler_watch, "CLEANUP_S", 0.2)
    yield
    assert handler_watch.detached() == set()  # each test ends the handlers it left behind


class Seen:
    def __init__(self) -> None:
        self.blocks: list[float] = []
        self.detached = 0

    def watch(self, coro: Any, block_warn_s: float = 10.0) -> Watched:
        return Watched(coro, block_warn_s=block_warn_s, on_block=self.blocks.append, on_detach=self._detach)

    def _detach(self) -> None:
        self.detached += 1


async def test_the_handlers_result_and_errors_pass_through() -> None:
    seen = Seen()

    async def ok() -> int:
        await asyncio.sleep(0)
        return 7

    async def boom() -> None:
        await asyncio.sleep(0)
        raise ValueError("boom")

    assert await seen.watch(ok()) == 7
    with pytest.raises(ValueError, match="boom"):
        await seen.watch(boom())
    assert seen.blocks == [] and seen.detached == 0


async def test_a_stretch_of_code_that_blocks_the_loop_is_reported_and_an_await_is_not() -> None:
    seen = Seen()

    async def handler() -> None:
        await asyncio.sleep(0.1)  # waiting: the loop runs meanwhile
        time.sleep(0.1)  # noqa: ASYNC251  (blocking the loop is what this test is about)

    await seen.watch(handler(), block_warn_s=0.05)
    assert len(seen.blocks) == 1 and seen.blocks[0] >= 0.1


async def test_a_timeout_inside_the_handler_is_its_own_business() -> None:
    seen = Seen()

    async def handler() -> str:
        try:
            async with asyncio.timeout(0.01):
                await asyncio.sleep(5)
        except TimeoutError:
            pass
        await asyncio.sleep(0.3)  # longer than the cleanup time: it is not cleaning up
        return "carried on"

    assert await seen.watch(handler()) == "carried on"
    assert seen.detached == 0


async def test_a_handler_that_cooperates_ends_at_its_timeout() -> None:
    seen = Seen()
    cleaned = asyncio.Event()

    async def handler() -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            await asyncio.sleep(0.05)  # async cleanup, within the time it is given
            cleaned.set()
            raise

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await seen.watch(handler())
    assert cleaned.is_set() and seen.detached == 0


async def test_a_handler_that_ignores_its_timeout_is_left_behind_and_the_run_times_out() -> None:
    seen = Seen()
    release = asyncio.Event()
    ignored = 0

    async def handler() -> None:
        nonlocal ignored
        while not release.is_set():
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                ignored += 1

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await seen.watch(handler())
    assert seen.detached == 1 and ignored == 1
    [left] = handler_watch.detached()
    assert await handler_watch.cancel_detached(0.2) == 1  # it ignores that cancellation too
    assert ignored == 2
    release.set()
    await asyncio.wait_for(left, 5)  # left to itself, it can still end


async def test_a_handler_that_swallows_its_cancellation_and_returns_still_ends_cancelled() -> None:
    seen = Seen()

    async def handler() -> str:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            return "pretend nothing happened"
        return "not reached"

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await seen.watch(handler())
    assert seen.detached == 0


async def test_a_stopping_worker_leaves_a_handler_spinning_on_sleep_0_without_the_loop_stalling() -> None:
    seen = Seen()
    release = asyncio.Event()
    ticks = 0

    async def handler() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(0)
            except asyncio.CancelledError:
                pass

    async def other() -> None:
        nonlocal ticks
        while not release.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    other_task = asyncio.create_task(other())

    async def run_it() -> None:
        await seen.watch(handler())

    run = asyncio.create_task(run_it())
    await asyncio.sleep(0.05)
    run.cancel()  # the worker stopping, past its grace period
    ticks_at_cancel = ticks
    with pytest.raises(asyncio.CancelledError):
        await run
    assert seen.detached == 1
    # while the handler was given its cleanup time the loop kept running other tasks (a driver
    # that resumed it without yielding would have spun, and `other` would not have moved)
    assert ticks - ticks_at_cancel >= 2
    release.set()
    await asyncio.wait_for(asyncio.gather(other_task, *handler_watch.detached()), 5)
