"""The status strip: what the daemon recorded, judged at a given moment (issue 16, point 1).

At 3 a.m. the first question is not "which incident" but "is anything watching, will it
act, will anyone be paged". The daemon writes the facts to the journal (its status row
with a heartbeat, the pause flag, the outbox's deliveries); this function turns them,
with `now` and the stale limit, into the lines every view shows: the web page's strip,
`watchdog status` and the top of `watchdog incidents`. The words are said here once;
the views only arrange them. Pure: no clock (time is passed in), no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

Level = Literal["ok", "warn", "alert"]
LEVELS: tuple[Level, ...] = ("ok", "warn", "alert")

#: A heartbeat older than this many of the daemon's own intervals is stale.
STALE_INTERVALS = 3.0
#: Until high availability (issue 17) gives leaders and followers, one daemon per journal.
SINGLE_INSTANCE = "single instance"


@dataclass(frozen=True, slots=True)
class DaemonRow:
    """The row a running daemon writes at start and on every heartbeat."""

    stack: str
    pid: int
    host: str
    started_at: float
    heartbeat_at: float
    heartbeat_seconds: float
    dry_run: bool
    journal: str
    policy_name: str
    policy_version: str
    #: The channels whose credentials are set in the daemon's settings.
    channels: tuple[str, ...]
    #: The channels the policy routes P0 pages to (on or not).
    p0_routes: tuple[str, ...]
    #: "single instance" now; "leader" / "follower" once issue 17 lands.
    role: str = SINGLE_INSTANCE
    listen: str = ""
    #: Set by a clean stop: nothing watches from then on.
    stopped_at: float | None = None


@dataclass(frozen=True, slots=True)
class LastDelivery:
    """The outcome of the newest finished (or retried) delivery on one channel."""

    channel: str
    #: True sent, False refused or given up, None still retrying after a failure.
    ok: bool | None
    at: float
    error: str = ""


@dataclass(frozen=True, slots=True)
class StatusFacts:
    daemon: DaemonRow | None
    paused: bool = False
    paused_at: float | None = None
    paused_by: str = ""
    deliveries: tuple[LastDelivery, ...] = ()


@dataclass(frozen=True, slots=True)
class StatusLine:
    """One fact of the strip: `key` names it for the views (CSS class, JSON field)."""

    key: str
    level: Level
    text: str


@dataclass(frozen=True, slots=True)
class StatusVerdict:
    lines: tuple[StatusLine, ...]
    #: A daemon is running: its heartbeat is within the limit and it did not stop.
    running: bool
    nobody_paged: bool

    @property
    def level(self) -> Level:
        return max((line.level for line in self.lines), key=LEVELS.index, default="ok")

    def line(self, key: str) -> StatusLine | None:
        return next((line for line in self.lines if line.key == key), None)

    def text(self) -> str:
        """Every line, the worst marked, for a terminal."""
        return "\n".join(f"{MARKS[line.level]}{line.text}" for line in self.lines)

    def short(self) -> str:
        """The lines that matter before a list of incidents: mode, pause, pagers, daemon."""
        keys = ("daemon", "mode", "pause", "pagers")
        return "\n".join(f"{MARKS[line.level]}{line.text}" for line in self.lines
                         if line.key in keys)

    def as_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "running": self.running,
            "nobody_paged": self.nobody_paged,
            "lines": [{"key": x.key, "level": x.level, "text": x.text} for x in self.lines],
        }


MARKS: dict[Level, str] = {"ok": "   ", "warn": " ! ", "alert": "!! "}


def judge_status(
    facts: StatusFacts, now: float, *, stale_after: float | None = None, journal: str = ""
) -> StatusVerdict:
    """The strip's lines for `facts` at `now`.

    `stale_after` (seconds) overrides the default limit of STALE_INTERVALS times the
    daemon's own heartbeat interval; `journal` is where the reader looked (shown when
    no daemon ever wrote there).
    """
    row = facts.daemon
    running = False
    lines: list[StatusLine] = []
    if row is None:
        lines.append(StatusLine("daemon", "alert", "no daemon has written its status to this "
                                "journal: nothing is watching (start one with `watchdog run`)"))
    elif row.stopped_at is not None:
        lines.append(StatusLine("daemon", "alert", f"daemon stopped at {hhmm(row.stopped_at)} "
                                f"({ago(now - row.stopped_at)} ago): nothing is watching"))
    else:
        limit = stale_after if stale_after is not None else STALE_INTERVALS * row.heartbeat_seconds
        old = now - row.heartbeat_at
        where = f"pid {row.pid} on {row.host}" if row.host else f"pid {row.pid}"
        if old > limit:
            lines.append(StatusLine("daemon", "alert", f"daemon heartbeat {ago(old)} old "
                                    f"(limit {ago(limit)}): is it running? ({where})"))
        else:
            running = True
            lines.append(StatusLine("daemon", "ok", f"daemon running since "
                                    f"{hhmm(row.started_at)} ({where}), heartbeat {ago(old)} ago"))
    if row is not None:
        lines.append(
            StatusLine("mode", "warn", "DRY-RUN: steps and pages are journaled, nothing is "
                       "touched or sent")
            if row.dry_run
            else StatusLine("mode", "ok", "LIVE: safe steps act on the stack")
        )
    lines.append(_pause_line(facts, now))
    nobody = row is not None and not set(row.channels) & set(row.p0_routes)
    if row is not None:
        lines.append(_pagers_line(row, facts.deliveries, nobody))
        lines.append(StatusLine("role", "ok", row.role))
        lines.append(StatusLine("policy", "ok", f"policy {row.policy_name} ({row.policy_version})"))
    lines.append(StatusLine("journal", "ok", f"journal {row.journal if row else journal}"))
    return StatusVerdict(tuple(lines), running=running, nobody_paged=nobody)


def _pause_line(facts: StatusFacts, now: float) -> StatusLine:
    if not facts.paused:
        return StatusLine("pause", "ok", "not paused: automatic actions allowed")
    since = (
        f" since {hhmm(facts.paused_at)} ({ago(now - facts.paused_at)} ago)"
        if facts.paused_at is not None
        else ""
    )
    by = f" by {facts.paused_by}" if facts.paused_by else ""
    return StatusLine("pause", "warn", f"PAUSED{since}{by}: no automatic action "
                      "(`watchdog resume` to lift)")


def _pagers_line(row: DaemonRow, deliveries: Sequence[LastDelivery], nobody: bool) -> StatusLine:
    if nobody:
        routes = ", ".join(row.p0_routes) or "none"
        on = ", ".join(row.channels) or "none"
        return StatusLine("pagers", "alert", f"NOBODY CAN BE PAGED: no pager on for P0 "
                          f"(pagers on: {on}; P0 routes to: {routes})")
    last = {d.channel: d for d in deliveries}
    parts = [_delivery_text(channel, last.get(channel)) for channel in row.channels]
    failed = any(last[c].ok is not True for c in row.channels if c in last)
    return StatusLine("pagers", "warn" if failed else "ok", "pagers: " + ", ".join(parts))


def _delivery_text(channel: str, last: LastDelivery | None) -> str:
    if last is None:
        return f"{channel} (nothing sent yet)"
    error = f" ({last.error})" if last.error else ""
    if last.ok is None:
        return f"{channel} RETRYING since {hhmm(last.at)}{error}"
    if last.ok:
        return f"{channel} ok {hhmm(last.at)}"
    return f"{channel} FAILED {hhmm(last.at)}{error}"


def hhmm(at: float) -> str:
    """The UTC time of day, HH:MM (arithmetic on the epoch: the core imports no clock)."""
    minutes = int(at) // 60
    return f"{minutes // 60 % 24:02d}:{minutes % 60:02d} UTC"


def ago(seconds: float) -> str:
    """A short duration for people: 4 s, 2 min 5 s, 3 h 12 min, 2 d 4 h."""
    whole = max(0, int(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"
