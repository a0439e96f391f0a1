"""The one scrubber: what it finds in the settings and the policy, and every output it guards.

Each test here failed on the code before the scrubber existed: the CLI printed
`--state postgresql://watchdog:S3cretPW@db/wd` whole, errors naming
WATCHDOG_CONFIG_STORE printed its URL, the log pipeline had no scrubber, the
broker and Redis passwords were not among Sentry's secrets, and the journal
was created 0644.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from watchdog.logs import configure_logging
from watchdog.policyfile import load_policy
from watchdog.scrub import (
    FILTERED,
    forget_secrets,
    register_secrets,
    register_startup_secrets,
    scrub_text,
    secrets_in,
)
from watchdog.settings import Settings
from watchdog.store.sqlite import SqliteJournal

POLICY = Path(__file__).resolve().parents[2] / "policies" / "songnodes.yaml"
PASSWORD = "S3cretPW-canary"


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()
    structlog.reset_defaults()


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "watchdog.cli", *args],
        capture_output=True, text=True, timeout=60, env={**os.environ, **env}, check=False,
    )


def test_a_state_url_with_a_password_is_printed_without_it(tmp_path: Path) -> None:
    url = f"postgresql://watchdog:{PASSWORD}@127.0.0.1:1/wd"  # nothing listens on port 1
    run = cli("run", "--policy", str(POLICY), "--state", url, env={})
    assert run.returncode == 2, run.stderr
    assert PASSWORD not in run.stdout + run.stderr
    # masked as ***, and the CLI scrubber writes any URL password as [Filtered]
    assert "cannot open the journal postgresql://watchdog:[Filtered]@127.0.0.1:1/wd" in run.stderr


def test_an_error_naming_the_config_store_hides_its_password(tmp_path: Path) -> None:
    run = cli(
        "rollback", "--undo", "1", "--policy", str(POLICY),
        env={
            "WATCHDOG_CONFIG_STORE": f"ftp://watchdog:{PASSWORD}@db/wd",
            "WATCHDOG_STATE": str(tmp_path / "journal.db"),
        },
    )
    assert run.returncode == 2
    assert "WATCHDOG_CONFIG_STORE" in run.stderr
    assert PASSWORD not in run.stdout + run.stderr


def test_the_policy_and_the_settings_name_their_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_RABBITMQ_PASSWORD", "rabbit-canary")
    monkeypatch.setenv("WATCHDOG_REDIS_PASSWORD", "redis-canary")
    assert {"rabbit-canary", "redis-canary"} <= set(secrets_in(load_policy(POLICY)))
    settings = Settings(
        database_url=f"postgresql://u:{PASSWORD}@h/db",
        webhook_token="tok-canary",
        sentry_dsn="http://dsnkey-canary@127.0.0.1:1/2",
    )
    found = set(secrets_in(settings))
    assert {PASSWORD, "tok-canary", "dsnkey-canary"} <= found


def test_every_log_line_is_scrubbed_event_and_nested_values(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WATCHDOG_REDIS_PASSWORD", "redis-canary")
    register_startup_secrets(load_policy(POLICY))
    configure_logging("json", "info")
    log = structlog.get_logger("test")
    try:
        raise RuntimeError("AUTH redis-canary refused")
    except RuntimeError:
        log.exception(
            "probe redis-canary failed",
            nested={"deep": ["amqp://bob:hunter2-x@mq/"]},
            header="Authorization: Bearer abcdef123",
        )
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    text = json.dumps(line)
    for secret in ("redis-canary", "hunter2-x", "abcdef123"):
        assert secret not in text
    assert line["event"] == f"probe {FILTERED} failed"
    assert line["nested"]["deep"] == [f"amqp://bob:{FILTERED}@mq/"]


def test_scrubbing_is_one_registry_short_values_ignored() -> None:
    register_secrets(["abc", "longer-secret", None, ""])
    assert scrub_text("abc longer-secret") == f"abc {FILTERED}"


def test_the_journal_and_its_wal_are_private(tmp_path: Path) -> None:
    previous = os.umask(0o022)  # what a shell gives; the file must not depend on it
    journal = SqliteJournal(tmp_path / "journal.db")
    try:
        journal.set_flag("paused", "0", at=1.0)
        files = sorted(tmp_path.glob("journal.db*"))
        assert {f.name for f in files} >= {"journal.db", "journal.db-wal", "journal.db-shm"}
        for file in files:
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
    finally:
        journal.close()
        os.umask(previous)
