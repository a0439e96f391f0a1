"""`watchdog config snapshots|diff` and `watchdog rollback --undo|--database` on real PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.pgserver import PgServer
from watchdog.actions.database import DatabaseActions
from watchdog.actions.pgstore import PostgresConfigStore
from watchdog.cli import main
from watchdog.demo import daemon_environment
from watchdog.model import Risk, Step
from watchdog.sandbox.stack import SandboxStack
from watchdog.store.journal import open_journal

POLICY = str(Path(__file__).resolve().parents[2] / "policies" / "songnodes.yaml")
CONFIG = "metadata_enrichment_config"


def sql(server: PgServer, query: str) -> list[dict[str, Any]]:
    with psycopg.connect(server.dsn, row_factory=dict_row, autocommit=True) as db:
        cursor = db.execute(query.encode())
        return list(cursor.fetchall()) if cursor.description else []


@pytest.fixture
def env(musicdb: PgServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WATCHDOG_STATE", str(tmp_path / "journal.db"))
    monkeypatch.setenv("WATCHDOG_CONFIG_STORE", "postgres")
    monkeypatch.setenv("WATCHDOG_DATABASE_URL", musicdb.dsn)
    monkeypatch.setenv("WATCHDOG_BACKUP_DIR", str(tmp_path / "backups"))
    return tmp_path


def test_snapshots_are_listed_and_the_live_table_diffed_column_by_column(
    musicdb: PgServer, env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "snapshots", "--policy", POLICY]) == 2  # no journal yet: refused
    assert "no journal at" in capsys.readouterr().err
    open_journal(str(env / "journal.db")).close()  # what `watchdog run` would have made
    assert main(["config", "snapshots", "--policy", POLICY]) == 0
    assert "no snapshots of metadata_enrichment_config" in capsys.readouterr().out
    rows = asyncio.run(PostgresConfigStore(musicdb.dsn).read_rows(CONFIG))
    journal = open_journal(str(env / "journal.db"))
    snapshot = journal.save_snapshot(CONFIG, rows, at=time.time())
    journal.close()
    assert snapshot is not None
    sql(musicdb, f"UPDATE {CONFIG} SET priority_1_provider = NULL WHERE metadata_field = 'bpm'")
    sql(musicdb, f"DELETE FROM provider_performance_history WHERE metadata_field = 'isrc'; "
        f"DELETE FROM {CONFIG} WHERE metadata_field = 'isrc'")

    assert main(["config", "snapshots", "--policy", POLICY]) == 0
    listing = capsys.readouterr().out
    assert f"{snapshot.id:>4}  metadata_enrichment_config" in listing and " 14  " in listing
    assert main(["config", "diff", "--policy", POLICY]) == 0
    diff = capsys.readouterr().out
    assert f"2 row(s) differ (snapshot {snapshot.id} of metadata_enrichment_config" in diff
    assert "~ bpm" in diff and "priority_1_provider: spotify → NULL" in diff
    assert "- isrc (removed in the live table)" in diff
    assert main(["config", "diff", str(snapshot.id + 99), "--policy", POLICY]) == 2


def test_undo_puts_back_exactly_the_rows_of_a_journaled_disable(
    musicdb: PgServer, env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from watchdog.actions.config import ConfigActions
    from watchdog.actions.http import HttpActions
    from watchdog.policyfile import load_policy

    before = sql(musicdb, f"SELECT * FROM {CONFIG} ORDER BY metadata_field")
    journal = open_journal(str(env / "journal.db"))
    incident = journal.open_incident(
        key="provider/spotify", severity=__import__("watchdog.model").model.Severity.P2,
        scenario="provider_failure", subject="spotify", state="detected", reason="test",
        at=time.time(), findings=(),
    )

    async def disable() -> Any:
        import httpx

        async with httpx.AsyncClient() as client:
            actions = ConfigActions(
                PostgresConfigStore(musicdb.dsn), journal,
                HttpActions(load_policy(POLICY, environ={}), client), env,
            )
            step = Step("disable", "provider.disable", Risk.SAFE,
                        (("provider", "spotify"), ("table", CONFIG), ("mode", "surgical")))
            return await actions.disable(step)

    outcome = asyncio.run(disable())
    journal.add_event(incident, at=time.time(), kind="step_evidence", summary="x",
                      data=outcome.data)
    journal.close()
    assert sql(musicdb, f"SELECT * FROM {CONFIG} ORDER BY metadata_field") != before
    untouched = next(
        r["metadata_field"] for r in before
        if "spotify" not in [r[f"priority_{n}_provider"] for n in range(1, 5)]
    )
    sql(musicdb, f"UPDATE {CONFIG} SET field_description = 'edited by a human' "
        f"WHERE metadata_field = '{untouched}'")

    assert main(["rollback", "--policy", POLICY, "--undo", str(incident)]) == 0
    out = capsys.readouterr().out
    assert "12 row(s) of metadata_enrichment_config restored to their before-image" in out
    after = {r["metadata_field"]: r for r in sql(musicdb, f"SELECT * FROM {CONFIG}")}
    for row in before:
        expected = dict(row)
        if row["metadata_field"] == untouched:
            expected["field_description"] = "edited by a human"
        assert after[row["metadata_field"]] == expected
    assert main(["rollback", "--policy", POLICY, "--undo", "999"]) == 2


def test_database_rollback_by_hand_with_a_named_backup(
    musicdb: PgServer,
    env: Path,
    sandbox_stack: SandboxStack,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sandbox plays the application services; the data is in the real PostgreSQL."""
    root = env / "sql" / "migrations"
    (root / "medallion").mkdir(parents=True)
    (root / "001_base_up.sql").write_text("CREATE TABLE base_marker (id int);\n")
    (root / "001_base_down.sql").write_text("DROP TABLE base_marker;\n")
    sql(musicdb, "CREATE TABLE base_marker (id int); "
        "INSERT INTO schema_migrations (version) VALUES ('001_base')")
    backups = env / "backups"
    step = Step("backup", "database.backup", Risk.SAFE, (("backup_dir", str(backups)),))
    asyncio.run(DatabaseActions(musicdb.dsn).backup(step))
    (backup,) = backups.glob("musicdb_backup_*.sql.gz")
    sql(musicdb, "DELETE FROM enrichment_status; DELETE FROM tracks")
    for name, value in daemon_environment(sandbox_stack, env, "127.0.0.1:9", 10.0).items():
        if name.startswith("WATCHDOG_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("WATCHDOG_POSTGRES_SIGNALS", "true")
    monkeypatch.setenv("WATCHDOG_DATABASE_PORT_SIGNAL", "false")
    monkeypatch.setenv("WATCHDOG_DATABASE_URL", musicdb.dsn)
    monkeypatch.setenv("WATCHDOG_BACKUP_DIR", str(backups))
    monkeypatch.setenv("WATCHDOG_MIGRATIONS_DIR", str(root))

    code = main(["rollback", "--policy", POLICY, "--database", "--backup", backup.name,
                 "--target-version", "001_base"])
    out = capsys.readouterr().out

    assert code == 0, out
    assert f"impact: backup {backup.name}" in out and "will be lost" in out
    for action in ("stop the application services", "dump the current state",
                   "restore the newest backup", "apply down migrations",
                   "check the database's integrity", "start the application services",
                   "take a fresh backup"):
        assert f"succeeded {action}" in out, out
    assert "verified:" in out
    assert sql(musicdb, "SELECT count(*) FROM tracks")[0]["count"] == 50
    assert len(list(backups.glob("musicdb_backup_*.sql.gz"))) == 2
    assert sandbox_stack.control.services()["enrichment-worker-1"]["running"] is True

    missing = main(["rollback", "--policy", POLICY, "--database", "--backup", "nope.sql.gz"])
    refused = capsys.readouterr().out
    assert missing == 1 and "REFUSED" in refused and "nope.sql.gz does not exist" in refused
