"""The garbage collector, set for a long-running daemon once it is built.

Measured with `bench/alert_intake.py` (100 new alerts a body, 200 bodies a
second): with CPython's defaults the p99 latency of the webhook was 50-100 ms,
all of it in full collections that rescan every object the daemon has ever kept
(the policy, the app, each alert still firing); with the collector off it was
10 ms. Two changes keep the collector without those pauses:

- `gc.freeze()` after start-up moves what exists then (tens of thousands of
  objects that live as long as the process) out of every later collection;
- a young generation of 10,000 allocations instead of 700, and older
  generations collected less often, so objects that live a second (a webhook's
  parsed body) die young instead of being promoted and rescanned.

Objects are still freed by reference counting the moment they are unused; only
reference cycles wait longer, and the daemon makes few. What the daemon keeps in
bulk after start-up (the alert intake's firing view) is laid out so that no
collection walks it: see `watchdog.engine.firing`.
"""

from __future__ import annotations

import gc

YOUNG = 10_000  # allocations between collections of the youngest generation (default 700)
MIDDLE = 50  # young collections per middle one (default 10)
OLD = 100  # middle collections before a full one is considered (default 10)


def settle_heap() -> None:
    """Collect what start-up left behind, freeze the rest, and space collections out."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG, MIDDLE, OLD)
