"""A real daemon: an alert's label may name what to page about, never what to act on.

`CircuitBreakerOpen{provider=X}` became a `provider.disable` of X for any X. Now
a provider no configuration table names opens its incident, which pages "unknown
subject" (through the fakes of the pagers) with a plan of no step, and the
table is left as it was; an alert naming a provider the table does name still
takes it out, as before.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.alertmanager_payloads import alert, webhook
from tests.integration.daemon_stage import Stage, staged_daemon
from tests.integration.notify_stage import Vendors
from watchdog.demo import quiet, wait_for
from watchdog.keys import new_key

pytestmark = pytest.mark.slow

TOKEN = new_key()
TABLE = "metadata_enrichment_config"


@pytest.fixture
def stage(tmp_path: Path, fakes: Vendors, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stage]:
    for name, value in fakes.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("WATCHDOG_NOTIFY_BACKOFF", "1")
    with staged_daemon(tmp_path, environment={"WATCHDOG_ALERTMANAGER_TOKEN": TOKEN}) as stage:
        yield stage


def post_breaker(stage: Stage, provider: str) -> None:
    now = time.time()
    starts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e9):09d}Z"
    body = webhook(alert("CircuitBreakerOpen", severity="critical", starts_at=starts,
                         provider=provider))
    reply = httpx.post(stage.url + "/api/alertmanager", json=body,
                       headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert reply.status_code == 200, reply.text


def test_an_unknown_provider_pages_unknown_subject_and_disables_nothing(
    stage: Stage, fakes: Vendors
) -> None:
    wait_for(lambda: quiet(stage.url, stage.daemon.read_token), 30, "no open incident")
    before = stage.stack.control.table(TABLE)
    known = {i["id"] for i in stage.incidents()}
    post_breaker(stage, "evil-provider")

    incident = stage.follow(known, ("escalated", "executing", "verifying", "resolved"), 30)
    assert incident["state"] == "escalated", incident["timeline"]
    assert incident["key"] == "provider/evil-provider"
    assert incident["plan"]["steps"] == [] and incident["steps"] == []
    assert incident["plan"]["title"].startswith("Unknown subject: provider 'evil-provider'")
    said = " ".join(e["summary"] for e in incident["timeline"])
    assert "unknown subject: provider 'evil-provider'" in said, said
    assert "spotify" in said  # the page says which providers are known
    assert stage.stack.control.table(TABLE) == before
    assert stage.metric("watchdog_unknown_subjects_total", kind="provider") == 1

    def paged() -> bool:
        return any("unknown subject" in json.dumps(e) for e in fakes.webhook.events())

    wait_for(paged, 20, "the unknown-subject page at the webhook")

    # A provider the table names is still taken out, as the runbook says.
    post_breaker(stage, "spotify")
    acted = stage.follow(
        known | {incident["id"]}, ("executing", "verifying", "resolved", "escalated"), 30
    )
    assert acted["key"] == "provider/spotify", acted
    assert [s["action"] for s in acted["plan"]["steps"]] == [
        "provider.disable", "config.reload", "breaker.reset", "smoke_test"
    ]
    assert "unknown subject" not in " ".join(e["summary"] for e in acted["timeline"])
