"""A journal call that the database never answers is cut, so a leader cannot freeze on it.

psycopg's sync calls wait on the socket without a deadline of their own, and libpq's
TCP settings (keepalives, `tcp_user_timeout`) only catch a peer that stops
acknowledging. A database that accepts the bytes and never answers (a frozen server
process, a stuck pooler, a proxy that forwards nothing) would hold the daemon's event
loop, and with it the leader's own step-down and /healthz, for as long as it stalls.
One thread watches every call in flight on a journal connection; one with no answer
for `STALL_SECONDS` has its socket shut down, the call fails like a lost connection,
and the handle connects again at its next use.

Journal calls take milliseconds; the limit is far above any of them, and a call cut
by mistake is a failed tick, retried at the next one.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator

import structlog

log = structlog.get_logger("watchdog.journal")

STALL_SECONDS = 5.0
_CHECK_EVERY_S = 0.5


class StallWatch:
    """The process's one watcher of journal calls in flight.

    Connections join by database (`group`: its conninfo); a call cut for a stall cuts
    every connection of its group with it, idle ones too: a database that left one call
    unanswered is presumed gone, and each handle's next call then fails at once (and
    connects again in the background) instead of waiting out a stall of its own.
    """

    def __init__(self, limit: float = STALL_SECONDS) -> None:
        self.limit = limit
        self._calls: dict[int, tuple[float, str, str]] = {}
        self._members: dict[int, tuple[str, Callable[[], int]]] = {}
        self._numbers = itertools.count()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def join(self, group: str, fileno: Callable[[], int]) -> int:
        """A connection holder (a journal handle, a lease) of the database `group`."""
        number = next(self._numbers)
        with self._lock:
            self._members[number] = (group, fileno)
        return number

    def leave(self, member: int) -> None:
        with self._lock:
            self._members.pop(member, None)

    @contextlib.contextmanager
    def call(self, member: int, where: str) -> Iterator[None]:
        """Watch one call of `member` (what `join` returned)."""
        number = next(self._numbers)
        with self._lock:
            group = self._members[member][0] if member in self._members else ""
            self._calls[number] = (time.monotonic(), group, where)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="journal-stall-watch", daemon=True
                )
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._calls.pop(number, None)

    def _watch(self) -> None:
        while True:
            time.sleep(_CHECK_EVERY_S)
            now = time.monotonic()
            with self._lock:
                stalled = {
                    number: (group, where)
                    for number, (since, group, where) in self._calls.items()
                    if now - since > self.limit
                }
                for number in stalled:
                    self._calls.pop(number)  # cut once
                groups = {group for group, _ in stalled.values()}
                doomed = [fileno for group, fileno in self._members.values() if group in groups]
            for _, where in stalled.values():
                log.warning("journal_call_cut", journal=where, seconds=self.limit,
                            reason="no answer from the database")
            for fileno in doomed:
                cut(fileno)


def cut(fileno: Callable[[], int]) -> None:
    """Shut the connection's socket: a call blocked on it fails at once, and the next one
    finds it broken."""
    try:
        duplicate = os.dup(fileno())
    except Exception:  # closed meanwhile, or never connected
        return
    with socket.socket(fileno=duplicate) as sock, contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


WATCH = StallWatch()
