"""The event loop every `connector` process runs on: uvloop where it is installed (a C event loop
on libuv: less CPU per socket read, timer and task switch than the standard library's loop, which
is most of what a worker does between database and PSA round trips), the standard library's loop
elsewhere (Windows has no uvloop)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop constructor, or None (the standard library's loop) where it is not installed."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - installed on every platform but Windows
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on the process's event loop (`loop_factory`)."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)


def uvicorn_loop() -> Literal["uvloop", "asyncio"]:
    """The same choice, named the way uvicorn's `loop` setting takes it."""
    return "uvloop" if loop_factory() is not None else "asyncio"


def loop_name() -> str:
    """The running loop's implementation, for the start-up log line: `uvloop` or `asyncio`."""
    return type(asyncio.get_running_loop()).__module__.split(".")[0]
