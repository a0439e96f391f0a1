"""Blocking calls in worker threads, tracked so a timed-out step is not forgotten.

`asyncio.wait_for` cancels an await, never a thread: a Docker `stop` whose step
timed out goes on in its thread while the executor moves on. Every blocking
call an action makes goes through `run_blocking`, which records, for whoever
asked (`track_blocking_calls`, set by the executor around one step), an event
that is set when the thread really ends. The executor can then wait for it
before anything else touches the same service, and say so in the journal.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BlockingCall:
    """One call running (or run) in a worker thread: what it is, and whether it ended."""

    what: str
    ended: threading.Event = field(default_factory=threading.Event)

    @property
    def running(self) -> bool:
        return not self.ended.is_set()


_tracked: ContextVar[list[BlockingCall] | None] = ContextVar(
    "watchdog_blocking_calls", default=None
)


def track_blocking_calls(into: list[BlockingCall]) -> None:
    """From now on in this task (and tasks it starts), record every blocking call in `into`."""
    _tracked.set(into)


async def run_blocking(what: str, fn: Callable[[], T]) -> T:
    """`asyncio.to_thread(fn)`, recording the call where the current task tracks them."""
    call = BlockingCall(what)
    tracked = _tracked.get()
    if tracked is not None:
        tracked.append(call)

    def body() -> T:
        try:
            return fn()
        finally:
            call.ended.set()

    return await asyncio.to_thread(body)
