"""Idempotence claims proven on real components, and the undo that survives a SIGKILL.

provider.disable runs twice on a real PostgreSQL: the second run writes nothing
(no row gets a new version) and the undo still puts back the original rows. A
process killed between the database's COMMIT and its next journal write leaves
an undo record the re-enabler finds and `provider.enable` applies. An http.call
POST is journaled as not idempotent; a second database.restore destroys what was
written between the two runs, which is why it is not idempotent.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any, ClassVar

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from tests.pgserver import PgServer
from watchdog.actions.config import ConfigActions
from watchdog.actions.database import DatabaseActions
from watchdog.actions.http import HttpActions
from watchdog.actions.pgstore import PostgresConfigStore
from watchdog.actions.pgtools import PgTools
from watchdog.engine.executor import Executor
from watchdog.engine.incidents import Incidents
from watchdog.engine.reenable import Reenabler
from watchdog.metrics import Metrics
from watchdog.model import Finding, Risk, Severity, Step
from watchdog.policy.catalogue import assess_idempotence
from watchdog.policy.configrows import routes_through
from watchdog.policy.planner import plan_for
from watchdog.policy.windows import Windows
from watchdog.policyfile import load_policy
from watchdog.store.journal import Journal, open_journal

CONFIG = "metadata_enrichment_config"
POLICY = Path(__file__).resolve().parents[2] / "policies" / "songnodes.yaml"
ROOT = Path(__file__).resolve().parents[2]

SPOTIFY_FAILING = Finding(
    rule="provider-breaker-open",
    signal="breaker_state",
    series="spotify",
    severity=Severity.P2,
    scenario="provider_failure",
    group="provider",
    subject="spotify",
    since=900.0,
    reason="spotify circuit breaker OPEN",
    params=(("provider", "spotify"),),
)


def sql(dsn: str, query: str) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, row_factory=dict_row, autocommit=True) as db:
        cursor = db.execute(query.encode())
        return list(cursor.fetchall()) if cursor.description else []


def versions(dsn: str) -> dict[str, str]:
    """Each row's xmin: it changes on any UPDATE, even one writing the same values."""
    rows = sql(dsn, f"SELECT metadata_field, xmin::text AS v FROM {CONFIG}")
    return {r["metadata_field"]: r["v"] for r in rows}


def open_provider_incident(journal: Journal) -> int:
    return journal.open_incident(
        key="provider/spotify", severity=Severity.P2, scenario="provider_failure",
        subject="spotify", state="executing", reason="test", at=time.time(),
        findings=(SPOTIFY_FAILING,),
    )


def disable_step(incident: int) -> Step:
    """The songnodes plan's own first step, with the engine's incident filled in."""
    plan = plan_for(
        load_policy(str(POLICY), environ={}), scenario="provider_failure",
        severity=Severity.P2, subject="spotify",
        params={"provider": "spotify", "series": "spotify", "incident": str(incident)},
        why="test",
    )
    step = plan.steps[0]
    assert step.action == "provider.disable" and step.idempotent
    return step


def config_actions(dsn: str, journal: Journal, client: httpx.AsyncClient, folder: Path) -> Any:
    policy = load_policy(str(POLICY), environ={})
    return ConfigActions(PostgresConfigStore(dsn), journal, HttpActions(policy, client), folder)


def enable(dsn: str, journal: Journal, incident: int, folder: Path) -> str:
    async def run() -> str:
        async with httpx.AsyncClient() as client:
            config = config_actions(dsn, journal, client, folder)
            step = Step("enable", "provider.enable", Risk.SAFE, (("incident", str(incident)),))
            return str((await config.enable(step)).output)

    return asyncio.run(run())


def test_provider_disable_twice_writes_nothing_the_second_time_and_undoes_exactly(
    musicdb: PgServer, journal: Journal, tmp_path: Path
) -> None:
    store = PostgresConfigStore(musicdb.dsn)
    original = asyncio.run(store.read_rows(CONFIG))
    incident = open_provider_incident(journal)
    step = disable_step(incident)

    async def twice() -> tuple[str, str, dict[str, str], dict[str, str]]:
        async with httpx.AsyncClient() as client:
            config = config_actions(musicdb.dsn, journal, client, tmp_path)
            first = await config.disable(step)
            between = versions(musicdb.dsn)
            second = await config.disable(step)
            return first.output, second.output, between, versions(musicdb.dsn)

    first, second, between, after = asyncio.run(twice())
    assert "rerouted" in first and "(undo record 1)" in first
    assert second == f"spotify is in no enabled waterfall of {CONFIG}: nothing to change"
    assert after == between, "the second run wrote rows"
    (record,) = journal.undo_records(incident)
    assert record.status == "applied" and record.step == step.name
    assert record.before == [r for r in original if routes_through(r, "spotify")]
    assert len(record.before) == 12

    words = enable(musicdb.dsn, journal, incident, tmp_path)
    assert words.startswith(f"12 row(s) of {CONFIG} restored")
    assert asyncio.run(store.read_rows(CONFIG)) == original


CRASH_AFTER_COMMIT = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from pathlib import Path
    import httpx
    from watchdog.actions.config import ConfigActions
    from watchdog.actions.http import HttpActions
    from watchdog.actions.pgstore import PostgresConfigStore
    from watchdog.engine.executor import Executor
    from watchdog.metrics import Metrics
    from watchdog.model import Severity
    from watchdog.policy.planner import plan_for
    from watchdog.policyfile import load_policy
    from watchdog.store.journal import open_journal

    dsn, state, incident, policy_path, folder = sys.argv[1:]

    class KilledAfterCommit(PostgresConfigStore):
        async def update_rows(self, table, rows):
            summary = await super().update_rows(table, rows)
            os.kill(os.getpid(), signal.SIGKILL)  # the COMMIT is done; nothing after it runs
            return summary

    async def main():
        policy = load_policy(policy_path, environ={})
        journal = open_journal(state)
        plan = plan_for(policy, scenario="provider_failure", severity=Severity.P2,
                        subject="spotify", why="crash test",
                        params={"provider": "spotify", "series": "spotify", "incident": incident})
        async with httpx.AsyncClient() as client:
            config = ConfigActions(KilledAfterCommit(dsn), journal, HttpActions(policy, client),
                                   Path(folder))
            executor = Executor(journal, {"provider.disable": config.disable}, Metrics())
            await executor.run_step(int(incident), plan.scenario, 0, plan.steps[0])

    asyncio.run(main())
    """
)


def test_a_sigkill_between_the_commit_and_the_journal_keeps_the_undo(
    musicdb: PgServer, tmp_path: Path
) -> None:
    """The defect: before-images journaled only after the database's COMMIT were lost
    to a SIGKILL in between, and neither the re-enabler nor an undo could find them."""
    state = tmp_path / "journal.db"
    store = PostgresConfigStore(musicdb.dsn)
    original = asyncio.run(store.read_rows(CONFIG))
    journal = open_journal(str(state))
    incident = open_provider_incident(journal)
    journal.close()

    crashed = subprocess.run(
        [sys.executable, "-c", CRASH_AFTER_COMMIT, musicdb.dsn, str(state), str(incident),
         str(POLICY), str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert crashed.returncode == -9, crashed.stderr
    changed = asyncio.run(store.read_rows(CONFIG))
    assert changed != original and not any(routes_through(r, "spotify") for r in changed)

    journal = open_journal(str(state))
    try:
        assert [r.status for r in journal.undo_records(incident)] == ["intended"]
        # The incident resolves (the provider was out of use); the re-enabler must
        # still see a change standing, from the record alone.
        journal.set_state(incident, state="resolved", at=time.time(), reason="test",
                          closed=True)
        policy = load_policy(str(POLICY), environ={})
        metrics = Metrics()
        windows = Windows()
        incidents = Incidents(policy, journal, Executor(journal, {}, metrics), metrics,
                              windows, time.time)
        reenabler = Reenabler(policy, journal, incidents, windows, time.time)
        reenabler.refresh()
        assert list(reenabler.pending) == [incident]

        words = enable(musicdb.dsn, journal, incident, tmp_path)
        assert words.startswith(f"12 row(s) of {CONFIG} restored"), words
        assert asyncio.run(store.read_rows(CONFIG)) == original
        (record,) = journal.undo_records(incident)
        assert record.status == "applied"
        assert "hold the change's after-image, so it was committed" in record.reason
    finally:
        journal.close()


def test_a_disable_that_never_committed_is_settled_not_applied_and_not_undone(
    musicdb: PgServer, journal: Journal, tmp_path: Path
) -> None:
    """The other side of the window: the intent was written, the COMMIT never happened."""
    store = PostgresConfigStore(musicdb.dsn)
    original = asyncio.run(store.read_rows(CONFIG))
    incident = open_provider_incident(journal)
    journal.undo_records(incident)
    undo = journal.intend_undo(
        incident, step="take spotify out of the waterfall", action="provider.disable",
        table=CONFIG, before=[original[0]], after=[{**original[0], "enabled": False}],
        at=time.time(),
    )
    words = enable(musicdb.dsn, journal, incident, tmp_path)
    assert words == (
        f"nothing to put back: incident {incident}'s provider.disable never reached the "
        f"table (undo record(s) {undo} not applied)"
    )
    assert [r.status for r in journal.undo_records(incident)] == ["not_applied"]
    assert asyncio.run(store.read_rows(CONFIG)) == original


# ---- http.call: a POST is not idempotent ----------------------------------------------


class Counting(BaseHTTPRequestHandler):
    seen: ClassVar[list[str]] = []

    def _answer(self) -> None:
        Counting.seen.append(self.command)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def counting_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Counting)
    thread = Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Counting.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_http_post_is_journaled_not_idempotent_and_a_get_idempotent(
    counting_server: str, journal: Journal
) -> None:
    policy = load_policy(str(POLICY), environ={"WATCHDOG_URL_METADATA_ENRICHMENT": counting_server})
    steps = tuple(
        Step(f"{method} the service", "http.call", Risk.SAFE,
             (("method", method), ("path", "/admin/x"), ("target", "metadata-enrichment")),
             idempotent=assess_idempotence(
                 "http.call", {"method": method, "path": "/admin/x"}
             ).idempotent)
        for method in ("POST", "GET")
    )
    incident = open_provider_incident(journal)

    async def run() -> None:
        async with httpx.AsyncClient() as client:
            http = HttpActions(policy, client)
            executor = Executor(journal, {"http.call": http.generic}, Metrics())
            for index, step in enumerate(steps):
                assert (await executor.run_step(incident, "test", index, step)).ok

    asyncio.run(run())
    assert Counting.seen == ["POST", "GET"]
    recorded = {s.name: (s.status, s.idempotent) for s in journal.steps(incident)}
    assert recorded == {
        "POST the service": ("succeeded", False),
        "GET the service": ("succeeded", True),
    }


# ---- a database step: why database.restore is not idempotent --------------------------


@pytest.mark.asyncio
async def test_a_second_database_restore_destroys_what_was_written_after_the_first(
    musicdb: PgServer, tmp_path: Path
) -> None:
    assert not assess_idempotence("database.restore", {"backup_dir": str(tmp_path)}).idempotent
    database = DatabaseActions(musicdb.dsn, tools=PgTools.locate(musicdb.bin_dir))
    sql(musicdb.dsn, "INSERT INTO schema_migrations (version, applied_at) "
        "VALUES ('000_base', now())")
    backup = Step("backup", "database.backup", Risk.SAFE, (("backup_dir", str(tmp_path)),))
    restore = Step("restore", "database.restore", Risk.RISKY,
                   (("backup_dir", str(tmp_path)), ("max_backup_age", 3600.0)))
    await database.backup(backup)
    assert (await database.restore(restore)).ok
    sql(musicdb.dsn, f"UPDATE {CONFIG} SET updated_by = 'written after the restore' "
        "WHERE metadata_field = 'bpm'")
    assert (await database.restore(restore)).ok
    (bpm,) = sql(musicdb.dsn, f"SELECT updated_by FROM {CONFIG} WHERE metadata_field = 'bpm'")
    assert bpm["updated_by"] != "written after the restore"
