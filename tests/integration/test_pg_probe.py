"""The PostgreSQL probe against a real server: reachability, query values, and refusals."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.pgserver import PgServer, free_port
from watchdog.model import Observation
from watchdog.policy.schema import PostgresSignal
from watchdog.probes.postgres import PostgresProbe


def observe(dsn: str | None, **fields: Any) -> Observation:
    settings: dict[str, Any] = {"timeout": 2.0, "interval": 5.0, **fields}
    signal = PostgresSignal(kind="postgres", name="db", **settings)
    (observation,) = asyncio.run(PostgresProbe(signal, dsn).observe())
    return observation


def test_reachable_is_one_when_select_1_answers(musicdb: PgServer) -> None:
    seen = observe(musicdb.dsn)
    assert seen.value == 1.0 and seen.error is None
    assert f"127.0.0.1:{musicdb.port}/musicdb answers" in seen.detail


def test_unreachable_is_zero_with_the_reason_and_without_the_password(musicdb: PgServer) -> None:
    dead = musicdb.dsn.replace(f":{musicdb.port}/", f":{free_port()}/")
    seen = observe(dead)
    assert seen.value == 0.0 and seen.error is not None and "refused" in seen.error
    wrong = musicdb.dsn.replace(musicdb.password, "hunter2-wrong")
    seen = observe(wrong)
    assert seen.value == 0.0 and seen.error is not None
    assert "password authentication failed" in seen.error and "hunter2" not in seen.error


def test_query_values_from_the_real_tables(musicdb: PgServer) -> None:
    assert observe(musicdb.dsn, check="query", query="SELECT count(*) FROM tracks").value == 50.0
    orphans = (
        "SELECT count(*) FROM enrichment_status s "
        "WHERE NOT EXISTS (SELECT 1 FROM tracks t WHERE t.id = s.track_id)"
    )
    assert observe(musicdb.dsn, check="query", query=orphans).value == 0.0
    assert observe(musicdb.dsn, check="query", query="SELECT NULL").value == 0.0


def test_queries_run_read_only_and_with_a_statement_timeout(musicdb: PgServer) -> None:
    seen = observe(musicdb.dsn, check="query", query="DELETE FROM tracks RETURNING 1")
    assert seen.value is None and seen.error is not None and "read-only" in seen.error
    slow = observe(musicdb.dsn, check="query", query="SELECT pg_sleep(5)", timeout=1.0)
    assert slow.error is not None and "statement timeout" in slow.error
    not_a_number = observe(musicdb.dsn, check="query", query="SELECT 'many'")
    assert not_a_number.error is not None and "not a number" in not_a_number.error


def test_without_a_database_url_the_probe_says_what_to_set() -> None:
    seen = observe(None)
    assert seen.error is not None and "WATCHDOG_DATABASE_URL" in seen.error


@pytest.mark.parametrize("check", ["reachable", "query"])
def test_every_observation_is_stamped(musicdb: PgServer, check: str) -> None:
    seen = observe(musicdb.dsn, check=check, query="SELECT 1" if check == "query" else None)
    assert seen.signal == "db" and seen.at > 0 and seen.duration_seconds >= 0
