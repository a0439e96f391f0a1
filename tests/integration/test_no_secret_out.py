"""No secret out, proven once for everything (issue 13, point 4).

In the manner of Alertmanager's `AssertNotifyLeaksNoSecret`: every secret
setting gets a distinct canary value, then the test drives every output the
watchdog has — every notifier (success, 401, 403, 429, 500, connection
refused), every action of the policy failing with the database URL and the
broker credentials in play, the CLI error paths that involve a secret
setting, the HTTP API and the web page, Sentry events, the structured log
lines and a dump of every row of every table of the journal — and finds no
canary in any of them. Local fakes only (tests/fakes), closed ports for the
database and the stack: nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sentry_sdk
import structlog
import yaml

from tests.fakes.sentry import FakeSentry
from tests.fakes.vendors import FakeOpsgenie, FakePagerDuty, FakeSlack, FakeWebhook
from tests.integration.notify_stage import drain, open_p1
from tests.served import served
from watchdog.actions.base import ActionFailed
from watchdog.actions.config import ConfigActions
from watchdog.actions.database import DatabaseActions
from watchdog.actions.http import HttpActions
from watchdog.actions.pgstore import PostgresConfigStore
from watchdog.actions.registry import build_handlers
from watchdog.api.app import create_app
from watchdog.commands.daemonkeys import register_daemon_secrets
from watchdog.engine.health import Health
from watchdog.keys import new_key
from watchdog.logs import configure_logging
from watchdog.metrics import Metrics
from watchdog.model import Risk, Step
from watchdog.notify.channels import build_channels
from watchdog.notify.outbox import Outbox
from watchdog.notify.retry import RetryPolicy
from watchdog.policyfile import load_policy
from watchdog.reporting import init_sentry, report_failed_rollback
from watchdog.scrub import forget_secrets
from watchdog.settings import Settings
from watchdog.store.journal import open_journal
from watchdog.store.sqlite import SqliteJournal

POLICY = Path(__file__).resolve().parents[2] / "policies" / "songnodes.yaml"
CLOSED = "127.0.0.1:1"  # nothing listens on port 1: every connection is refused at once

CANARY = {
    "pagerduty": "CANARYpd0000000000000000000000pd",  # PagerDuty keys are 32 characters
    "opsgenie": "CANARY-opsgenie-api-key-7f3a",
    "slack": "CANARY-slack-webhook-path-9b1c",
    "webhook": "CANARY-webhook-bearer-token-4d2e",
    "database": "CANARY-database-password-5e6f",
    "store": "CANARY-config-store-password-8a9b",
    "pgpassword": "CANARY-pgpassword-1c2d",
    "rabbitmq": "CANARY-rabbitmq-password-3e4f",
    "redis": "CANARY-redis-password-5a6b",
    # Keys must be strong enough for `watchdog run` to start (watchdog/keys.py).
    "am_token": "CANARYamT" + new_key(),
    "am_password": "CANARYamP" + new_key(),
    "read_token": "CANARYrdT" + new_key(),
    "sentry": "CANARYsentrykey0123456789abcdef",
}
FAILURES = (401, 403, 429, 500)


def find_canaries(where: str, text: str | bytes, *, allowed: tuple[str, ...] = ()) -> None:
    """The assertion of the whole file: no canary in `text`."""
    data = text.encode() if isinstance(text, str) else text
    leaked = [
        name for name, value in CANARY.items() if value.encode() in data and name not in allowed
    ]
    assert not leaked, f"{where} carries the canary of {leaked}"


def policy_on_closed_ports(folder: Path) -> Path:
    """songnodes.yaml with every target on a closed port: probes and actions fail fast."""
    data = yaml.safe_load(POLICY.read_text())
    for target in data["targets"].values():
        target["url"] = f"http://{CLOSED}" if "://" in target["url"] else CLOSED
    path = folder / "policy.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def environment(folder: Path, vendors: dict[str, Any], sentry: FakeSentry) -> dict[str, str]:
    return {
        "WATCHDOG_PAGERDUTY_ROUTING_KEY": CANARY["pagerduty"],
        "WATCHDOG_PAGERDUTY_URL": vendors["pagerduty"].url,
        "WATCHDOG_OPSGENIE_API_KEY": CANARY["opsgenie"],
        "WATCHDOG_OPSGENIE_URL": vendors["opsgenie"].url,
        "WATCHDOG_SLACK_WEBHOOK_URL": vendors["slack"].webhook_url,
        "WATCHDOG_WEBHOOK_URL": vendors["webhook"].hook_url,
        "WATCHDOG_WEBHOOK_TOKEN": CANARY["webhook"],
        "WATCHDOG_DATABASE_URL": f"postgresql://musicdb:{CANARY['database']}@{CLOSED}/musicdb",
        "WATCHDOG_CONFIG_STORE": f"postgresql://config:{CANARY['store']}@{CLOSED}/musicdb",
        "PGPASSWORD": CANARY["pgpassword"],
        "WATCHDOG_RABBITMQ_PASSWORD": CANARY["rabbitmq"],
        "WATCHDOG_REDIS_PASSWORD": CANARY["redis"],
        "WATCHDOG_ALERTMANAGER_TOKEN": CANARY["am_token"],
        "WATCHDOG_READ_TOKEN": CANARY["read_token"],
        "WATCHDOG_ALERTMANAGER_USERNAME": "alertmanager",
        "WATCHDOG_ALERTMANAGER_PASSWORD": CANARY["am_password"],
        "SENTRY_DSN": sentry.dsn,
        "WATCHDOG_STATE": str(folder / "journal.db"),
        "WATCHDOG_BACKUP_DIR": str(folder / "backups"),
        "WATCHDOG_LOG_FORMAT": "json",
    }


@pytest.fixture
def sentry() -> Iterator[FakeSentry]:
    with FakeSentry(public_key=CANARY["sentry"]) as fake:
        yield fake


@pytest.fixture
def vendors() -> Iterator[dict[str, Any]]:
    fakes: dict[str, Any] = {
        "pagerduty": FakePagerDuty(CANARY["pagerduty"]),
        "opsgenie": FakeOpsgenie(CANARY["opsgenie"]),
        "slack": FakeSlack(f"/services/T0/B0/{CANARY['slack']}"),
        "webhook": FakeWebhook(CANARY["webhook"]),
    }
    for fake in fakes.values():
        fake.__enter__()
    try:
        yield fakes
    finally:
        for fake in fakes.values():
            fake.__exit__(None, None, None)


def outbox(settings: Settings, policy: Any, journal: SqliteJournal, client: httpx.AsyncClient,
           *, attempts: int) -> Outbox:
    return Outbox(
        spec=policy.notify,
        stack=policy.stack.name,
        journal=journal,
        channels=build_channels(settings, policy.notify),
        metrics=Metrics(),
        client=client,
        clock=time.time,
        public_url=settings.public_url,
        retry=RetryPolicy(
            base_seconds=0.01, cap_seconds=0.05, timeout_seconds=2, max_attempts=attempts
        ),
        poll_seconds=0.01,
    )


async def drive_notifiers(
    settings: Settings, policy: Any, journal: SqliteJournal, vendors: dict[str, Any]
) -> None:
    """A page per case: delivered at once, after each vendor failure, and to nobody listening."""
    async with httpx.AsyncClient() as client:
        box = outbox(settings, policy, journal, client, attempts=5)
        cases: list[int | None] = [None, *FAILURES]
        for number, status in enumerate(cases):
            if status is not None:
                for fake in vendors.values():
                    fake.fail_next(1, status=status, retry_after="0" if status == 429 else None)
            incident = open_p1(journal, at=1_000.0 + number, key=f"case-{number}")
            box.incident_moved(incident, "triaged", "awaiting_approval", "needs a lead")
            await drain(box, journal)
        refused = settings.model_copy(
            update={"pagerduty_url": f"http://{CLOSED}", "opsgenie_url": f"http://{CLOSED}"}
        )
        box = outbox(refused, policy, journal, client, attempts=2)
        incident = open_p1(journal, at=2_000.0, key="refused")
        box.incident_moved(incident, "triaged", "awaiting_approval", "needs a lead")
        await drain(box, journal)
    for fake in vendors.values():
        for request in fake.received:
            find_canaries(f"{fake.name}'s answer", request.answer)


async def drive_actions(
    settings: Settings, policy: Any, journal: SqliteJournal, folder: Path
) -> list[str]:
    """Every step of every scenario of the policy, run against closed ports; what each said."""
    said: list[str] = []
    assert settings.database_url and settings.config_store
    async with httpx.AsyncClient() as client:
        http = HttpActions(policy, client)
        store = PostgresConfigStore(settings.config_store, timeout=1)
        handlers = build_handlers(
            http=http,
            orchestrator=None,
            config=ConfigActions(store, journal, http, folder / "backups"),
            protected=policy.stack.protected_services,
            database=DatabaseActions(settings.database_url, connect_timeout=1),
        )
        for scenario in policy.scenarios.values():
            for spec in scenario.steps:
                handler = handlers.get(spec.action)
                if handler is None or spec.action == "wait":
                    continue
                step = Step(spec.name, spec.action, Risk.SAFE, tuple(spec.params.items()), True, 2)
                try:
                    said.append(str(await handler(step)))
                except (ActionFailed, OSError, ValueError, KeyError) as error:
                    structlog.get_logger("test").error("step_failed", step=step.name, error=error)
                    said.append(f"{type(error).__name__}: {error}")
    assert any("database" in s or "5432" in s or "port 1" in s for s in said), said
    return said


def run_cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "watchdog.cli", *args],
        capture_output=True, text=True, timeout=60, env={**os.environ, **env}, check=False,
    )
    assert done.returncode != 0 or args[0] == "pause", (args, done.stdout, done.stderr)
    return done.stdout + done.stderr


def drive_cli(env: dict[str, str], policy: Path, folder: Path) -> None:
    """The CLI errors that involve a secret setting, each in its own process."""
    bad_state = f"postgresql://wd:{CANARY['database']}@{CLOSED}/wd"
    store_is_bogus = {**env, "WATCHDOG_CONFIG_STORE": f"ftp://u:{CANARY['store']}@{CLOSED}/x"}
    runs = {
        "run --state URL": run_cli(env, "run", "--policy", str(policy), "--state", bad_state),
        "check": run_cli(env, "check", "--policy", str(policy)),
        "config diff, bad store": run_cli(store_is_bogus, "config", "diff", "--policy",
                                          str(policy)),
        "rollback --undo, store down": run_cli(env, "rollback", "--undo", "1", "--policy",
                                               str(policy)),
        "rollback --database, db down": run_cli(env, "rollback", "--database", "--policy",
                                                str(policy)),
    }
    for name, text in runs.items():
        find_canaries(f"`watchdog {name}`", text)
    assert "wd:[Filtered]@" in runs["run --state URL"]
    private = folder / "cli" / "journal.db"
    refused = run_cli(env, "pause", "--state", str(private))
    assert "no journal at" in refused and not private.exists()  # a typo makes no journal
    # What `run` makes before it listens (here on a busy port), under its umask (077).
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        run_cli(env, "run", "--policy", str(policy), "--state", str(private),
                "--listen", f"127.0.0.1:{busy.getsockname()[1]}")
    assert stat.S_IMODE(private.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(private.with_name("journal.db.lock").stat().st_mode) == 0o600
    open_journal(str(private)).close()  # the journal file itself, whatever the umask
    assert stat.S_IMODE(private.stat().st_mode) == 0o600


class RefusedSink:
    """The receiver must refuse wrong credentials before anything reaches the sink."""

    async def receive(self, alerts: list[Any], **context: Any) -> Any:
        raise AssertionError("an alert with wrong credentials was accepted")


def drive_api(journal: SqliteJournal) -> None:
    """Every read route and the web page, and the receiver refusing wrong credentials."""
    app = create_app(journal, Metrics(), Health(started_at=0.0), time.time, alerts=RefusedSink())
    with served(app) as base, httpx.Client(base_url=base, timeout=10) as http:
        ids = [i.id for i in journal.list_incidents()]
        for credentials in ({"Authorization": "Bearer wrong"}, {}):
            answer = http.post("/api/alertmanager", json={"alerts": []}, headers=credentials)
            assert answer.status_code >= 400, answer.text
            find_canaries(f"the receiver's {answer.status_code}", answer.content)
        paths = ["/healthz", "/metrics", "/incidents", "/ui/"]
        paths += [f"/incidents/{i}" for i in ids] + [f"/ui/incidents/{i}" for i in ids]
        for path in paths:
            answer = http.get(path)
            find_canaries(f"GET {path} ({answer.status_code})", answer.content)
            find_canaries(f"GET {path} headers", str(answer.headers))


def drive_sentry(sentry: FakeSentry) -> None:
    """An error logged with secrets in its message, its values and its frame locals."""
    database_url = f"postgresql://musicdb:{CANARY['database']}@{CLOSED}/musicdb"
    token = CANARY["webhook"]
    log = structlog.get_logger("watchdog.daemon")
    try:
        raise RuntimeError(f"could not reach {database_url} with {token}, {CANARY['redis']}")
    except RuntimeError:
        log.exception("tick_failed", amqp=f"amqp://guest:{CANARY['rabbitmq']}@mq", key=token)
    report_failed_rollback(7, f"step failed: GenieKey {CANARY['opsgenie']} refused")
    sentry_sdk.flush(timeout=5)
    assert sentry.events(), "nothing reached the fake Sentry"
    for event in sentry.events():
        find_canaries("a Sentry event", str(event))
    # The DSN's public key travels in Sentry's own envelope header, to Sentry: nowhere else.
    find_canaries("what reached Sentry", b"".join(sentry.bodies), allowed=("sentry",))


def dump_journal(path: Path) -> str:
    """Every row of every table, read from the file as any reader of it would."""
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        rows = [repr(row) for t in tables for row in conn.execute(f'SELECT * FROM "{t}"')]
    assert len(rows) > 10, rows
    return "\n".join(rows)


@pytest.mark.slow
def test_no_canary_leaves_the_watchdog(
    tmp_path: Path,
    sentry: FakeSentry,
    vendors: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    env = environment(tmp_path, vendors, sentry)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    policy_file = policy_on_closed_ports(tmp_path)
    policy = load_policy(policy_file)
    forget_secrets()
    register_daemon_secrets(settings, policy)  # as `serve` does
    configure_logging("json", "info")
    assert settings.sentry_dsn is not None
    init_sentry(settings.sentry_dsn.get_secret_value())
    journal = SqliteJournal(tmp_path / "journal.db")
    try:
        asyncio.run(drive_notifiers(settings, policy, journal, vendors))
        said = asyncio.run(drive_actions(settings, policy, journal, tmp_path))
        for words in said:
            find_canaries("an action's outcome", words)
        drive_api(journal)
        drive_sentry(sentry)
        drive_cli(env, policy_file, tmp_path)
    finally:
        journal.close()
        sentry_sdk.get_client().close()
        structlog.reset_defaults()
        forget_secrets()
    logged = capfd.readouterr()
    assert '"event"' in logged.err, "no JSON log line was captured"
    find_canaries("the log output", logged.out + logged.err)
    journal_file = tmp_path / "journal.db"
    find_canaries("the journal's rows", dump_journal(journal_file))
    for file in tmp_path.rglob("*"):
        if file.is_file() and file.suffix not in (".yaml",):
            find_canaries(f"the file {file.name}", file.read_bytes())
    assert stat.S_IMODE(journal_file.stat().st_mode) == 0o600
