"""The throwaway PostgreSQL server, its musicdb schema and the enrichment stub reading it.

These prove the test harness itself is real: the foreign keys cascade, the CHECK
constraints refuse bad confidences, and the stub's loaded configuration follows the
table only after a reload — the properties the configuration tests rely on.
"""

from __future__ import annotations

import glob
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests import pg_schema, pgserver
from tests.enrichment_stub import EnrichmentStub, enrichment_stub
from tests.pgserver import PgServer


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    """An HTTP client that never goes through a proxy (every address is loopback)."""
    with httpx.Client(trust_env=False, timeout=5.0) as client:
        yield client


@pytest.fixture
def stub(musicdb: PgServer) -> Iterator[EnrichmentStub]:
    with enrichment_stub(musicdb.dsn) as running:
        yield running


def count(conn: psycopg.Connection[tuple[object, ...]], query: str) -> int:
    row = conn.execute(query).fetchone()
    assert row is not None
    return int(str(row[0]))


def test_server_answers_as_musicdb_user_and_as_superuser(musicdb: PgServer) -> None:
    assert musicdb.host == "127.0.0.1"
    with psycopg.connect(musicdb.dsn) as conn:
        user, database, address = conn.execute(
            "SELECT current_user, current_database(), host(inet_server_addr())"
        ).fetchall()[0]
        assert (user, database, address) == ("musicdb_user", "musicdb", "127.0.0.1")
        owner = conn.execute("SELECT nspowner::regrole::text FROM pg_namespace"
                             " WHERE nspname = 'public'").fetchall()[0][0]
        assert owner == "musicdb_user"
    with psycopg.connect(musicdb.admin_dsn) as admin:
        assert admin.execute("SHOW is_superuser").fetchall()[0][0] == "on"
        assert admin.execute("SHOW fsync").fetchall()[0][0] == "off"
    wrong = musicdb.dsn.replace(musicdb.password, "not-the-password")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong).close()


def test_seed_has_fourteen_fields_with_spotify_in_twelve(musicdb: PgServer) -> None:
    with psycopg.connect(musicdb.dsn) as conn:
        assert count(conn, "SELECT count(*) FROM metadata_enrichment_config") == 14
        spotify = count(conn, """
            SELECT count(*) FROM metadata_enrichment_config
            WHERE 'spotify' IN (priority_1_provider, priority_2_provider,
                                priority_3_provider, priority_4_provider)""")
        assert spotify == pg_schema.SPOTIFY_ROWS == 12
        assert count(conn, "SELECT count(*) FROM enrichment_providers") == 5
        assert count(conn, "SELECT count(*) FROM provider_performance_history") == (
            pg_schema.HISTORY_ROWS)
        assert count(conn, "SELECT count(*) FROM tracks") == pg_schema.TRACK_ROWS
        assert count(conn, "SELECT count(*) FROM enrichment_status") == pg_schema.STATUS_ROWS
        assert count(conn, "SELECT count(*) FROM schema_migrations") == 0
        rules = conn.execute("SELECT validation_rules FROM metadata_enrichment_config"
                             " WHERE metadata_field = 'bpm'").fetchall()[0][0]
        assert rules == {"min": 40, "max": 220}


def test_deleting_a_config_row_cascades_into_the_history(musicdb: PgServer) -> None:
    with psycopg.connect(musicdb.dsn) as conn:
        isrc = count(conn, "SELECT count(*) FROM provider_performance_history"
                           " WHERE metadata_field = 'isrc'")
        assert isrc == 2
        conn.execute("DELETE FROM metadata_enrichment_config WHERE metadata_field = 'isrc'")
        assert count(conn, "SELECT count(*) FROM provider_performance_history") == (
            pg_schema.HISTORY_ROWS - isrc)
        assert count(conn, "SELECT count(*) FROM provider_performance_history"
                           " WHERE metadata_field = 'isrc'") == 0


def test_a_confidence_out_of_range_is_refused(musicdb: PgServer) -> None:
    with psycopg.connect(musicdb.dsn) as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("UPDATE metadata_enrichment_config SET priority_1_confidence = 1.7"
                     " WHERE metadata_field = 'bpm'")


def test_reset_undoes_a_test_s_changes_and_takes_extra_rows(musicdb: PgServer) -> None:
    with psycopg.connect(musicdb.dsn) as conn:
        conn.execute("TRUNCATE metadata_enrichment_config CASCADE")
        conn.execute("INSERT INTO schema_migrations (version) VALUES ('008')")
    started = time.monotonic()
    musicdb.reset_musicdb()
    elapsed = time.monotonic() - started
    with psycopg.connect(musicdb.dsn) as conn:
        assert count(conn, "SELECT count(*) FROM metadata_enrichment_config") == 14
        assert count(conn, "SELECT count(*) FROM provider_performance_history") == (
            pg_schema.HISTORY_ROWS)
        assert count(conn, "SELECT count(*) FROM schema_migrations") == 0
    assert elapsed < 0.3, f"reset_musicdb took {elapsed:.3f} s"
    musicdb.reset_musicdb(extra_config_rows=200)
    with psycopg.connect(musicdb.dsn) as conn:
        assert count(conn, "SELECT count(*) FROM metadata_enrichment_config") == 214
        assert count(conn, "SELECT count(*) FROM metadata_enrichment_config"
                           " WHERE metadata_field = 'field_0200'") == 1


def test_stub_serves_the_enabled_fields_and_reloads_after_an_update(
    musicdb: PgServer, stub: EnrichmentStub, http: httpx.Client
) -> None:
    assert http.get(f"{stub.url}/health").json()["connections"]["database"] == "healthy"
    config = http.get(f"{stub.url}/admin/config").json()["configuration"]
    assert config["total_fields"] == 14
    assert config["fields"]["isrc"]["providers"] == ["spotify", "musicbrainz", "beatport",
                                                     "discogs"]
    assert config["fields"]["isrc"]["last_updated"] == "2025-01-15T00:00:00"
    with psycopg.connect(musicdb.dsn) as conn:
        conn.execute("UPDATE metadata_enrichment_config SET enabled = false"
                     " WHERE metadata_field IN ('energy', 'valence')")
    # The service holds what it loaded until it is told to reload, as the real one does.
    assert http.get(f"{stub.url}/admin/config").json()["configuration"]["total_fields"] == 14
    reply = http.post(f"{stub.url}/admin/config/reload")
    assert reply.status_code == 200
    assert reply.json()["configuration"]["total_fields"] == 12
    fields = http.get(f"{stub.url}/admin/config").json()["configuration"]["fields"]
    assert "energy" not in fields and "valence" not in fields
    assert stub.reloads == 1
    providers = http.get(f"{stub.url}/admin/config/providers").json()
    assert providers["total_providers"] == 5


def test_stub_refuses_reloads_when_told_and_keeps_its_config(
    stub: EnrichmentStub, http: httpx.Client
) -> None:
    stub.fail_reloads = True
    reply = http.post(f"{stub.url}/admin/config/reload")
    assert reply.status_code == 503
    assert reply.json()["detail"].startswith("Failed to reload configuration")
    assert http.get(f"{stub.url}/admin/config").json()["configuration"]["total_fields"] == 14
    stub.fail_reloads = False
    assert http.post(f"{stub.url}/admin/config/reload").status_code == 200
    assert stub.reloads == 2


def test_stub_answers_503_when_the_table_cannot_be_read(
    musicdb: PgServer, stub: EnrichmentStub, http: httpx.Client
) -> None:
    with psycopg.connect(musicdb.dsn) as conn:
        conn.execute("ALTER TABLE metadata_enrichment_config RENAME TO config_moved_away")
    reply = http.post(f"{stub.url}/admin/config/reload")
    assert reply.status_code == 503
    assert "does not exist" in reply.json()["detail"]
    assert http.get(f"{stub.url}/admin/config").json()["configuration"]["total_fields"] == 14


def test_missing_server_binaries_say_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(glob, "glob", lambda pattern: [])
    with pytest.raises(RuntimeError, match=r"apt-get install postgresql \(run `make test`"):
        pgserver.find_bin_dir()
