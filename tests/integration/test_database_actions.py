"""Scenario 2's database steps against a real PostgreSQL: dump, backup, restore, migrate down.

Every refusal is checked twice: the message says why, and the database is exactly as it
was (the tables a down migration would drop still exist, the rows a restore would
replace are still there).
"""

from __future__ import annotations

import asyncio
import gzip
import os
import stat
import time
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.pgserver import PgServer
from watchdog.actions.base import ActionFailed
from watchdog.actions.database import DatabaseActions, age_words, scan_dump
from watchdog.actions.pgtools import PgTarget, PgTools, run_tool
from watchdog.model import Risk, Step


def step(action: str, **params: Any) -> Step:
    return Step(action, action, Risk.RISKY, tuple(params.items()))


def query(dsn: str, text: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(text).fetchall()


def run(dsn: str, text: str, *params: Any) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute(text, params or None)


def tables(dsn: str) -> set[str]:
    rows = query(dsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {str(r[0]) for r in rows}


def count(dsn: str, table: str) -> int:
    return int(query(dsn, f"SELECT count(*) FROM {table}")[0][0])


@pytest.fixture
def db(musicdb: PgServer) -> Iterator[PgServer]:
    """musicdb, and afterwards no schema but public left behind by a restore test."""
    yield musicdb
    run(musicdb.dsn, "DROP SCHEMA IF EXISTS medallion CASCADE")


def actions(server: PgServer, dsn: str | None = None, **kwargs: Any) -> DatabaseActions:
    kwargs.setdefault("migrations_dir", "sql/migrations")  # the policy's stack.migrations_dir
    return DatabaseActions(dsn or server.dsn, tools=PgTools.locate(server.bin_dir), **kwargs)


# ---- migrations down ------------------------------------------------------------------


def write_migrations(base: Path) -> None:
    """Three migrations in two folders; each down drops its table and notes that it ran."""
    main = base / "sql/migrations"
    medallion = main / "medallion"
    medallion.mkdir(parents=True)
    (main / "008_enrichment_audit_up.sql").write_text(
        "BEGIN;\nCREATE TABLE enrichment_audit (id int);\nCOMMIT;\n"
    )
    (main / "008_enrichment_audit_down.sql").write_text(
        # its own BEGIN/COMMIT and a plpgsql body with BEGIN ... END: the transaction is ours
        "BEGIN;\n"
        "DROP TABLE enrichment_audit;\n"
        "INSERT INTO down_log (name) VALUES ('008_enrichment_audit');\n"
        "DO $$\nBEGIN\n    RAISE NOTICE 'enrichment audit removed';\nEND\n$$;\n"
        "COMMIT;\n"
    )
    (main / "007_no_way_back_up.sql").write_text("CREATE TABLE no_way_back (id int);\n")
    (medallion / "001_bronze_layer_up.sql").write_text("CREATE TABLE bronze (id int);\n")
    (medallion / "001_bronze_layer_down.sql").write_text(
        "DROP TABLE bronze;\nINSERT INTO down_log (name) VALUES ('001_bronze_layer');\n"
    )
    (medallion / "002_silver_layer_up.sql").write_text(
        "CREATE TABLE silver (id int, note text DEFAULT '100%');\n"
    )
    (medallion / "002_silver_layer_down.sql").write_text(
        "SET search_path TO pg_catalog;\n"  # a session change must not leak into the next file
        "DROP TABLE public.silver;\n"
        "INSERT INTO public.down_log (name) VALUES ('002_silver_layer');\n"
    )


def apply_ups(dsn: str, base: Path, rows: list[tuple[str, str, int]]) -> None:
    """Run up files and record them, `applied_at` = a fixed day plus the given hour."""
    run(dsn, "CREATE TABLE down_log (n serial, name text)")
    for path, version, hour in rows:
        with psycopg.connect(dsn) as conn:
            conn.execute((base / path).read_text().replace("BEGIN;", "").replace("COMMIT;", ""))
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (%s, %s)",
                (version, f"2025-06-01 {hour:02d}:00:00+00"),
            )


THREE = [
    ("sql/migrations/medallion/001_bronze_layer_up.sql", "medallion/001_bronze_layer", 1),
    ("sql/migrations/008_enrichment_audit_up.sql", "008_enrichment_audit", 2),
    (
        "sql/migrations/medallion/002_silver_layer_up.sql",
        "sql/migrations/medallion/002_silver_layer",
        3,
    ),
]
DIRS = ["sql/migrations", "sql/migrations/medallion"]


@pytest.mark.asyncio
async def test_down_migrations_run_newest_first_each_undoing_its_own(
    db: PgServer, tmp_path: Path
) -> None:
    write_migrations(tmp_path)
    run(
        db.dsn,
        "INSERT INTO schema_migrations (version, applied_at) VALUES ('000_base', "
        "'2025-05-01 00:00:00+00')",
    )
    apply_ups(db.dsn, tmp_path, THREE)
    assert {"bronze", "enrichment_audit", "silver"} <= tables(db.dsn)

    outcome = await actions(db).migrations_down(
        step(
            "migrations.down",
            migration_dirs=DIRS,
            base_dir=str(tmp_path),
            target_version="000_base",
        )
    )

    assert outcome.ok
    assert [r[0] for r in query(db.dsn, "SELECT name FROM down_log ORDER BY n")] == [
        "002_silver_layer",
        "008_enrichment_audit",
        "001_bronze_layer",
    ]
    assert not {"bronze", "enrichment_audit", "silver"} & tables(db.dsn)
    assert {"tracks", "down_log"} <= tables(db.dsn)
    assert query(db.dsn, "SELECT version FROM schema_migrations") == [("000_base",)]
    assert outcome.data["applied"] == [
        "sql/migrations/medallion/002_silver_layer_down.sql",
        "sql/migrations/008_enrichment_audit_down.sql",
        "sql/migrations/medallion/001_bronze_layer_down.sql",
    ]
    assert outcome.output.startswith("applied 3 down migration(s), newest first")
    assert "notices: enrichment audit removed" in outcome.output


@pytest.mark.asyncio
async def test_without_a_target_only_the_newest_migration_is_undone(
    db: PgServer, tmp_path: Path
) -> None:
    write_migrations(tmp_path)
    apply_ups(db.dsn, tmp_path, THREE)
    outcome = await actions(db).migrations_down(
        step("migrations.down", migration_dirs=DIRS, base_dir=str(tmp_path))
    )
    assert outcome.data["versions"] == ["sql/migrations/medallion/002_silver_layer"]
    assert {"bronze", "enrichment_audit"} <= tables(db.dsn)
    assert "silver" not in tables(db.dsn)


@pytest.mark.asyncio
async def test_a_migration_without_a_down_file_is_refused_before_anything_changes(
    db: PgServer, tmp_path: Path
) -> None:
    write_migrations(tmp_path)
    apply_ups(
        db.dsn,
        tmp_path,
        [
            ("sql/migrations/medallion/001_bronze_layer_up.sql", "medallion/001_bronze_layer", 1),
            ("sql/migrations/007_no_way_back_up.sql", "007_no_way_back", 2),
            ("sql/migrations/008_enrichment_audit_up.sql", "008_enrichment_audit", 3),
        ],
    )
    before = query(db.dsn, "SELECT version, applied_at FROM schema_migrations ORDER BY 1")

    with pytest.raises(ActionFailed) as refused:
        await actions(db).migrations_down(
            step(
                "migrations.down",
                migration_dirs=DIRS,
                base_dir=str(tmp_path),
                target_version="medallion/001_bronze_layer",
            )
        )

    assert str(refused.value) == (
        "cannot roll back past 007_no_way_back (sql/migrations): it has no down file; "
        "nothing was changed"
    )
    assert {"bronze", "no_way_back", "enrichment_audit"} <= tables(db.dsn)
    assert query(db.dsn, "SELECT version, applied_at FROM schema_migrations ORDER BY 1") == before
    assert count(db.dsn, "down_log") == 0


@pytest.mark.asyncio
async def test_a_failing_down_file_stops_the_chain_and_is_rolled_back(
    db: PgServer, tmp_path: Path
) -> None:
    write_migrations(tmp_path)
    (tmp_path / "sql/migrations/008_enrichment_audit_down.sql").write_text(
        "DROP TABLE enrichment_audit;\nSELECT 1 / 0;\n"
    )
    apply_ups(db.dsn, tmp_path, THREE)

    with pytest.raises(ActionFailed) as failed:
        await actions(db).migrations_down(
            step(
                "migrations.down", migration_dirs=DIRS, base_dir=str(tmp_path), target_version="0"
            )  # nothing is "0": refused as not applied
        )
    assert "target version 0 is not among the applied migrations" in str(failed.value)

    with pytest.raises(ActionFailed) as failed:
        await actions(db).migrations_down(
            step(
                "migrations.down", migration_dirs=DIRS, base_dir=str(tmp_path), target_version="001"
            )
        )

    message = str(failed.value)
    assert message.startswith(
        "down migration 008_enrichment_audit (sql/migrations) "
        "(sql/migrations/008_enrichment_audit_down.sql) failed and was rolled back: "
        "division by zero"
    )
    assert "applied before it: 002_silver_layer (sql/migrations/medallion)" in message
    # silver went (committed); enrichment_audit's drop was rolled back with its row
    assert "silver" not in tables(db.dsn)
    assert "enrichment_audit" in tables(db.dsn)
    versions = {r[0] for r in query(db.dsn, "SELECT version FROM schema_migrations")}
    assert versions == {"medallion/001_bronze_layer", "008_enrichment_audit"}


@pytest.mark.asyncio
async def test_a_down_file_with_a_psql_meta_command_is_refused_up_front(
    db: PgServer, tmp_path: Path
) -> None:
    write_migrations(tmp_path)
    (tmp_path / "sql/migrations/008_enrichment_audit_down.sql").write_text(
        "\\set ON_ERROR_STOP on\nDROP TABLE enrichment_audit;\n"
    )
    apply_ups(db.dsn, tmp_path, THREE)
    with pytest.raises(ActionFailed, match=r"psql meta-command '\\\\set ON_ERROR_STOP on'"):
        await actions(db).migrations_down(
            step(
                "migrations.down",
                migration_dirs=DIRS,
                base_dir=str(tmp_path),
                target_version="medallion/001_bronze_layer",
            )
        )
    assert {"silver", "enrichment_audit"} <= tables(db.dsn)  # not even the first one ran


@pytest.mark.asyncio
async def test_a_down_file_that_commits_by_itself_is_reported(db: PgServer, tmp_path: Path) -> None:
    write_migrations(tmp_path)
    (tmp_path / "sql/migrations/medallion/002_silver_layer_down.sql").write_text(
        "DROP TABLE silver; COMMIT;\n"
    )
    apply_ups(db.dsn, tmp_path, THREE)
    with pytest.raises(ActionFailed) as failed:
        await actions(db).migrations_down(
            step("migrations.down", migration_dirs=DIRS, base_dir=str(tmp_path))
        )
    assert "ended the transaction itself (COMMIT or ROLLBACK inside the file)" in str(failed.value)


# ---- dump and backup ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_dump_and_backup_write_complete_files_under_their_runbook_names(
    db: PgServer, tmp_path: Path
) -> None:
    database = actions(db)
    dumped = await database.dump(step("database.dump", dir=str(tmp_path / "forensics")))
    backed = await database.backup(step("database.backup", backup_dir=str(tmp_path / "pg")))

    dump_file = Path(dumped.data["file"])
    assert dump_file.parent == tmp_path / "forensics"
    assert dump_file.name.startswith("corrupted-state-") and dump_file.suffix == ".sql"
    text = dump_file.read_text()
    assert "COPY public.tracks" in text and "-- PostgreSQL database dump complete" in text
    assert f"to {dump_file} (" in dumped.output

    backup_file = Path(backed.data["file"])
    assert backup_file.name.startswith("musicdb_backup_") and backup_file.name.endswith(".sql.gz")
    assert database.newest_backup(tmp_path / "pg").path == backup_file
    with gzip.open(backup_file, "rt") as unpacked:
        assert "COPY public.metadata_enrichment_config" in unpacked.read()
    # no temporary file left behind
    assert sorted(p.name for p in (tmp_path / "pg").iterdir()) == [backup_file.name]

    # a second backup in the same second gets a name of its own
    again = await database.backup(step("database.backup", backup_dir=str(tmp_path / "pg")))
    assert again.data["file"] != backed.data["file"]
    assert len(list((tmp_path / "pg").iterdir())) == 2


# ---- restore --------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_restore_returns_the_database_to_the_backup(db: PgServer, tmp_path: Path) -> None:
    database = actions(db)
    run(db.dsn, "INSERT INTO schema_migrations (version, applied_at) VALUES ('000_base', now())")
    await database.backup(step("database.backup", backup_dir=str(tmp_path)))
    before = query(db.dsn, "SELECT * FROM tracks ORDER BY id")
    # what a bad migration does afterwards
    run(db.dsn, "DELETE FROM enrichment_status")
    run(db.dsn, "DELETE FROM tracks WHERE bpm IS NULL")
    run(db.dsn, "ALTER TABLE tracks ADD COLUMN camelot_key text")
    run(db.dsn, "CREATE TABLE bronze (id int)")
    run(db.dsn, "INSERT INTO schema_migrations (version) VALUES ('medallion/001_bronze_layer')")

    outcome = await database.restore(
        step("database.restore", backup_dir=str(tmp_path), max_backup_age=3600.0)
    )

    assert outcome.ok
    assert query(db.dsn, "SELECT * FROM tracks ORDER BY id") == before
    assert count(db.dsn, "enrichment_status") == 40
    assert "bronze" not in tables(db.dsn)
    assert query(db.dsn, "SELECT version FROM schema_migrations") == [("000_base",)]
    assert outcome.output.startswith(f"restored {tmp_path}/musicdb_backup_")
    assert "in one transaction; data written since" in outcome.output
    # the restored schema belongs to the DSN's user, as before
    owner = query(
        db.dsn, "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'public'"
    )
    assert owner == [("musicdb_user",)]


@pytest.mark.asyncio
async def test_restore_replaces_the_other_schemas_the_dump_creates(
    db: PgServer, tmp_path: Path
) -> None:
    run(
        db.dsn,
        "CREATE SCHEMA medallion; CREATE TABLE medallion.bronze (id int);"
        "INSERT INTO medallion.bronze VALUES (1)",
    )
    database = actions(db)
    await database.backup(step("database.backup", backup_dir=str(tmp_path)))
    run(db.dsn, "INSERT INTO medallion.bronze VALUES (2)")
    lines = await database.preflight(step("database.restore", backup_dir=str(tmp_path)))
    assert any(line.startswith("schema(s) public, medallion of 127.0.0.1:") for line in lines)
    await database.restore(step("database.restore", backup_dir=str(tmp_path)))
    assert query(db.dsn, "SELECT id FROM medallion.bronze") == [(1,)]


def corrupt_copy(source: Path, folder: Path, *, mode: str) -> Path:
    """A copy of a backup: gzip cut short, SQL cut short, or a dump that fails half-way."""
    folder.mkdir(exist_ok=True)
    target = folder / source.name
    data = source.read_bytes()
    if mode == "truncated gzip":
        target.write_bytes(data[: len(data) // 2])
    else:
        text = gzip.decompress(data).decode()
        if mode == "truncated sql":
            text = text[: text.index("COPY public.tracks")]
        else:  # complete, but an error after the tracks are gone
            cut = text.index("COPY public.tracks")
            text = text[:cut] + "SELECT 1 / 0;\n" + text[cut:]
        target.write_bytes(gzip.compress(text.encode()))
    return target


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        (
            "truncated gzip",
            "is not a complete gzip file: Compressed file ended before the "
            "end-of-stream marker was reached: refusing to restore it",
        ),
        ("truncated sql", "is not a complete pg_dump: it ends before pg_dump's closing line"),
    ],
)
async def test_a_damaged_backup_is_refused_and_the_database_is_untouched(
    db: PgServer, tmp_path: Path, mode: str, reason: str
) -> None:
    database = actions(db)
    good = await database.backup(step("database.backup", backup_dir=str(tmp_path / "good")))
    damaged = corrupt_copy(Path(good.data["file"]), tmp_path / "bad", mode=mode)
    run(db.dsn, "DELETE FROM enrichment_status WHERE status = 'failed'")
    left = count(db.dsn, "enrichment_status")

    restore = step("database.restore", backup_dir=str(tmp_path / "bad"))
    with pytest.raises(ActionFailed) as refused:
        await database.preflight(restore)
    assert str(refused.value).startswith(f"newest backup {damaged.name} ")
    assert reason in str(refused.value)
    with pytest.raises(ActionFailed):
        await database.restore(restore)
    assert count(db.dsn, "enrichment_status") == left


@pytest.mark.asyncio
async def test_a_dump_that_fails_half_way_leaves_the_database_exactly_as_it_was(
    db: PgServer, tmp_path: Path
) -> None:
    database = actions(db)
    good = await database.backup(step("database.backup", backup_dir=str(tmp_path / "good")))
    corrupt_copy(Path(good.data["file"]), tmp_path / "bad", mode="error half-way")
    run(db.dsn, "CREATE TABLE written_after_the_backup (id int)")
    tracks = query(db.dsn, "SELECT * FROM tracks ORDER BY id")

    with pytest.raises(ActionFailed) as failed:
        await database.restore(step("database.restore", backup_dir=str(tmp_path / "bad")))

    message = str(failed.value)
    assert "failed and was rolled back, the database is as it was" in message
    assert "division by zero" in message
    assert "written_after_the_backup" in tables(db.dsn)
    assert query(db.dsn, "SELECT * FROM tracks ORDER BY id") == tracks


@pytest.mark.asyncio
async def test_a_session_holding_a_lock_makes_the_restore_fail_fast_not_hang(
    db: PgServer, tmp_path: Path
) -> None:
    database = actions(db, lock_timeout=0.5)
    await database.backup(step("database.backup", backup_dir=str(tmp_path)))
    with psycopg.connect(db.dsn) as holder:
        holder.execute("LOCK TABLE tracks IN ACCESS SHARE MODE")
        started = time.monotonic()
        with pytest.raises(ActionFailed) as failed:
            await database.restore(step("database.restore", backup_dir=str(tmp_path)))
        assert time.monotonic() - started < 10
        holder.rollback()
    assert "canceling statement due to lock timeout" in str(failed.value)
    assert "another session holds a lock" in str(failed.value)
    assert count(db.dsn, "tracks") == 50


@pytest.mark.asyncio
async def test_a_stale_backup_is_refused_with_its_age(db: PgServer, tmp_path: Path) -> None:
    now = time.time()
    taken = now - (7 * 3600 + 12 * 60)
    name = f"musicdb_backup_{time.strftime('%Y%m%d-%H%M%S', time.localtime(taken))}.sql.gz"
    fresh = await actions(db).backup(step("database.backup", backup_dir=str(tmp_path / "x")))
    os.replace(fresh.data["file"], tmp_path / name)
    database = actions(db, clock=lambda: now)

    restore = step("database.restore", backup_dir=str(tmp_path), max_backup_age=6 * 3600.0)
    with pytest.raises(ActionFailed) as refused:
        await database.restore(restore)
    assert str(refused.value) == (f"newest backup {name} is 7 h 12 min old; the policy allows 6 h")
    lines = await database.preflight(
        step("database.restore", backup_dir=str(tmp_path), max_backup_age="8h")
    )
    assert lines[0].startswith(f"backup {name} in {tmp_path}, taken ")
    assert lines[1] == (
        f"data written since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(taken))} "
        "(7 h 12 min) will be lost"
    )
    assert lines[2].startswith("size: ") and "of SQL" in lines[2]


@pytest.mark.asyncio
async def test_no_backup_and_an_explicit_backup(db: PgServer, tmp_path: Path) -> None:
    database = actions(db)
    with pytest.raises(ActionFailed) as none:
        await database.preflight(step("database.restore", backup_dir=str(tmp_path)))
    assert str(none.value) == f"no backup matching musicdb_backup_*.sql.gz in {tmp_path}"

    made = await database.backup(step("database.backup", backup_dir=str(tmp_path)))
    plain = tmp_path / "pre-migration-2025-06-01-120000.sql"
    plain.write_bytes(gzip.decompress(Path(made.data["file"]).read_bytes()))
    lines = await database.preflight(
        step("database.restore", backup_dir=str(tmp_path), backup=plain.name)
    )
    assert lines[0].startswith(f"backup {plain.name} in {tmp_path}, taken 2025-06-01 12:00:00")
    assert lines[2].startswith("size: ") and "compressed" not in lines[2]


def test_the_newest_backup_is_chosen_by_its_name_else_its_mtime(tmp_path: Path) -> None:
    for name in (
        "musicdb_backup_20250601-060000.sql.gz",
        "musicdb_backup_20250601-120000.sql.gz",
        "musicdb_backup_manual.sql.gz",
    ):
        (tmp_path / name).write_bytes(b"x")
    os.utime(tmp_path / "musicdb_backup_manual.sql.gz", (1.0, 1.0))
    database = DatabaseActions("postgresql://u@127.0.0.1/db")
    newest = database.newest_backup(tmp_path)
    assert newest.path.name == "musicdb_backup_20250601-120000.sql.gz"
    assert newest.dated_by == "name"
    assert newest.taken_at == time.mktime((2025, 6, 1, 12, 0, 0, 0, 0, -1))
    os.utime(tmp_path / "musicdb_backup_manual.sql.gz")  # now: newer than both names
    assert database.newest_backup(tmp_path).dated_by == "mtime"


def test_ages_read_the_way_a_page_says_them() -> None:
    assert [age_words(s) for s in (42, 720, 6 * 3600, 7 * 3600 + 720, 3 * 86400 + 3600)] == [
        "42 s",
        "12 min",
        "6 h",
        "7 h 12 min",
        "3 d 1 h",
    ]


# ---- preflight with the down chain ----------------------------------------------------


@pytest.mark.asyncio
async def test_preflight_plans_the_down_chain_on_the_backup_s_schema_migrations(
    db: PgServer, tmp_path: Path
) -> None:
    write_migrations(tmp_path)
    run(
        db.dsn,
        "INSERT INTO schema_migrations (version, applied_at) VALUES "
        "('000_base', '2025-05-01 00:00:00+00')",
    )
    apply_ups(db.dsn, tmp_path, THREE)
    database = actions(db)
    await database.backup(step("database.backup", backup_dir=str(tmp_path / "pg")))
    # the live table differs: the chain must come from the backup
    run(db.dsn, "DELETE FROM schema_migrations")

    restore = step(
        "database.restore",
        backup_dir=str(tmp_path / "pg"),
        migration_dirs=DIRS,
        base_dir=str(tmp_path),
        target_version="medallion/001_bronze_layer",
    )
    lines = await database.preflight(restore)
    assert lines[-1] == (
        "then down migrations, newest first: 002_silver_layer (sql/migrations/medallion), "
        "008_enrichment_audit (sql/migrations) (schema_migrations in the backup)"
    )

    (tmp_path / "sql/migrations/008_enrichment_audit_down.sql").unlink()
    with pytest.raises(ActionFailed) as refused:
        await database.restore(restore)
    assert str(refused.value) == (
        "after the restore, cannot roll back past 008_enrichment_audit (sql/migrations): "
        "it has no down file (schema_migrations in the backup)"
    )
    assert count(db.dsn, "schema_migrations") == 0  # the restore did not run


# ---- integrity ------------------------------------------------------------------------

CHECKS = [
    {"name": "tracks", "query": "SELECT count(*) FROM tracks", "op": ">", "threshold": 0},
    {
        "name": "orphaned enrichment_status rows",
        "query": "SELECT count(*) FROM enrichment_status s "
        "WHERE NOT EXISTS (SELECT 1 FROM tracks t WHERE t.id = s.track_id)",
        "op": "==",
        "threshold": 0,
    },
    {
        "name": "tracks without a title",
        "query": "SELECT count(*) FROM tracks WHERE title IS NULL OR title = ''",
        "op": "==",
        "threshold": 0,
    },
    {"name": "percent sign", "query": "SELECT 7 % 4", "op": "==", "threshold": 3},
]


@pytest.mark.asyncio
async def test_integrity_checks_that_hold(db: PgServer) -> None:
    outcome = await actions(db).integrity(step("database.integrity", checks=CHECKS))
    assert outcome.output == (
        "all 4 integrity check(s) hold: tracks = 50 (expected > 0); orphaned enrichment_status "
        "rows = 0 (expected == 0); tracks without a title = 0 (expected == 0); "
        "percent sign = 3 (expected == 3)"
    )


@pytest.mark.asyncio
async def test_integrity_names_every_check_that_fails_and_cannot_write(db: PgServer) -> None:
    run(db.dsn, "ALTER TABLE enrichment_status DROP CONSTRAINT enrichment_status_track_id_fkey")
    run(db.dsn, "DELETE FROM tracks WHERE id IN (SELECT track_id FROM enrichment_status LIMIT 3)")
    checks = [
        *CHECKS,
        {"name": "a write", "query": "DELETE FROM tracks RETURNING 1", "op": ">=", "threshold": 0},
        {
            "name": "two statements",
            "query": "SELECT 1; DELETE FROM tracks",
            "op": ">=",
            "threshold": 0,
        },
        {"name": "slow", "query": "SELECT pg_sleep(5)::text::int", "op": ">=", "threshold": 0},
        {"name": "text", "query": "SELECT 'many'", "op": ">=", "threshold": 0},
    ]
    with pytest.raises(ActionFailed) as failed:
        await actions(db).integrity(
            step("database.integrity", checks=checks, statement_timeout=0.3)
        )
    message = str(failed.value)
    assert message.startswith("5 of 8 integrity check(s) do not hold: ")
    assert "orphaned enrichment_status rows = 3 (expected == 0)" in message
    assert "a write: cannot execute DELETE in a read-only transaction" in message
    assert "two statements: cannot insert multiple commands into a prepared statement" in message
    assert "slow: canceling statement due to statement timeout" in message
    assert "text: returned 'many', not a number" in message
    assert count(db.dsn, "tracks") == 47


@pytest.mark.asyncio
async def test_a_bad_check_is_refused_before_any_query() -> None:
    with pytest.raises(ActionFailed, match=r"op '=>'; expected one of > >= < <= == !="):
        await DatabaseActions("postgresql://u@127.0.0.1:1/db").integrity(
            step(
                "database.integrity",
                checks=[{"name": "x", "query": "SELECT 1", "op": "=>", "threshold": 1}],
            )
        )


# ---- the password ---------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_password_never_appears_in_a_message(db: PgServer, tmp_path: Path) -> None:
    wrong = db.dsn.replace(db.password, "s3cret-not-the-password")
    database = actions(db, dsn=wrong)
    good = await actions(db).backup(step("database.backup", backup_dir=str(tmp_path)))
    assert Path(good.data["file"]).exists()
    failures: list[str] = []
    for call in (
        database.restore(step("database.restore", backup_dir=str(tmp_path))),
        database.dump(step("database.dump", dir=str(tmp_path))),
        database.backup(step("database.backup", backup_dir=str(tmp_path / "b"))),
        database.integrity(step("database.integrity", checks=CHECKS)),
    ):
        with pytest.raises(ActionFailed) as failed:
            await call
        failures.append(str(failed.value))
    for message in failures:
        assert "s3cret-not-the-password" not in message
        assert "password authentication failed" in message
    assert count(db.dsn, "tracks") == 50


def fake_tool(folder: Path, log: Path) -> PgTools:
    """psql and pg_dump stand-ins that record their argv and env, then fail loudly."""
    folder.mkdir()
    script = (
        "#!/bin/sh\n"
        f'printf "%s\\n" "$0" "$@" > {log}.argv\n'
        f'printf "%s" "$PGPASSWORD" > {log}.password\n'
        'echo "error: connection to server failed, password was $PGPASSWORD" >&2\n'
        "exit 2\n"
    )
    for name in ("psql", "pg_dump"):
        path = folder / name
        path.write_text(script)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return PgTools.locate(folder)


@pytest.mark.asyncio
async def test_the_password_travels_only_in_pgpassword(tmp_path: Path) -> None:
    secret = "p@ss w0rd;$(echo)"
    dsn = f"host=db.internal port=5433 user=musicdb_user dbname=musicdb password='{secret}'"
    log = tmp_path / "call"
    database = DatabaseActions(dsn, tools=fake_tool(tmp_path / "bin", log))
    with pytest.raises(ActionFailed) as failed:
        await database.dump(step("database.dump", dir=str(tmp_path / "out")))
    argv = log.with_suffix(".argv").read_text().splitlines()
    assert argv[1:7] == ["--no-password", "-h", "db.internal", "-p", "5433", "-U"]
    assert "musicdb" in argv and all(secret not in arg for arg in argv)
    assert log.with_suffix(".password").read_text() == secret
    assert secret not in str(failed.value)
    assert "password was ***" in str(failed.value)
    assert list((tmp_path / "out").iterdir()) == []  # no partial file


@pytest.mark.asyncio
@pytest.mark.parametrize("how", ["feeder fails", "input ends early"])
async def test_psql_never_commits_a_restore_whose_feed_did_not_finish(
    db: PgServer, how: str
) -> None:
    """The reason for BEGIN in the stream rather than --single-transaction."""
    target = PgTarget.from_dsn(db.dsn)

    async def feed() -> AsyncGenerator[bytes, None]:
        yield b"BEGIN;\nDROP TABLE enrichment_status;\nDELETE FROM tracks;\n"
        await asyncio.sleep(0.2)  # psql has run both statements by now
        if how == "feeder fails":
            raise RuntimeError("gzip stream broke")

    tools = PgTools.locate(db.bin_dir)
    argv = [tools.psql, "--no-psqlrc", "-q", "-v", "ON_ERROR_STOP=1", *target.args()]
    if how == "feeder fails":
        with pytest.raises(RuntimeError):
            await run_tool(argv, target.env(), feed=feed())
    else:
        assert (await run_tool(argv, target.env(), feed=feed())).returncode == 0
    assert count(db.dsn, "tracks") == 50
    assert "enrichment_status" in tables(db.dsn)


def test_a_damaged_dump_never_scans_as_complete(tmp_path: Path) -> None:
    dump = tmp_path / "x.sql"
    body = (
        "--\n-- PostgreSQL database dump\n--\n\n"
        "CREATE FUNCTION public.f() RETURNS trigger\n    LANGUAGE plpgsql\n    AS $$\n"
        "BEGIN\n  COMMIT;\nEND;\n$$;\n"
        "COPY public.schema_migrations (version, applied_at, description) FROM stdin;\n"
        "008_x\t2025-06-01 10:00:00.5+00\t\\N\nmedallion/001_y\t\\N\ttab\\there\n\\.\n"
        "\n--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict abc\n"
    )
    dump.write_text(body)
    scan = scan_dump(dump)
    assert scan.migrations == (("008_x", 1748772000.5), ("medallion/001_y", None))
    dump.write_text(body.replace("-- PostgreSQL database dump complete", ""))
    with pytest.raises(Exception, match="is not a complete pg_dump"):
        scan_dump(dump)
    dump.write_text("COMMIT;\n" + body)
    with pytest.raises(Exception, match="not a plain single-database pg_dump"):
        scan_dump(dump)
