"""Kill points for the crash matrix: the store SIGKILLs its own process at its N-th write.

The crash matrix (tests/integration/crash_matrix.py, bench/crash_matrix.py) proves
that a daemon killed at any journal write in turn loses nothing and repeats no
unsafe step. It needs to die at an exact write, from inside, with no chance to
clean up: so the store counts its committed writes and, at the N-th, sends itself
SIGKILL just before or just after the COMMIT. Settings, read once when a journal
opens (never in production unless someone sets them):

- `WATCHDOG_CRASH_AT=N`: die at the N-th write of this process (1-based);
- `WATCHDOG_CRASH_SITE=NAME`: count only the writes of that journal method, so
  `WATCHDOG_CRASH_AT=N` is its N-th write, whatever other threads wrote between
  (threads reorder writes from run to run; a site's own order holds);
- `WATCHDOG_CRASH_WHEN=before|after`: before the COMMIT (the write is lost) or
  after it (the write is on disk, nothing after it ran); default after;
- `WATCHDOG_COMMIT_LOG=PATH`: append each write's site (the public journal method
  that opened the transaction) to PATH, one a line; the kill adds
  "<site>\\tkilled <when>".

A write is a transaction that changed at least one row: a transaction that found
nothing to do (a snapshot identical to the last one) is not a kill point, so the
count does not drift with how many idle ticks the daemon happened to run.

The count is per process, shared by every journal the process opens.
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
import threading
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

WHENS = ("before", "after")

_count_lock = threading.Lock()
_writes = itertools.count(1)
_site_writes: defaultdict[str, Iterator[int]] = defaultdict(lambda: itertools.count(1))
#: The number of the write to die after it commits, once it has been chosen.
_doomed: list[int] = []


@dataclass(frozen=True, slots=True)
class CrashPoints:
    """The crash settings of this process, read once."""

    at: int | None
    when: str
    log: str | None
    site: str | None = None

    @staticmethod
    def from_environment(env: Mapping[str, str] = os.environ) -> CrashPoints | None:
        """The settings, or None when neither a kill point nor a log is asked for."""
        at_text = env.get("WATCHDOG_CRASH_AT", "").strip()
        when = env.get("WATCHDOG_CRASH_WHEN", "after").strip() or "after"
        log = env.get("WATCHDOG_COMMIT_LOG", "").strip() or None
        if not at_text and log is None:
            return None
        at: int | None = None
        if at_text:
            if not at_text.isdigit() or int(at_text) < 1:
                raise ValueError(
                    f"WATCHDOG_CRASH_AT={at_text!r}: expected a write number, 1 or more"
                )
            at = int(at_text)
        if when not in WHENS:
            raise ValueError(f"WATCHDOG_CRASH_WHEN={when!r}: expected one of {', '.join(WHENS)}")
        site = env.get("WATCHDOG_CRASH_SITE", "").strip() or None
        return CrashPoints(at=at, when=when, log=log, site=site)


def write_site(depth: int = 3) -> str:
    """The name of the function `depth` frames up: from inside `_transaction`'s
    generator, past contextlib's `__enter__`, the journal method that is writing."""
    return sys._getframe(depth).f_code.co_name


def before_commit(points: CrashPoints, site: str) -> int:
    """Number this write (per process) and die here if it is the kill point 'before'."""
    with _count_lock:
        number = next(_writes)
        if points.site is None:
            hit = number == points.at
        else:
            hit = site == points.site and next(_site_writes[site]) == points.at
    if hit:
        if points.when == "before":
            _die(points, site)
        _doomed.append(number)
    return number


def after_commit(points: CrashPoints, site: str, number: int) -> None:
    """Log the write's site and die here if it is the kill point 'after'."""
    if points.log is not None:
        _append(points.log, site)
    if number in _doomed:
        _die(points, site)


def _append(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")


def _die(points: CrashPoints, site: str) -> None:
    if points.log is not None:
        _append(points.log, f"{site}\tkilled {points.when}")
    os.kill(os.getpid(), signal.SIGKILL)
