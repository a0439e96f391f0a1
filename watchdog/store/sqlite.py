"""The journal in one SQLite file: the embedded default backend.

`SqliteJournal` is the `Journal` protocol joined from one class per job, each in
its own module over the shared connection of `watchdog.store.sqlite_base`
(durability, transactions, schema): incidents and their moves
(`sqlite_incidents`), plans and steps (`sqlite_steps`), approvals, actions and
flags (`sqlite_guards`), snapshots and undo records (`sqlite_snapshots`),
Alertmanager's alerts (`sqlite_alerts`), the outbox (`sqlite_outbox`) and the
follow-ups owed after an incident (`sqlite_followups`), the daemon's status row
(`sqlite_status`), the observations kept for replay (`sqlite_observations`) and a
shadow policy's decisions (`sqlite_shadow`).

Rows hold primitives and JSON (`json.dumps(..., sort_keys=True, default=str)`:
anything not JSON-able is stored as its string); they are converted to records
and model values at the store's edge, in those modules.

The names other code imports from here stay here: `SqliteJournal`, and
`insert_page_rows` (a page's rows written inside a caller's transaction).
"""

from __future__ import annotations

from watchdog.store.sqlite_alerts import SqliteAlerts
from watchdog.store.sqlite_base import BUSY_TIMEOUT_MS, JOURNAL_MODE, dumps
from watchdog.store.sqlite_followups import SqliteFollowups
from watchdog.store.sqlite_guards import SqliteGuards
from watchdog.store.sqlite_incidents import SqliteIncidents
from watchdog.store.sqlite_observations import SqliteObservations
from watchdog.store.sqlite_outbox import SqliteOutbox, insert_page_rows
from watchdog.store.sqlite_shadow import SqliteShadow
from watchdog.store.sqlite_snapshots import SqliteSnapshots, rows_checksum
from watchdog.store.sqlite_status import SqliteStatus
from watchdog.store.sqlite_steps import SqliteSteps

__all__ = [
    "BUSY_TIMEOUT_MS",
    "JOURNAL_MODE",
    "JournalJobs",
    "SqliteJournal",
    "dumps",
    "insert_page_rows",
    "rows_checksum",
]


class JournalJobs(
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
    """Every job of the journal, over whichever base comes before it in the MRO: SQLite's
    own here, PostgreSQL's in `watchdog.store.pg.PgJournal`. One list, so a new job
    joins both backends at once."""


class SqliteJournal(JournalJobs):
    """The `Journal` over one SQLite file, created with its schema on first open."""
