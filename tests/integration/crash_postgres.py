"""Crash-matrix scenario on a real PostgreSQL: the configuration restore (runbook scenario 4).

tests/integration/crash_matrix.py drives the sandbox; this drives `watchdog run`
against a throwaway PostgreSQL server (tests/pgserver.py, its tables as
TARGET-STACK.md describes them) and the enrichment stub that loads its
configuration from it, with songnodes.yaml narrowed to those parts as
tests/integration/pg_stage.py narrows it, SIGKILLed at one journal write
(watchdog/store/crashpoints.py) and restarted without the setting.

`pg_config_restore`: two rows of `metadata_enrichment_config` lose their first
provider; the plan backs the table up, restores the last known good snapshot in one
transaction, tells the service to reload and verifies what it loaded.

The world check: the table as the journal says. Its rows equal the rows before the
fault (every column but `last_updated`) unless an escalated incident's page names
the table, and `provider_performance_history` (whose rows cascade from the
configuration's keys) has lost nothing: a restore that deleted and re-inserted the
keys would empty it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from tests.enrichment_stub import enrichment_stub
from tests.integration.crash_matrix import (
    CONFIG_TABLE,
    FAULT_BOUND,
    OUTBOX_BOUND,
    Daemon,
    KillPoint,
    Run,
    _fault_done,
    _rows,
    _until,
    escalation_pages,
    judged,
    pagers,
    read_commit_log,
    revived,
)
from tests.integration.pg_stage import narrowed_policy
from tests.pgserver import postgres_server
from watchdog.demo import TIME_SCALE

HISTORY = "SELECT * FROM provider_performance_history ORDER BY id"
CORRUPT = (
    f"UPDATE {CONFIG_TABLE} SET priority_1_provider = NULL, updated_by = 'bad'"
    " WHERE metadata_field IN ('bpm', 'key')"
)


class PgDaemon(Daemon):
    """`watchdog run` guarding a PostgreSQL and the enrichment stub (crash_matrix.Daemon's
    start, revive and stop)."""

    def __init__(self, folder: Path, policy: Path, env: dict[str, str]) -> None:
        self.policy = policy
        self.prepare(folder, lambda listen: {
            **os.environ,
            "WATCHDOG_STATE": str(folder / "journal.db"),
            "WATCHDOG_LISTEN": listen,
            "WATCHDOG_TIME_SCALE": str(TIME_SCALE),
            "WATCHDOG_LOG_FORMAT": "json",
            "WATCHDOG_CONFIG_STORE": "postgres",
            "WATCHDOG_BACKUP_DIR": str(folder / "backups"),
        }, env)


def _query(dsn: str, sql: str) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, row_factory=dict_row, autocommit=True) as db:
        cursor = db.execute(sql.encode())
        return list(cursor.fetchall()) if cursor.description else []


def _config(dsn: str) -> list[dict[str, Any]]:
    rows = _query(dsn, f"SELECT * FROM {CONFIG_TABLE} ORDER BY metadata_field")
    return [{k: v for k, v in row.items() if k != "last_updated"} for row in rows]


def table_agrees(
    db: Path, dsn: str, baseline: list[dict[str, Any]], history: list[dict[str, Any]]
) -> list[str]:
    """The configuration as before the fault unless a page names it; the history intact."""
    named = escalation_pages(db)
    out = []
    live = _config(dsn)
    if live != baseline and CONFIG_TABLE not in named:
        changed = sorted(
            {str(r["metadata_field"]) for r in live} ^ {str(r["metadata_field"]) for r in baseline}
            | {str(a["metadata_field"]) for a, b in zip(live, baseline, strict=False) if a != b}
        )
        out.append(f"{CONFIG_TABLE} differs from its rows before the fault (rows {changed})"
                   " and no escalated incident's page names it")
    now = _query(dsn, HISTORY)
    if now != history:
        out.append(f"provider_performance_history has {len(now)} rows, had {len(history)}:"
                   " the restore touched more than the configuration")
    return out


def judge(
    db: Path, dsn: str, baseline: list[dict[str, Any]], history: list[dict[str, Any]]
) -> list[str]:
    """crash_matrix's journal invariants and the table's own check."""
    return judged(db, "table_agrees", lambda: table_agrees(db, dsn, baseline, history))


def run_pg_scenario(scenario: str, kill: KillPoint | None = None) -> Run:
    """A fresh PostgreSQL, stub and daemon through the restore, killed at `kill`."""
    began = time.monotonic()
    run = Run(scenario, kill)
    with tempfile.TemporaryDirectory(prefix="crash-pg-") as tmp, contextlib.ExitStack() as es:
        folder = Path(tmp)
        log = folder / "commits.log"
        paging = pagers(es, log)[2]
        server = es.enter_context(postgres_server())
        server.reset_musicdb()
        stub = es.enter_context(enrichment_stub(server.dsn))
        baseline, history = _config(server.dsn), _query(server.dsn, HISTORY)
        daemon = PgDaemon(folder, narrowed_policy(folder), {
            "WATCHDOG_DATABASE_URL": server.dsn,
            "WATCHDOG_URL_METADATA_ENRICHMENT": stub.url,
            **paging,
        })
        es.callback(daemon.stop)
        db = folder / "journal.db"
        daemon.start({} if kill is None else kill.environment())
        _until(lambda: revived(daemon) and bool(_rows(
            db, "SELECT 1 FROM snapshots WHERE table_name = ?", (CONFIG_TABLE,))), 30,
            "a baseline")
        _query(server.dsn, CORRUPT)
        _until(lambda: revived(daemon) and _fault_done(db, set()), FAULT_BOUND, "final")
        _until(lambda: revived(daemon) and not _rows(
            db, "SELECT 1 FROM outbox WHERE status = 'pending'"), OUTBOX_BOUND, "pages sent")
        daemon.stop()
        read_commit_log(run, log, db)
        run.violations += judge(db, server.dsn, baseline, history)
    run.seconds = time.monotonic() - began
    return run
