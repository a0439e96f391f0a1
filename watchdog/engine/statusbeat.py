"""The daemon's heartbeat: its status row, written at start, every few seconds, and at stop.

So `watchdog status --state …` and the web page's strip can say what this daemon is
(live or dry-run, which pagers it has, which policy, which journal) and that it is
alive without reaching it: a heartbeat older than a few intervals reads as "is it
running?". Each write is its own short transaction; a failed write is logged and
tried again at the next beat, never stopping the loop.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Callable, Collection
from dataclasses import replace

import structlog

from watchdog.model import Severity
from watchdog.policy.schema import Policy
from watchdog.policy.statusview import SINGLE_INSTANCE, DaemonRow
from watchdog.store.journal import Journal

log = structlog.get_logger("watchdog.status")

#: Seconds between heartbeats unless the settings say otherwise (WATCHDOG_STATUS_HEARTBEAT).
DEFAULT_HEARTBEAT_SECONDS = 5.0


def policy_version(policy: Policy) -> str:
    """The schema version and a short digest of the policy as the daemon runs it: two
    daemons showing the same digest run the same rules."""
    digest = hashlib.sha256(policy.model_dump_json().encode()).hexdigest()[:12]
    return f"version {policy.version}, digest {digest}"


class StatusBeat:
    """Writes this daemon's `DaemonRow`; `beat(now)` writes when one is due."""

    def __init__(
        self,
        policy: Policy,
        journal: Journal,
        clock: Callable[[], float],
        *,
        dry_run: bool,
        channels: Collection[str] = (),
        heartbeat_seconds: float = DEFAULT_HEARTBEAT_SECONDS,
    ) -> None:
        self.journal = journal
        self.clock = clock
        self.heartbeat_seconds = heartbeat_seconds
        self._next_at = 0.0
        now = clock()
        self.row = DaemonRow(
            stack=policy.stack.name,
            pid=os.getpid(),
            host=socket.gethostname(),
            started_at=now,
            heartbeat_at=now,
            heartbeat_seconds=heartbeat_seconds,
            dry_run=dry_run,
            journal="",
            policy_name=policy.stack.name,
            policy_version=policy_version(policy),
            channels=tuple(sorted(channels)),
            p0_routes=tuple(policy.notify.routes.get(Severity.P0, ())),
            role=SINGLE_INSTANCE,
        )

    def located(self, journal: str, listen: str) -> None:
        """Where the journal file and the API are, as `watchdog run` resolved them."""
        self.row = replace(self.row, journal=journal, listen=listen)

    def leads(self, instance: str, token: int, lease_seconds: float) -> None:
        """This engine is a leader's on a shared journal: the status row says which."""
        role = (f"leader: {instance} at token {token}, on a shared journal (a follower takes "
                f"over within {lease_seconds:g} s)")
        self.row = replace(self.row, role=role)

    def beat(self, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        if now < self._next_at:
            return
        self._write(replace(self.row, heartbeat_at=now, stopped_at=None))
        self._next_at = now + self.heartbeat_seconds

    def stopped(self) -> None:
        now = self.clock()
        self._write(replace(self.row, heartbeat_at=now, stopped_at=now))

    def _write(self, row: DaemonRow) -> None:
        try:
            self.journal.write_status(row)
        except Exception:  # a busy or broken journal: the next beat tries again
            log.exception("status_not_written")
