"""The journal's outbox contract: pages journaled before they are sent, and their claims.

Part of `watchdog.store.journal.Journal` (which extends it), apart so the contract of
claims, the one piece of the outbox two daemons share, reads in one place. Implemented
once, by `watchdog.store.sqlite_outbox.SqliteOutbox`, over SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from watchdog.store.records import DeliveryRecord, PageRows


class OutboxJournal(Protocol):
    """Outbox rows: written with the decision, claimed, sent, retried or given up."""

    def enqueue_page(self, incident_id: int, rows: PageRows, *, at: float) -> list[int]:
        """Write a page ahead of sending it, in one transaction: one row per channel (its
        body), due at `at`, with `rows.status` ('pending', or 'dry_run': never sent), and one
        timeline event with the reason ("would page ..." for a dry run).

        The bodies must hold no secret; they are stored as they are. The same write runs
        inside another transaction through `watchdog.store.sqlite.insert_page_rows`.
        """
        ...

    def due_deliveries(self, now: float, *, limit: int = 20) -> list[DeliveryRecord]:
        """Pending rows due by `now`, oldest first, each the oldest pending row of its
        incident and channel, so a resolve never overtakes its trigger. A plain read
        (views, tests): rows claimed by a sender are due here too; a sender claims."""
        ...

    def claim_deliveries(
        self, holder: str, now: float, *, lease: float, limit: int = 20
    ) -> list[DeliveryRecord]:
        """The due rows (as `due_deliveries`) that no live claim holds, claimed for `holder`
        until `now + lease`, in one write transaction: two claims, from two daemons on one
        journal, never return the same row. A claim not settled by then (its holder died
        or froze) is taken by the next claim at or after `now + lease`; the lease must
        outlast one send, and on several hosts their clocks' skew."""
        ...

    def release_claims(self, dead: Callable[[str], bool]) -> list[str]:
        """Release, in one write, the claims on pending rows of every holder `dead` says
        is dead (asked once per holder that has one); return those holders. For a sender
        starting, which knows some holders dead (its own host's exited processes) and
        need not wait out their leases."""
        ...

    def delivery_sent(
        self, delivery_id: int, *, at: float, summary: str, holder: str | None = None
    ) -> None:
        """Mark a row sent (only after the vendor accepted it) and put it on the timeline.

        This and the two below raise `ClaimLost` (a `ValueError` naming both) when
        another than `holder` holds a claim on the row still live at `at`.
        """
        ...

    def delivery_retry(
        self, delivery_id: int, *, at: float, next_at: float, error: str,
        holder: str | None = None,
    ) -> None:
        """Count a failed attempt, release the claim, make the row due again at `next_at`."""
        ...

    def delivery_rejected(
        self,
        delivery_id: int,
        *,
        at: float,
        error: str,
        fallback: PageRows | None = None,
        fallback_of: int | None = None,
        lost: str = "",
        holder: str | None = None,
    ) -> list[int]:
        """Give a row up (refused, or tried too often), release its claim, and put why on
        the incident's timeline.

        In the same transaction, either the `fallback` page is written for other channels
        (`fallback_of`: the page event it stands in for; its row ids are returned), or,
        when `lost` is set, a 'page_lost' event with that summary: a page is never given
        up without one of the two being journaled with it.
        """
        ...

    def deliveries(self, incident_id: int) -> list[DeliveryRecord]:
        """Every outbox row of the incident, in the order they were journaled."""
        ...

    def pending_deliveries(self) -> dict[str, int]:
        """How many rows wait to be sent, by channel (channels with none are left out)."""
        ...
