"""The event loop every `connector` process runs on: uvloop where it is installed (a C event loop
on libuv: less CPU per socket read, timer and task switch than the standard library's loop, which
is most of what a worker does between database and PSA round trips), the standard library's loop
elsewhere (Windows has no uvloop)."""

from __future__ import annotations

import asyncio
import gc
import sys
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


SWITCH_INTERVAL_SECONDS = 0.0005
"""How long a thread may hold the interpreter while another waits for it (Python's default is
5 ms). The SQLite writer thread takes it back after every statement; at 5 ms a group commit of
four statements could wait 20 ms for the event loop to let go, and the loop for it."""


def settle_after_startup() -> None:
    """Called once a long-running process (`serve`, `worker`) has started. Everything built so
    far (modules, the app, its services) lives as long as the process: `gc.freeze()` moves it out
    of the cycle collector's reach, so a full collection walks only what requests and jobs
    allocate rather than every object of the service — such a collection had been tens of
    milliseconds with requests waiting (the ingest p99). And threads hand the interpreter over
    sooner (`SWITCH_INTERVAL_SECONDS`)."""
    gc.collect()
    gc.freeze()
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
