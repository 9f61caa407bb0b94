"""Work a handler leaves running: tasks it started (`asyncio.create_task`) that outlive its return.

Motia's tutorial schedules a step's follow-up this way (an emit 1.5 s after the handler returned).
A task factory notes, for each task created while a step runs, the span it was created in; when
the handler returns, the runtime asks which of them are still running. They are not cancelled when
the job ends: they keep the trace open, land their logs and emits in the same span (marked as after
its end), and are cancelled only once the step's timeout has passed since the run started.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from .tracing.recorder import SpanScope, current_scope

log = logging.getLogger("workbench.late_work")

_started: dict[int, set[asyncio.Task[Any]]] = {}  # id(scope) -> tasks created in it, still running
_late: set[asyncio.Task[Any]] = set()  # tasks that outlived their handler (kept referenced here)


def _factory(
    loop: asyncio.AbstractEventLoop,
    coro: Coroutine[Any, Any, Any],
    context: contextvars.Context | None = None,
) -> asyncio.Task[Any]:
    task: asyncio.Task[Any] = asyncio.Task(coro, loop=loop, context=context)
    scope = context.run(current_scope.get) if context is not None else current_scope.get()
    if scope is not None:
        tasks = _started.get(id(scope))
        if tasks is not None:
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    return task


def install(loop: asyncio.AbstractEventLoop) -> None:
    """Note the tasks steps start on `loop` (once per loop; a factory someone else set is kept)."""
    if loop.get_task_factory() is None:
        loop.set_task_factory(_factory)  # type: ignore[arg-type]  # typeshed's factory type has no context


def watch(scope: SpanScope) -> None:
    """Start noting the tasks created while `scope` is the current span (call before the handler)."""
    _started[id(scope)] = set()


def left_running(scope: SpanScope) -> set[asyncio.Task[Any]]:
    """The tasks created in `scope` that are still running; stops noting new ones."""
    tasks = _started.pop(id(scope), set())
    return {t for t in tasks if not t.done()}


def keep(
    tasks: set[asyncio.Task[Any]], *, scope: SpanScope, deadline_s: float, on_done: Callable[[], None]
) -> None:
    """Let `tasks` finish (cancelled after `deadline_s`), then call `on_done` once. What happens to
    them is said in the span they were started in, and in the terminal."""
    step = scope.span.step

    def say(level: int, message: str) -> None:
        scope.log(level, message, {})
        log.log(level, "%s: %s", step, message)

    loop = asyncio.get_running_loop()
    remaining = set(tasks)
    _late.update(tasks)

    def cancel_late() -> None:
        for task in list(remaining):
            if not task.done():
                say(logging.WARNING, "a task the handler started was still running at its timeout; cancelled")
                task.cancel()

    timer = loop.call_later(max(0.0, deadline_s), cancel_late)

    def finished(task: asyncio.Task[Any]) -> None:
        _late.discard(task)
        remaining.discard(task)
        exc = None if task.cancelled() else task.exception()
        if exc is not None:
            say(
                logging.ERROR,
                f"a task the handler started failed after it returned: {type(exc).__name__}: {exc}",
            )
        if not remaining:
            timer.cancel()
            on_done()

    for task in tasks:
        task.add_done_callback(finished)


async def wait_all() -> None:
    """Until every task that outlived its handler has finished (the test harness's drain)."""
    while _late:
        await asyncio.gather(*list(_late), return_exceptions=True)
        await asyncio.sleep(0)  # let their done callbacks (trace bookkeeping) run
