"""What is PostgreSQL's own in the journal: versions, the masked password, one daemon per stack.

The store contract itself runs over PostgreSQL in test_journal.py and the other
*_journal.py files (conftest's `BACKENDS`); here is what SQLite has no counterpart
for, and one daemon end to end on a PostgreSQL journal.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

from tests.integration.daemon_stage import staged_daemon
from watchdog.demo import POLICY, free_port
from watchdog.store.journal import open_journal
from watchdog.store.pg_base import PgDaemonLock
from watchdog.store.schema import SCHEMA_VERSION
from watchdog.store.sqlite_base import JournalLocked


@pytest.fixture
def pg_url(journal_database: str) -> Iterator[str]:
    """A journal URL naming a fresh schema, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    yield f"{journal_database}?schema={schema}"
    with psycopg.connect(journal_database, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def schema_of(url: str) -> str:
    return urlsplit(url).query.removeprefix("schema=")


def masked_form(url: str) -> str:
    parts = urlsplit(url)
    return f"postgresql://{parts.username}:***@{parts.hostname}:{parts.port}{parts.path}"


def test_versions_are_recorded_and_a_newer_journal_is_refused_without_the_password(
    pg_url: str, journal_database: str
) -> None:
    open_journal(pg_url).close()
    open_journal(pg_url).close()  # a second open applies nothing again
    schema = schema_of(pg_url)
    with psycopg.connect(journal_database, autocommit=True) as conn:
        table = sql.Identifier(schema, "schema_versions")
        versions = conn.execute(sql.SQL("SELECT version FROM {} ORDER BY 1").format(table))
        assert [v for (v,) in versions.fetchall()] == list(range(1, SCHEMA_VERSION + 1))
        conn.execute(sql.SQL("INSERT INTO {} (version) VALUES (99)").format(table))
    with pytest.raises(RuntimeError) as caught:
        open_journal(pg_url)
    message = str(caught.value)
    assert message == (
        f"journal {masked_form(pg_url)}?schema={schema} (schema {schema}) has schema version "
        f"99, newer than the {SCHEMA_VERSION} this watchdog understands; upgrade watchdog"
    )
    assert str(urlsplit(pg_url).password) not in message


def test_a_refused_connection_names_the_url_with_its_password_masked(pg_url: str) -> None:
    wrong = pg_url.replace(f":{urlsplit(pg_url).password}@", ":not-the-password-4711@")
    with pytest.raises(RuntimeError, match="cannot open the journal") as caught:
        open_journal(wrong)
    assert masked_form(pg_url) in str(caught.value)
    assert "not-the-password-4711" not in str(caught.value)
    with pytest.raises(ValueError, match="not a plain lower-case name"):
        open_journal(pg_url.split("?", maxsplit=1)[0] + "?schema=Bad-Name")


def test_one_daemon_per_stack_and_schema_holds_the_session_lock(pg_url: str) -> None:
    with PgDaemonLock(pg_url, "songnodes"):
        with pytest.raises(JournalLocked) as caught:
            PgDaemonLock(pg_url, "songnodes").acquire()
        assert str(caught.value) == (
            f"another watchdog is already running stack 'songnodes' on the journal "
            f"{masked_form(pg_url)}?schema={schema_of(pg_url)}; stop it first, or give this "
            "one its own ?schema="
        )
        with PgDaemonLock(pg_url, "other-stack"):  # another stack shares the database
            pass
    with PgDaemonLock(pg_url, "songnodes"):  # released with its session
        pass


@pytest.mark.slow
def test_the_daemon_on_a_pg_journal_handles_a_crash_and_refuses_a_second_daemon(
    tmp_path: Path, pg_url: str
) -> None:
    with staged_daemon(tmp_path, state=pg_url) as stage:
        incident = stage.inject_and_follow("crash", service="dlq-manager")
        assert incident["state"] == "resolved", incident["timeline"]
        assert [(s["name"], s["status"]) for s in incident["steps"]] == [
            ("restart the failed service", "succeeded")
        ]
        env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "WATCHDOG_STATE": pg_url,
               "WATCHDOG_LISTEN": f"127.0.0.1:{free_port()}", "WATCHDOG_LOG_FORMAT": "json"}
        second = subprocess.run(
            [sys.executable, "-m", "watchdog.cli", "run", "--policy", str(POLICY)],
            env=env, capture_output=True, text=True, timeout=30, check=False,
        )
    assert second.returncode == 2, second.stderr[-2000:]
    assert "another watchdog is already running stack" in second.stderr
    assert str(urlsplit(pg_url).password) not in second.stdout + second.stderr
    assert not (tmp_path / "journal.db").exists()  # the whole journal is in PostgreSQL
    listed = subprocess.run(
        [sys.executable, "-m", "watchdog.cli", "incidents", "--state", pg_url],
        env=env, capture_output=True, text=True, timeout=30, check=False,
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    [row] = [line.split() for line in listed.stdout.splitlines() if line.startswith(
        f"{incident['id']} ")]
    assert row[1:5] == ["P2", "service_failure", "dlq-manager", "resolved"]
    journal = open_journal(pg_url)
    try:
        stored = journal.incident(incident["id"])
        assert (stored.state, stored.key) == ("resolved", "service_failure/dlq-manager")
        assert [s.status for s in journal.steps(incident["id"])] == ["succeeded"]
    finally:
        journal.close()
