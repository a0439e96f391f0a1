"""The journal in PostgreSQL: the same jobs as `SqliteJournal`, over `PgBase`.

`PgJournal` joins the very jobs `SqliteJournal` joins (`JournalJobs`: one implementation
of the store contract, run by tests/integration/test_journal.py over both backends);
`PgBase` comes first in the MRO, so its connection, `_transaction()` (fenced on a
leader's handle) and `_read()` replace SQLite's under every job.
"""

from __future__ import annotations

from watchdog.store.pg_base import PgBase
from watchdog.store.sqlite import JournalJobs


class PgJournal(PgBase, JournalJobs):
    """The `Journal` in one PostgreSQL schema, created and migrated on open."""

    # An outbox claim locks the rows it picks and skips rows another claim has locked.
    _claim_lock = " FOR UPDATE OF o SKIP LOCKED"
