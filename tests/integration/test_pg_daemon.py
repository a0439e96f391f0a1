"""The daemon against a real PostgreSQL: scenario 4 end to end, and the database going away.

`watchdog run` in its own process guards a throwaway PostgreSQL server (tables
as TARGET-STACK.md describes them) and the enrichment stub that loads its
configuration from it, with songnodes.yaml narrowed to those parts
(tests/integration/pg_stage.py) and its clock compressed tenfold.
"""

from __future__ import annotations

import asyncio
import csv
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.enrichment_stub import EnrichmentStub, enrichment_stub
from tests.integration.notify_stage import vendors
from tests.integration.pg_stage import pg_stage
from tests.pgserver import PgServer, postgres_server
from watchdog.demo import wait_for

pytestmark = pytest.mark.slow

CONFIG = "metadata_enrichment_config"


def rows(dsn: str, query: str) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, row_factory=dict_row, autocommit=True) as db:
        cursor = db.execute(query.encode())
        return list(cursor.fetchall()) if cursor.description else []


@pytest.fixture
def stub(musicdb: PgServer) -> Iterator[EnrichmentStub]:
    with enrichment_stub(musicdb.dsn) as running:
        yield running


def test_corrupted_configuration_is_restored_to_the_last_good_snapshot(
    musicdb: PgServer, stub: EnrichmentStub, tmp_path: Path
) -> None:
    with pg_stage(tmp_path, musicdb, stub) as stage:
        stage.wait_for_snapshot()
        journal = stage.journal()
        snapshot = journal.latest_snapshot(CONFIG)
        journal.close()
        assert snapshot is not None and snapshot.row_count == 14
        history_query = "SELECT * FROM provider_performance_history ORDER BY id"
        history = rows(musicdb.dsn, history_query)
        reloads = stub.reloads

        rows(musicdb.dsn, f"UPDATE {CONFIG} SET priority_1_provider = NULL, updated_by = 'bad' "
             "WHERE metadata_field IN ('bpm', 'key')")
        incident = stage.follow(set(), ("resolved", "closed", "escalated"))

        assert incident["state"] in ("resolved", "closed"), incident
        assert incident["scenario"] == "configuration_corruption" and incident["severity"] == "P2"
        live = rows(musicdb.dsn, f"SELECT metadata_field, priority_1_provider, updated_by FROM "
                    f"{CONFIG} ORDER BY metadata_field")
        assert {r["metadata_field"]: r["priority_1_provider"] for r in live} == {
            r["metadata_field"]: r["priority_1_provider"] for r in snapshot.rows
        }
        assert stub.reloads > reloads, "the service was told to reload"
        assert rows(musicdb.dsn, history_query) == history

        journal = stage.journal()
        steps = journal.steps(incident["id"])
        evidence = [e.data for e in journal.timeline(incident["id"]) if e.kind == "step_evidence"]
        journal.close()
        assert [s.status for s in steps] == ["succeeded"] * len(steps)
        assert [s.name for s in steps] == [
            "back up the corrupted configuration",
            "restore the last known good configuration",
            "reload the enrichment configuration",
            "verify the loaded configuration",
        ]
        (backup,) = [e for e in evidence if "file" in e and "rows" in e]
        kept = {r["metadata_field"]: r for r in backup["rows"]}
        assert kept["bpm"]["priority_1_provider"] is None and kept["bpm"]["updated_by"] == "bad"
        with open(backup["file"], newline="", encoding="utf-8") as handle:
            assert {r["metadata_field"]: r["updated_by"] for r in csv.DictReader(handle)}[
                "key"
            ] == "bad"


def test_a_reload_that_fails_after_the_commit_escalates_with_both_versions_journaled(
    musicdb: PgServer, stub: EnrichmentStub, tmp_path: Path
) -> None:
    """The restore committed but the service would not load it: a human must know, and
    the journal holds the corrupted rows (the backup) and the good ones (the snapshot)."""
    with pg_stage(tmp_path, musicdb, stub) as stage:
        stage.wait_for_snapshot()
        journal = stage.journal()
        snapshot = journal.latest_snapshot(CONFIG)
        journal.close()
        assert snapshot is not None
        stub.fail_reloads = True
        rows(musicdb.dsn, f"UPDATE {CONFIG} SET priority_1_provider = NULL, updated_by = 'bad' "
             "WHERE metadata_field = 'bpm'")
        incident = stage.follow(set(), ("escalated", "resolved", "closed"))

        journal = stage.journal()
        try:
            steps = {s.name: s for s in journal.steps(incident["id"])}
            timeline = journal.timeline(incident["id"])
            evidence = [e.data for e in timeline if e.kind == "step_evidence"]
        finally:
            journal.close()
        assert steps["restore the last known good configuration"].status == "succeeded"
        reload = steps["reload the enrichment configuration"]
        assert reload.status == "failed" and "503" in reload.output, reload.output
        assert "verify the loaded configuration" not in steps
        escalations = [e.summary for e in timeline if "escalated" in e.summary]
        assert escalations and "reload" in " ".join(escalations), [e.summary for e in timeline]
        (backup,) = [e for e in evidence if "rows" in e]
        assert {r["metadata_field"]: r["updated_by"] for r in backup["rows"]}["bpm"] == "bad"
        (restored,) = [e for e in evidence if "snapshot" in e]
        assert restored["snapshot"] == snapshot.id
        live = rows(musicdb.dsn, f"SELECT metadata_field, priority_1_provider FROM {CONFIG}")
        assert {r["metadata_field"]: r["priority_1_provider"] for r in live} == {
            r["metadata_field"]: r["priority_1_provider"] for r in snapshot.rows
        }


def test_database_down_is_a_p0_that_waits_for_the_on_call_and_touches_nothing(
    tmp_path: Path,
) -> None:
    with postgres_server() as server, vendors() as pagers:
        server.reset_musicdb()
        # The plan is the production one: no step is taken out, and none may run.
        with enrichment_stub(server.dsn) as stub, pg_stage(
            tmp_path, server, stub, absent_actions=frozenset(),
            environment=pagers.environment(),
        ) as stage:
            stage.wait_for_snapshot()
            server.stop()
            incident = stage.follow(
                set(), ("awaiting_approval", "escalated"), scenario="database_unavailable"
            )

            assert incident["severity"] == "P0" and incident["scenario"] == "database_unavailable"
            assert incident["state"] == "awaiting_approval", incident
            journal = stage.journal()
            try:
                assert journal.steps(incident["id"]) == [], "nothing runs without the on-call"
                timeline = journal.timeline(incident["id"])
                plan = journal.plan(incident["id"])
                evidence = journal.findings(incident["id"])
            finally:
                journal.close()
            assert plan is not None
            assert [s.action for s in plan.steps] == ["service.start"]
            assert not any(s.action.startswith(("database.", "migrations.")) for s in plan.steps)
            assert plan.authorization.role == "oncall"
            words = " ".join(e.summary for e in timeline)
            assert "P0" in words and "awaiting_approval" in words
            reasons = [f.reason for f in evidence]
            assert all("Connection refused" in r for r in reasons), reasons
            # The on-call is paged (PagerDuty's fake checks the event as the vendor does).
            wait_for(lambda: bool(pagers.pagerduty.events("trigger")), 30, "the P0 page")
            page = pagers.pagerduty.events("trigger")[0]
            assert page["dedup_key"] == f"songnodes/{incident['id']}"  # the incident's own
            assert page["payload"]["severity"] == "critical"
            # Either of the two database-unavailable rules may open it: the port and the
            # SELECT 1 probes both see the stopped server, whichever answers first.
            summary = page["payload"]["summary"].lower()
            assert ("postgresql reachable: failing" in summary
                    or "postgresql answers select 1: failing" in summary), summary
            assert f"watchdog approve {incident['id']}" in str(page["payload"]["custom_details"])


MIGRATIONS = {
    # (folder, name): (up, down or None); applied in this order.
    ("", "001_base"): ("CREATE TABLE base_marker (id int)", "DROP TABLE base_marker"),
    ("medallion", "001_bronze_layer"): ("CREATE TABLE bronze (id int)", "DROP TABLE bronze"),
    ("medallion", "002_silver_layer"): ("CREATE TABLE silver (id int)", "DROP TABLE silver"),
    ("", "003_enrichment_fields"): (
        "ALTER TABLE tracks ADD COLUMN energy numeric",
        "ALTER TABLE tracks DROP COLUMN energy",
    ),
}
# Applied after the backup: the one that breaks things (orphans enrichment_status rows).
FAILING = (
    ("", "004_drop_track_fk"),
    (
        "ALTER TABLE enrichment_status DROP CONSTRAINT enrichment_status_track_id_fkey; "
        "DELETE FROM tracks WHERE id IN (SELECT track_id FROM enrichment_status LIMIT 3)",
        "SELECT 1",
    ),
)


def write_and_apply(
    server: PgServer, root: Path, migrations: dict[tuple[str, str], tuple[str, str | None]]
) -> None:
    """Write NNN_name_up.sql / _down.sql files, run each up and record it as applied."""
    for (folder, name), (up, down) in migrations.items():
        where = root / folder
        where.mkdir(parents=True, exist_ok=True)
        (where / f"{name}_up.sql").write_text(up + ";\n")
        if down is not None:
            (where / f"{name}_down.sql").write_text(down + ";\n")
        version = f"{folder}/{name}" if folder else name
        rows(server.dsn, up)
        rows(server.dsn, f"INSERT INTO schema_migrations (version, applied_at) "
             f"VALUES ('{version}', clock_timestamp())")
        time.sleep(0.01)


def take_backup(server: PgServer, folder: Path) -> Path:
    from watchdog.actions.database import DatabaseActions
    from watchdog.model import Risk, Step

    step = Step("backup", "database.backup", Risk.SAFE, (("backup_dir", str(folder)),))
    asyncio.run(DatabaseActions(server.dsn).backup(step))
    (made,) = folder.glob("musicdb_backup_*.sql.gz")
    return made


def tables(server: PgServer) -> set[str]:
    found = rows(server.dsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r["tablename"] for r in found}


def migration_stage(tmp_path: Path, server: PgServer, stub: EnrichmentStub) -> Any:
    return pg_stage(
        tmp_path,
        server,
        stub,
        environment={
            "WATCHDOG_MIGRATIONS_DIR": str(tmp_path / "sql" / "migrations"),
            "WATCHDOG_MIGRATION_TARGET": "001_base",
        },
    )


def test_migration_rollback_waits_for_the_lead_then_restores_and_migrates_down(
    musicdb: PgServer, stub: EnrichmentStub, tmp_path: Path
) -> None:
    root = tmp_path / "sql" / "migrations"
    write_and_apply(musicdb, root, MIGRATIONS)
    backup = take_backup(musicdb, tmp_path / "backups")
    write_and_apply(musicdb, root, dict([FAILING]))
    assert rows(musicdb.dsn, ORPHANS)[0]["count"] > 0

    with migration_stage(tmp_path, musicdb, stub) as stage:
        incident = stage.follow(
            set(), ("awaiting_approval", "escalated"), scenario="database_migration_failure"
        )
        assert incident["state"] == "awaiting_approval" and incident["severity"] == "P1", incident
        journal = stage.journal()
        plan = journal.plan(incident["id"])
        assert plan is not None and plan.authorization.role == "lead"
        impact = " | ".join(plan.impact)
        assert backup.name in impact and "will be lost" in impact
        planned = [impact.find(n) for n in ("003_enrich", "002_silver", "001_bronze")]
        assert -1 not in planned and planned == sorted(planned), impact
        assert journal.steps(incident["id"]) == [], "nothing runs before the approval"
        assert "energy" in str(rows(musicdb.dsn, "SELECT * FROM tracks LIMIT 1")[0])

        journal.record_approval(
            incident["id"], at=time.time(), person="lee", role="lead", decision="approve"
        )
        journal.close()
        done = stage.follow(
            set(), ("resolved", "closed", "escalated"), 90, scenario=incident["scenario"]
        )

        journal = stage.journal()
        steps = journal.steps(done["id"])
        journal.close()
        assert done["state"] in ("resolved", "closed"), [(s.name, s.output) for s in steps]
        assert [s.action for s in steps] == [
            "database.dump",
            "database.restore",
            "migrations.down",
            "database.integrity",
            "database.backup",
        ]
        down = next(s for s in steps if s.action == "migrations.down").output
        order = [down.index(n) for n in ("003_enrichment", "002_silver", "001_bronze")]
        assert order == sorted(order), down
    assert {"bronze", "silver", "base_marker"} & tables(musicdb) == {"base_marker"}
    assert [r["version"] for r in rows(musicdb.dsn, "SELECT version FROM schema_migrations")] == [
        "001_base"
    ]
    assert rows(musicdb.dsn, ORPHANS)[0]["count"] == 0
    assert rows(musicdb.dsn, "SELECT count(*) FROM tracks")[0]["count"] == 50
    assert len(list((tmp_path / "backups").glob("corrupted-state-*.sql"))) == 1
    assert len(list((tmp_path / "backups").glob("musicdb_backup_*.sql.gz"))) == 2


def test_a_migration_without_a_down_file_stops_the_plan_before_anything_changes(
    musicdb: PgServer, stub: EnrichmentStub, tmp_path: Path
) -> None:
    root = tmp_path / "sql" / "migrations"
    no_down = dict(MIGRATIONS)
    no_down[("medallion", "002_silver_layer")] = ("CREATE TABLE silver (id int)", None)
    write_and_apply(musicdb, root, no_down)
    take_backup(musicdb, tmp_path / "backups")
    write_and_apply(musicdb, root, dict([FAILING]))
    before = tables(musicdb)

    with migration_stage(tmp_path, musicdb, stub) as stage:
        incident = stage.follow(
            set(), ("awaiting_approval", "escalated"), scenario="database_migration_failure"
        )
        journal = stage.journal()
        steps = journal.steps(incident["id"])
        timeline = " ".join(e.summary for e in journal.timeline(incident["id"]))
        journal.close()
    assert incident["state"] == "escalated", incident
    assert "002_silver_layer" in timeline and "no down file" in timeline, timeline
    assert steps == [], "refused before the first step"
    assert tables(musicdb) == before and rows(musicdb.dsn, ORPHANS)[0]["count"] > 0


ORPHANS = (
    "SELECT count(*) FROM enrichment_status s "
    "WHERE NOT EXISTS (SELECT 1 FROM tracks t WHERE t.id = s.track_id)"
)
