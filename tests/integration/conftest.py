"""Shared fixtures for integration tests."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.integration.notify_stage import Vendors, vendors
from tests.pgserver import USER, PgServer
from watchdog.sandbox.stack import SandboxStack
from watchdog.store.journal import Journal, open_journal

#: The backends the journal contract runs over (tests/integration/test_journal.py and
#: the other *_journal.py files, through `journal_url`).
BACKENDS = ["sqlite", "postgresql"]
JOURNAL_DATABASE = "wdjournal"


@pytest.fixture
def sandbox_stack(tmp_path: Path) -> Iterator[SandboxStack]:
    """A running sandbox (real processes on 127.0.0.1) in a fresh state folder."""
    with SandboxStack(tmp_path / "sandbox") as stack:
        yield stack


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    """A fresh SQLite journal in the test's folder."""
    opened = open_journal(str(tmp_path / "journal.db"))
    yield opened
    opened.close()


@pytest.fixture
def fakes() -> Iterator[Vendors]:
    """PagerDuty, Opsgenie, Slack and Sentry receivers on 127.0.0.1, each payload checked
    against VENDOR-FACTS.md (tests/fakes)."""
    with vendors() as running:
        yield running


@pytest.fixture(scope="session")
def journal_database(postgres: PgServer) -> str:
    """A database for PostgreSQL journals on the worker's one server; its URL, password in."""
    with psycopg.connect(postgres.admin_dsn_for("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(JOURNAL_DATABASE), sql.Identifier(USER)))
    return postgres.dsn.rsplit("/", 1)[0] + f"/{JOURNAL_DATABASE}"


@pytest.fixture(params=BACKENDS)
def journal_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh store per test: a SQLite file, or a PostgreSQL schema dropped afterwards
    (a schema is created in milliseconds; a database would take a checkpoint)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state' / 'journal.db'}"
        return
    base: str = request.getfixturevalue("journal_database")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    yield f"{base}?schema={schema}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def open_more(journal_url: str) -> Iterator[Callable[[], Journal]]:
    """Open further handles on the same store; all are closed after the test."""
    opened: list[Journal] = []

    def _open() -> Journal:
        journal = open_journal(journal_url)
        opened.append(journal)
        return journal

    yield _open
    for journal in opened:
        journal.close()
