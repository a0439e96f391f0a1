"""Shared fixtures for integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.notify_stage import Vendors, vendors
from watchdog.sandbox.stack import SandboxStack
from watchdog.store.journal import Journal, open_journal


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
