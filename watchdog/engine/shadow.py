"""The shadow policy's engine side: fed each tick beside the live engine, acting on nothing.

`watchdog run --shadow-policy NEW.yaml` attaches one `Shadow` to the engine that acts
(the only one on a SQLite file; the leader's on a shared PostgreSQL journal, written
through its fenced handle). Each tick the daemon hands it the raw observations it
recorded and the live triage's decisions; the pure core (`watchdog.policy.shadow`)
judges them, and this module only writes the judgements to the journal's
`shadow_decisions` table, counts them (`watchdog_shadow_decisions_total{agreement}`) and
logs them. It holds no handler, no outbox and no incident: it cannot act or page.
A failure in the shadow is logged and never reaches the live tick.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import structlog

from watchdog.metrics import Metrics
from watchdog.model import Observation
from watchdog.policy.schema import Policy
from watchdog.policy.shadow import ShadowBeside, said, unseen_signals
from watchdog.policy.triage import TriageDecision
from watchdog.store.journal import Journal
from watchdog.store.render import clock_utc
from watchdog.store.shadow import ShadowDecision

log = structlog.get_logger("watchdog.shadow")


def announce(live: Policy, shadow: Policy, source: str) -> None:
    """Said once at `watchdog run`'s start (not at each term): what the shadow cannot see."""
    unseen = unseen_signals(live, shadow)
    if unseen:  # nothing probes them beside the live policy
        log.warning(
            "shadow_signals_unseen", policy=source, signals=unseen,
            hint="the shadow sees only the live policy's signals; its rules on these never fire",
        )
    log.info("shadow_policy", policy=source, live=live.stack.name, signals=len(shadow.signals),
             rules=len(shadow.rules), acts="never: its decisions are journaled as shadow only")


class Shadow:
    """A second policy evaluated on the live engine's observations; its decisions journaled."""

    def __init__(
        self, live: Policy, shadow: Policy, source: str, journal: Journal, metrics: Metrics
    ) -> None:
        self.source = source
        self.journal = journal
        self.metrics = metrics
        self.beside = ShadowBeside(live, shadow)
        metrics.shadowing()

    def feed(self, observations: Sequence[Observation]) -> None:
        self.beside.feed(observations)

    def tick(
        self, now: float, live_decisions: Iterable[TriageDecision], live_open_keys: Iterable[str]
    ) -> None:
        try:
            judged = self.beside.tick(now, live_decisions, live_open_keys, clock_utc)
            rows = [
                ShadowDecision(now, self.source, j.key, j.decision, said(j.shadow), said(j.live),
                               j.agreement, "; ".join(j.how))
                for j in judged
            ]
            self.journal.record_shadow_decisions(rows)
        except Exception:  # the shadow never costs the live engine a tick
            log.exception("shadow_tick_failed", policy=self.source)
            return
        for row in rows:
            self.metrics.shadow_decisions.labels(row.agreement).inc()
            log.info("shadow_decision", key=row.key, decision=row.decision,
                     agreement=row.agreement, how=row.how)
