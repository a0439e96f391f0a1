"""The pages a move or a rise in severity calls for, composed for the move's transaction.

The outbox composes; this keeps a bug in composing from stalling an incident: it is
logged (and reported), and the move stands without its page.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from watchdog.model import Plan, Severity
from watchdog.notify.outbox import Outbox
from watchdog.store.records import PageRows

log = structlog.get_logger("watchdog.daemon")


class Pages:
    """What `Incidents.compose_page` and `compose_escalation` call, over one outbox."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    def for_escalation(
        self, incident_id: int, was: Severity, now: Severity
    ) -> PageRows | None:
        """The page a rise in severity calls for, written with the rise."""
        return self._composed(
            incident_id, lambda o: o.pages_for_escalation(incident_id, was, to_severity=now)
        )

    def for_move(
        self, incident_id: int, from_state: str, to_state: str, reason: str, plan: Plan | None
    ) -> PageRows | None:
        """The page a move calls for (with the plan it commits), written in its transaction."""
        return self._composed(
            incident_id,
            lambda o: o.pages_for_move(incident_id, from_state, to_state, reason, plan),
        )

    def _composed(
        self, incident_id: int, compose: Callable[[Outbox], PageRows | None]
    ) -> PageRows | None:
        """A bug in composing must not stall the incident: it is logged (and reported),
        and the move stands without its page."""
        try:
            return compose(self.outbox)
        except Exception:
            log.exception("page_not_composed", incident=incident_id)
            return None

