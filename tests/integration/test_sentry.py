"""Sentry: the daemon's errors and failed rollbacks reach a (fake) Sentry, scrubbed.

The fake speaks Sentry's envelope endpoint and parses what arrives with
sentry-sdk's own `Envelope.deserialize`; the checks run on the raw bytes the
SDK sent, so nothing the scrubber missed can hide in a field the test forgot.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import sentry_sdk
import structlog

from tests.fakes.sentry import FakeSentry
from tests.integration.daemon_stage import songnodes_variant, staged_daemon
from watchdog.demo import wait_for
from watchdog.logs import configure_logging
from watchdog.reporting import FILTERED, init_sentry, report_failed_rollback

ROUTING_KEY = "R0ut1ngK3yS3cr3t0123456789abcdef"
SLACK_URL = "https://hooks.slack.com/services/T0WATCH/B0DOG/Xs3cr3tW3bh00kP4th"
DB_URL = "postgresql://musicdb:pg-pa55word-s3cret@127.0.0.1:5432/musicdb"
TOKEN = "w3bh00k-b3ar3r-t0k3n-s3cr3t"
SECRETS = (ROUTING_KEY, "Xs3cr3tW3bh00kP4th", "pg-pa55word-s3cret", TOKEN)


@pytest.fixture
def sentry() -> Iterator[FakeSentry]:
    with FakeSentry() as fake:
        yield fake


@pytest.fixture
def reporting(sentry: FakeSentry) -> Iterator[FakeSentry]:
    configure_logging("json", "info")
    init_sentry(sentry.dsn, secrets=[ROUTING_KEY, TOKEN, DB_URL])
    try:
        yield sentry
    finally:
        sentry_sdk.get_client().close()
        structlog.reset_defaults()


def post_page(routing_key: str, url: str, database_url: str) -> None:
    password = urlsplit(database_url).password or ""
    note = f"Authorization: Bearer {TOKEN}"
    raise RuntimeError(f"could not post to {url} with {note} ({len(password)}, {database_url})")


def test_a_logged_exception_is_reported_with_secrets_scrubbed(reporting: FakeSentry) -> None:
    log = structlog.get_logger("watchdog.daemon")
    try:
        post_page(ROUTING_KEY, SLACK_URL, DB_URL)
    except RuntimeError:
        log.exception("tick_failed", webhook_url=SLACK_URL, detail=f"key {ROUTING_KEY}")
    sentry_sdk.flush(timeout=5)

    (event,) = reporting.events()
    assert event["tags"]["log_event"] == "tick_failed"
    (error,) = event["exception"]["values"]
    assert error["type"] == "RuntimeError"
    frames = error["stacktrace"]["frames"]
    local_vars = next(f["vars"] for f in frames if f["function"] == "post_page")
    assert local_vars["routing_key"] == FILTERED  # by its name
    assert local_vars["password"] == FILTERED
    assert FILTERED in local_vars["url"] and FILTERED in local_vars["note"]  # by value
    assert event["extra"]["webhook_url"] == FILTERED
    assert FILTERED in event["extra"]["detail"]
    sent = b"".join(reporting.bodies)
    for secret in SECRETS:
        assert secret.encode() not in sent, f"{secret!r} reached Sentry"


def test_a_failed_rollback_is_reported(reporting: FakeSentry) -> None:
    report_failed_rollback(7, f"step restart failed: POST {SLACK_URL} refused")
    sentry_sdk.flush(timeout=5)
    (event,) = reporting.events()
    assert event["level"] == "error"
    assert event["tags"] == {"incident": "7", "log_event": "rollback_failed"}
    assert event["message"].startswith("rollback failed for incident 7: step restart failed")
    assert b"Xs3cr3tW3bh00kP4th" not in b"".join(reporting.bodies)


def broken_restart(data: dict[str, Any]) -> None:
    scenario = data["scenarios"]["service_failure"]
    scenario["steps"][0]["params"]["services"] = ["no-such-service"]
    scenario["next"] = None


@pytest.mark.slow
def test_the_daemon_reports_a_failed_rollback_to_sentry(
    tmp_path: Path, sentry: FakeSentry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENTRY_DSN", sentry.dsn)
    monkeypatch.setenv("WATCHDOG_WEBHOOK_TOKEN", TOKEN)
    with staged_daemon(tmp_path, songnodes_variant(tmp_path, broken_restart)) as stage:
        escalated = stage.inject_and_follow("crash", service="dlq-manager")
        assert escalated["state"] == "escalated"
        wait_for(
            lambda: any(
                e.get("tags", {}).get("log_event") == "rollback_failed" for e in sentry.events()
            ),
            20,
            "the failed rollback at Sentry",
        )
    (event,) = [e for e in sentry.events() if e["tags"].get("log_event") == "rollback_failed"]
    assert event["tags"]["incident"] == str(escalated["id"])
    assert "no-such-service" in event["message"]
    assert TOKEN.encode() not in b"".join(sentry.bodies)
