"""The journal in PostgreSQL: the same jobs as `SqliteJournal`, over `PgBase`.

`PgJournal` joins the very mixins `SqliteJournal` joins (one implementation of the
store contract, run by tests/integration/test_journal.py over both backends); `PgBase`
comes first in the MRO, so its connection, `_transaction()` and `_read()` replace
SQLite's under every job. What is not yet safe with two daemons on one PostgreSQL
journal (leadership, fencing: issue 17 points 2 and 4) is in the README.
"""

from __future__ import annotations

from watchdog.store.pg_base import PgBase
from watchdog.store.sqlite_alerts import SqliteAlerts
from watchdog.store.sqlite_followups import SqliteFollowups
from watchdog.store.sqlite_guards import SqliteGuards
from watchdog.store.sqlite_incidents import SqliteIncidents
from watchdog.store.sqlite_observations import SqliteObservations
from watchdog.store.sqlite_outbox import SqliteOutbox
from watchdog.store.sqlite_shadow import SqliteShadow
from watchdog.store.sqlite_snapshots import SqliteSnapshots
from watchdog.store.sqlite_status import SqliteStatus
from watchdog.store.sqlite_steps import SqliteSteps


class PgJournal(
    PgBase,
    SqliteIncidents,
    SqliteSteps,
    SqliteGuards,
    SqliteSnapshots,
    SqliteAlerts,
    SqliteOutbox,
    SqliteFollowups,
    SqliteStatus,
    SqliteObservations,
    SqliteShadow,
):
    """The `Journal` in one PostgreSQL schema, created and migrated on open."""

    # An outbox claim locks the rows it picks and skips rows another claim has locked.
    _claim_lock = " FOR UPDATE OF o SKIP LOCKED"
