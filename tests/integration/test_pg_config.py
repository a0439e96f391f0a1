"""The configuration tables on a real PostgreSQL: read, restore, disable, undo.

Against the throwaway server of tests/pgserver.py, with the tables as
TARGET-STACK.md describes them (foreign keys that cascade on delete, CHECK
constraints). Each test asserts the database's own rows afterwards, and that
`provider_performance_history`, which a TRUNCATE ... CASCADE would wipe, is
untouched.
"""

from __future__ import annotations

import asyncio
import csv
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from tests import pg_schema
from tests.enrichment_stub import EnrichmentStub, enrichment_stub
from tests.lastgood_facts import seen_everything, snapshotting
from tests.pgserver import PgServer
from watchdog.actions.base import ActionFailed
from watchdog.actions.config import ConfigActions
from watchdog.actions.http import HttpActions
from watchdog.actions.pgstore import PostgresConfigStore
from watchdog.engine.lastgood import LastGood
from watchdog.model import Risk, Severity, Step
from watchdog.policyfile import load_policy
from watchdog.store.journal import Journal

CONFIG = "metadata_enrichment_config"
POLICY = Path(__file__).resolve().parents[2] / "policies" / "songnodes.yaml"


def sql(server: PgServer, query: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    with psycopg.connect(server.dsn, row_factory=dict_row, autocommit=True) as db:
        cursor = db.execute(query.encode(), params)
        return list(cursor.fetchall()) if cursor.description else []


def history(server: PgServer) -> list[dict[str, Any]]:
    return sql(server, "SELECT * FROM provider_performance_history ORDER BY id")


def corrupt(server: PgServer) -> None:
    """Scenario 4's symptoms: a NULL first provider, a provider twice, a confidence out of range."""
    sql(server, f"UPDATE {CONFIG} SET priority_1_provider = NULL WHERE metadata_field = 'bpm'")
    sql(
        server,
        f"UPDATE {CONFIG} SET priority_2_provider = priority_1_provider "
        "WHERE metadata_field = 'isrc'",
    )
    sql(server, f"UPDATE {CONFIG} SET priority_3_provider = 'nobody', updated_by = 'intruder' "
        "WHERE metadata_field = 'genre'")


def step(action: str, **params: Any) -> Step:
    return Step(action, action, Risk.SAFE, tuple(params.items()), timeout_seconds=30)


@pytest.fixture
def stub(musicdb: PgServer) -> Iterator[EnrichmentStub]:
    with enrichment_stub(musicdb.dsn) as running:
        yield running


def http_actions(client: httpx.AsyncClient, url: str) -> HttpActions:
    policy = load_policy(str(POLICY), environ={"WATCHDOG_URL_METADATA_ENRICHMENT": url})
    return HttpActions(policy, client)


def actions(
    store: PostgresConfigStore, journal: Journal, client: httpx.AsyncClient, url: str, folder: Path
) -> ConfigActions:
    return ConfigActions(store, journal, http_actions(client, url), folder)


def test_rows_read_back_as_written_and_restore_is_exact(musicdb: PgServer) -> None:
    store = PostgresConfigStore(musicdb.dsn)
    good = asyncio.run(store.read_rows(CONFIG))
    assert len(good) == pg_schema.CONFIG_ROWS
    assert [r["metadata_field"] for r in good] == sorted(r["metadata_field"] for r in good)
    before_history = history(musicdb)
    corrupt(musicdb)
    assert asyncio.run(store.read_rows(CONFIG)) != good

    summary = asyncio.run(store.replace_rows(CONFIG, good))

    assert asyncio.run(store.read_rows(CONFIG)) == good
    assert "14 row(s)" in summary
    assert history(musicdb) == before_history


def test_rows_the_snapshot_lacks_are_deleted_unless_referenced(musicdb: PgServer) -> None:
    store = PostgresConfigStore(musicdb.dsn)
    good = asyncio.run(store.read_rows(CONFIG))
    sql(musicdb, f"INSERT INTO {CONFIG} (metadata_field, priority_1_provider, enabled, field_type)"
        " VALUES ('lonely', 'spotify', true, 'metadata'), ('watched', 'spotify', true, 'metadata')")
    sql(musicdb, "INSERT INTO provider_performance_history "
        "(provider_name, metadata_field, success_count, failure_count) "
        "VALUES ('spotify', 'watched', 1, 0)")
    before_history = history(musicdb)

    summary = asyncio.run(store.replace_rows(CONFIG, good))

    rows = {r["metadata_field"]: r for r in asyncio.run(store.read_rows(CONFIG))}
    assert "lonely" not in rows, "an unreferenced extra row is deleted"
    assert rows["watched"]["enabled"] is False, "a referenced one is disabled, not deleted"
    assert "deleted ['lonely']" in summary and "disabled" in summary and "watched" in summary
    assert history(musicdb) == before_history, "no cascade into the history table"


def test_a_failure_inside_the_restore_leaves_the_table_exactly_as_it_was(
    musicdb: PgServer,
) -> None:
    store = PostgresConfigStore(musicdb.dsn)
    good = asyncio.run(store.read_rows(CONFIG))
    corrupt(musicdb)
    corrupted = asyncio.run(store.read_rows(CONFIG))
    # A failure half-way through the restore: the server refuses the 'genre' row.
    sql(musicdb, """
        CREATE FUNCTION refuse_genre() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.metadata_field = 'genre' THEN RAISE EXCEPTION 'injected failure on genre'; END IF;
          RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_genre BEFORE UPDATE ON metadata_enrichment_config
        FOR EACH ROW EXECUTE FUNCTION refuse_genre();
    """)

    with pytest.raises(ActionFailed, match=r"rolled back, the table is unchanged.*injected"):
        asyncio.run(store.replace_rows(CONFIG, good))

    assert asyncio.run(store.read_rows(CONFIG)) == corrupted


def test_backup_then_restore_through_the_actions(
    musicdb: PgServer, stub: EnrichmentStub, journal: Journal, tmp_path: Path
) -> None:
    store = PostgresConfigStore(musicdb.dsn)
    good = asyncio.run(store.read_rows(CONFIG))
    journal.save_snapshot(CONFIG, good, at=time.time())
    corrupt(musicdb)
    corrupted = asyncio.run(store.read_rows(CONFIG))
    before_history = history(musicdb)

    async def scenario() -> tuple[Any, ...]:
        async with httpx.AsyncClient() as client:
            config = actions(store, journal, client, stub.url, tmp_path / "backups")
            backup = await config.backup(step("config.backup", table=CONFIG))
            restore = await config.restore(step("config.restore", table=CONFIG))
            reload = await http_actions(client, stub.url).reload_config(
                step("config.reload", target="metadata-enrichment")
            )
            verify = await config.verify(
                step("config.verify", target="metadata-enrichment", table=CONFIG)
            )
            return backup, restore, reload, verify

    backup, restore, reload, verify = asyncio.run(scenario())

    assert asyncio.run(store.read_rows(CONFIG)) == good
    assert history(musicdb) == before_history
    assert stub.reloads >= 1 and reload.ok and verify.ok
    assert backup.data["rows"] == corrupted, "the corrupted version is kept in the journal"
    with open(backup.data["file"], newline="", encoding="utf-8") as handle:
        copied = list(csv.DictReader(handle))
    assert len(copied) == pg_schema.CONFIG_ROWS, "and in a CSV file written by COPY"
    assert {r["metadata_field"]: r["updated_by"] for r in copied}["genre"] == "intruder"
    assert "snapshot" in restore.output


def test_restore_without_a_snapshot_uses_the_policys_defaults_file(
    musicdb: PgServer, journal: Journal, tmp_path: Path
) -> None:
    store = PostgresConfigStore(musicdb.dsn)
    good = asyncio.run(store.read_rows(CONFIG))
    defaults = tmp_path / "defaults.json"
    defaults.write_text(json.dumps({"rows": good}))
    corrupt(musicdb)

    async def restore(**params: Any) -> Any:
        async with httpx.AsyncClient() as client:
            config = actions(store, journal, client, "http://127.0.0.1:9", tmp_path)
            return await config.restore(step("config.restore", table=CONFIG, **params))

    with pytest.raises(ActionFailed, match=r"no last known good snapshot .* no defaults file"):
        asyncio.run(restore())
    outcome = asyncio.run(restore(defaults=str(defaults)))
    assert "defaults file" in outcome.output
    assert asyncio.run(store.read_rows(CONFIG)) == good


@pytest.mark.parametrize("mode", ["runbook", "surgical"])
def test_provider_disable_and_exact_undo_with_an_unrelated_edit_between(
    musicdb: PgServer, journal: Journal, tmp_path: Path, mode: str
) -> None:
    store = PostgresConfigStore(musicdb.dsn)
    original = {r["metadata_field"]: r for r in asyncio.run(store.read_rows(CONFIG))}

    async def run() -> tuple[Any, str]:
        async with httpx.AsyncClient() as client:
            config = actions(store, journal, client, "http://127.0.0.1:9", tmp_path)
            outcome = await config.disable(
                step("provider.disable", table=CONFIG, provider="spotify", mode=mode)
            )
            # Someone edits a row the disable did not touch, and nothing else.
            untouched = next(f for f, r in original.items() if "spotify" not in _providers(r))
            sql(musicdb, f"UPDATE {CONFIG} SET min_acceptable_confidence = 0.42 "
                "WHERE metadata_field = %s", (untouched,))
            undone = await config.undo(CONFIG, outcome.data["before"], outcome.data["after"])
            return outcome, undone

    outcome, undone = asyncio.run(run())
    changed = {r["metadata_field"] for r in outcome.data["before"]}
    assert len(changed) == pg_schema.SPOTIFY_ROWS
    after_disable = {r["metadata_field"]: r for r in outcome.data["after"]}
    if mode == "runbook":
        assert all(r["enabled"] is False for r in after_disable.values())
    else:
        assert all("spotify" not in _providers(r) for r in after_disable.values())
        rerouted = [r for r in after_disable.values() if r["enabled"]]
        assert rerouted, "surgical mode keeps fields that have another provider"

    now = {r["metadata_field"]: r for r in asyncio.run(store.read_rows(CONFIG))}
    for field in changed:
        assert now[field] == original[field], f"{field} is exactly its before-image again"
    edited = [f for f in now if now[f] != original[f]]
    assert len(edited) == 1 and now[edited[0]]["min_acceptable_confidence"] == 0.42
    assert f"{pg_schema.SPOTIFY_ROWS} row(s)" in undone


def test_undo_leaves_alone_a_row_changed_again_since(
    musicdb: PgServer, journal: Journal, tmp_path: Path
) -> None:
    store = PostgresConfigStore(musicdb.dsn)

    async def run() -> str:
        async with httpx.AsyncClient() as client:
            config = actions(store, journal, client, "http://127.0.0.1:9", tmp_path)
            outcome = await config.disable(
                step("provider.disable", table=CONFIG, provider="spotify", mode="runbook")
            )
            sql(musicdb, f"UPDATE {CONFIG} SET updated_by = 'oncall' WHERE metadata_field = 'bpm'")
            return await config.undo(CONFIG, outcome.data["before"], outcome.data["after"])

    words = asyncio.run(run())
    rows = {r["metadata_field"]: r for r in asyncio.run(store.read_rows(CONFIG))}
    assert rows["bpm"]["updated_by"] == "oncall" and rows["bpm"]["enabled"] is False
    assert "left alone because they changed since: bpm" in words


def test_provider_enable_undoes_a_journaled_disable_once_and_then_writes_nothing(
    musicdb: PgServer, journal: Journal, tmp_path: Path
) -> None:
    """The daemon's automatic re-enable: the before-images come from the incident's journal."""
    store = PostgresConfigStore(musicdb.dsn)
    original = asyncio.run(store.read_rows(CONFIG))
    incident = journal.open_incident(
        key="provider/spotify", severity=Severity.P2, scenario="provider_failure",
        subject="spotify", state="executing", reason="test", at=time.time(), findings=(),
    )

    nothing = journal.open_incident(
        key="provider/lastfm", severity=Severity.P2, scenario="provider_failure",
        subject="lastfm", state="executing", reason="test", at=time.time(), findings=(),
    )

    async def run() -> tuple[str, str, str]:
        async with httpx.AsyncClient() as client:
            config = actions(store, journal, client, "http://127.0.0.1:9", tmp_path)
            outcome = await config.disable(
                step("provider.disable", table=CONFIG, provider="spotify", mode="surgical")
            )
            journal.add_event(
                incident, at=time.time(), kind="step_evidence", summary="disable",
                data=outcome.data,
            )
            first = await config.enable(step("provider.enable", incident=incident))
            again = await config.enable(step("provider.enable", incident=incident))
            try:
                await config.enable(step("provider.enable", incident=nothing))
            except ActionFailed as error:
                return first.output, again.output, str(error)
            raise AssertionError("an incident that disabled nothing was undone")

    first, again, refused = asyncio.run(run())
    assert asyncio.run(store.read_rows(CONFIG)) == original
    assert first.startswith(f"{pg_schema.SPOTIFY_ROWS} row(s) of {CONFIG} restored")
    assert again.startswith(f"0 row(s) of {CONFIG} restored") and "already back" in again
    assert refused == f"incident {nothing} journaled no provider.disable change: nothing to undo"


def test_a_corrupted_table_is_never_kept_as_last_known_good_even_when_no_rule_saw_it_yet(
    musicdb: PgServer, journal: Journal
) -> None:
    """The bench's 10,000-row table: the probe took longer than `settle` to see a
    corruption that landed just before the candidate was read. The candidate's own rows
    are validated, so it is refused; a clean table is kept."""
    store = PostgresConfigStore(musicdb.dsn)
    now = [1000.0]
    policy = snapshotting(CONFIG)
    last_good = LastGood(policy, store, journal, lambda: now[0], seen_everything(policy))
    sql(musicdb, f"UPDATE {CONFIG} SET priority_1_provider = NULL WHERE metadata_field = 'bpm'")

    async def settle_once() -> None:
        await last_good.tick([], {}, [])  # reads the candidate
        now[0] += 1.5
        await last_good.tick([], {}, [])  # settled: kept, or refused
        now[0] += 1.5

    asyncio.run(settle_once())
    assert journal.latest_snapshot(CONFIG) is None
    sql(musicdb, f"UPDATE {CONFIG} SET priority_1_provider = 'spotify' "
        "WHERE metadata_field = 'bpm'")
    asyncio.run(settle_once())
    kept = journal.latest_snapshot(CONFIG)
    assert kept is not None and kept.row_count == 14


def test_database_errors_never_carry_the_password(musicdb: PgServer) -> None:
    wrong = musicdb.dsn.replace(musicdb.password, "Sup3rS3cret-wrong")
    with pytest.raises(ActionFailed) as caught:
        asyncio.run(PostgresConfigStore(wrong).read_rows(CONFIG))
    assert "Sup3rS3cret" not in str(caught.value)
    assert "password authentication failed" in str(caught.value)
    with pytest.raises(ActionFailed, match="does not exist"):
        asyncio.run(PostgresConfigStore(musicdb.dsn).read_rows("no_such_table"))


def _providers(row: dict[str, Any]) -> list[str]:
    return [row[f"priority_{n}_provider"] for n in range(1, 5) if row[f"priority_{n}_provider"]]
