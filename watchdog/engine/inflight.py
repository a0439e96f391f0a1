"""Work that outlived its step's timeout, by the services it touches.

A step that times out is failed in the journal at once, but its work is not
over: a coroutine may still be awaiting, and a Docker SDK call goes on in its
worker thread whatever the await does. Starting the next rung (or a
compensation) on the same service while that runs is two hands on one
container. So a timed-out step's work is registered here with a grace period
(the step's own timeout); a later step on the same service first settles it:
waits for it to end, or, once the grace has passed, cancels it. The words
returned say which, for the journal. Work that cannot be cancelled (a thread
is never interrupted) and is still running after the grace refuses the later
step instead of racing it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from watchdog.actions.base import ActionOutcome
from watchdog.actions.threads import BlockingCall

#: How often a settle looks again at threads it cannot await.
POLL_SECONDS = 0.05


class StillRunning(Exception):
    """Timed-out work on a service is still running after its grace; the message says which."""


@dataclass(slots=True)
class Work:
    """One timed-out step's work: its task, the threads it started, and its deadline."""

    step: str
    action: str
    targets: tuple[str, ...]
    task: asyncio.Task[ActionOutcome]
    calls: list[BlockingCall]
    timed_out_at: float
    deadline: float
    cancelled: bool = False

    @property
    def running(self) -> bool:
        return not self.task.done() or any(call.running for call in self.calls)

    def what(self) -> str:
        return f"the timed-out '{self.step}' of {', '.join(self.targets)}"


class InFlight:
    """The registry of timed-out work still going on, shared by every plan of one executor."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._work: list[Work] = []

    def add(
        self,
        *,
        step: str,
        action: str,
        targets: Collection[str],
        task: asyncio.Task[ActionOutcome],
        calls: list[BlockingCall],
        grace: float,
    ) -> Work:
        now = self._clock()
        work = Work(step, action, tuple(targets), task, calls, now, now + grace)
        self._work.append(work)
        # Past its grace the work is cancelled even if nothing else asks for the service.
        asyncio.get_running_loop().call_later(grace, self._expire, work)
        return work

    @staticmethod
    def _expire(work: Work) -> None:
        if not work.task.done():
            work.task.cancel()
            work.cancelled = True

    def running_on(self, targets: Collection[str]) -> list[Work]:
        """Timed-out work still going on that touches any of `targets`."""
        self._work = [w for w in self._work if w.running]
        wanted = set(targets)
        return [w for w in self._work if wanted & set(w.targets)]

    async def settle(self, targets: Collection[str]) -> list[str]:
        """Wait for (or, past its grace, cancel) timed-out work on `targets`; say what happened.

        Raises `StillRunning` when work is still going on after its grace and
        could not be cancelled (a blocking call in a thread): the caller must not
        touch those services.
        """
        said: list[str] = []
        for work in self.running_on(targets):
            began = self._clock()
            await self._wait(work, until=work.deadline)
            waited = self._clock() - began
            if not work.task.done():
                self._expire(work)
                await self._wait(work, until=self._clock() + POLL_SECONDS * 4)
            if work.running:
                threads = [c.what for c in work.calls if c.running]
                raise StillRunning(
                    f"{work.what()} is still running after its grace "
                    f"({work.deadline - work.timed_out_at:g} s)"
                    + (f": {'; '.join(threads)} in a worker thread" if threads else "")
                    + f"; not touching {', '.join(sorted(set(targets) & set(work.targets)))}"
                )
            said.append(
                f"cancelled {work.what()} after waiting {waited:.1f} s (its grace had passed)"
                if work.cancelled
                else f"waited {waited:.1f} s for {work.what()} to end"
            )
        return said

    async def _wait(self, work: Work, *, until: float) -> None:
        while work.running:
            left = until - self._clock()
            if left <= 0:
                return
            if not work.task.done():
                await asyncio.wait({work.task}, timeout=min(left, POLL_SECONDS))
            else:
                await asyncio.sleep(min(left, POLL_SECONDS))
