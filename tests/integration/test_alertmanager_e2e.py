"""Prometheus → Alertmanager → watchdog, with the real binaries and the real alert names.

A real Prometheus scrapes the sandbox gateway's `api_gateway_circuit_breaker_state`
with the stack's critical `CircuitBreakerOpen` rule (its `for` shortened), a real
Alertmanager routes it to the daemon's receiver with a bearer token, as the
stack's grouping does (by alertname, severity, component; short intervals). The
probe's own breaker rule is taken out of the policy, so the incident can only come
from the alert: a provider outage in the sandbox becomes an alert, an incident, a
provider disable, and, once the breaker is CLOSED and the alert resolves, a closed
incident that the repeated and resolved alert does not reopen.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests import promstack
from tests.alertmanager_payloads import alert, webhook
from tests.integration.daemon_stage import Stage, songnodes_variant
from watchdog.demo import DaemonProcess, wait_for
from watchdog.keys import new_key
from watchdog.sandbox.stack import SandboxStack

pytestmark = pytest.mark.slow

TOKEN = new_key()  # `watchdog run` refuses a guessable one
RULES = """
groups:
  - name: songnodes-circuit-breakers
    rules:
      - alert: CircuitBreakerOpen
        expr: api_gateway_circuit_breaker_state > 0
        for: 1s
        labels: {severity: critical, component: api_gateway, category: circuit_breaker}
        annotations:
          summary: "Circuit breaker {{ $labels.provider }} is not CLOSED"
"""


def without_the_probe_rule(data: dict[str, Any]) -> None:
    data["rules"] = [r for r in data["rules"] if r["name"] != "provider-breaker-open"]


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stage, str]]:
    folder = tmp_path_factory.mktemp("alert-e2e")
    with SandboxStack(folder / "sandbox") as stack:
        policy = songnodes_variant(folder, without_the_probe_rule)
        daemon = DaemonProcess(
            stack, folder, policy=policy,
            environment={"WATCHDOG_ALERTMANAGER_TOKEN": TOKEN},
        ).start()
        try:
            (folder / "token").write_text(TOKEN)
            am_config = {
                "route": {
                    "receiver": "watchdog",
                    "group_by": ["alertname", "severity", "component"],
                    "group_wait": "1s",
                    "group_interval": "2s",
                    "repeat_interval": "1m",
                },
                "receivers": [{
                    "name": "watchdog",
                    "webhook_configs": [{
                        "url": f"{daemon.url}/api/alertmanager",
                        "send_resolved": True,
                        "http_config": {"authorization": {
                            "type": "Bearer", "credentials_file": str(folder / "token"),
                        }},
                    }],
                }],
            }
            with promstack.alertmanager(folder / "alertmanager", am_config) as am:
                gateway = stack.urls["api-gateway-internal"].removeprefix("http://")
                prom_config = {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "alerting": {"alertmanagers": [
                        {"static_configs": [{"targets": [am.url.removeprefix("http://")]}]}
                    ]},
                    "scrape_configs": [
                        {"job_name": "gateway", "static_configs": [{"targets": [gateway]}]}
                    ],
                }
                with promstack.prometheus(
                    folder / "prometheus", prom_config, {"songnodes.yml": RULES}
                ) as prom:
                    current = Stage(folder, stack, daemon)
                    current.wait_for_baseline()
                    promstack.wait_scraped(prom.url, "gateway")
                    yield current, prom.url
        finally:
            daemon.stop()


def test_an_alert_becomes_a_rollback_and_its_resolution_closes_the_incident(
    stage: tuple[Stage, str],
) -> None:
    current, prometheus = stage
    known = current.inject("provider_outage", provider="spotify")
    incident = current.follow(known, ("resolved", "escalated"), 60)

    assert incident["state"] == "resolved", incident["timeline"]
    assert (incident["key"], incident["scenario"]) == ("provider/spotify", "provider_failure")
    assert "Alertmanager: CircuitBreakerOpen" in incident["reason"]
    assert [s["status"] for s in incident["steps"]] == ["succeeded"] * 4
    current.stack.inject("provider_restore", provider="spotify")

    # Prometheus sees the breaker CLOSED, Alertmanager sends `resolved`: the journal says so.
    def resolved_in_journal() -> bool:
        journal = current.journal()
        try:
            rows = journal._read(  # type: ignore[attr-defined]
                "SELECT status, deliveries FROM alerts WHERE labels LIKE '%spotify%'"
            )
        finally:
            journal.close()
        return bool(rows) and all(r["status"] == "resolved" for r in rows)

    wait_for(resolved_in_journal, 45, "Alertmanager's resolved notification in the journal")
    assert not promstack.query(prometheus, 'ALERTS{alertname="CircuitBreakerOpen"}')
    time.sleep(3)  # a repeat or a late delivery must not open the same incident again
    again = [
        i for i in current.incidents()
        if i["id"] not in known | {incident["id"]} and i["scenario"] == "provider_failure"
    ]
    assert again == [], again
    assert current.metric("watchdog_alerts_received_total", outcome="accepted") >= 2
    assert current.metric("watchdog_alerts_received_total", outcome="unauthorized") == 0


def test_an_alert_and_a_probe_that_see_one_fault_land_in_one_incident(
    stage: tuple[Stage, str],
) -> None:
    """The DLQ overflow: the probe reads RabbitMQ's true depth and opens the `dlq`
    incident; Alertmanager's DLQDepthCritical, arriving while it is open, joins it."""
    current, _ = stage
    known = current.inject("dlq_overflow")
    opened = current.follow(
        known, ("triaged", "executing", "verifying", "resolved"), 60, scenario="dlq_overflow"
    )
    body = webhook(alert("DLQDepthCritical", severity="critical", component="dlq",
                         summary="DLQ above 500 for 5m"))
    reply = httpx.post(
        current.url + "/api/alertmanager", json=body,
        headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10,
    )
    assert reply.status_code == 200, reply.text

    def alert_joined() -> bool:
        journal = current.journal()
        try:
            return "alert-dlq-critical" in {f.rule for f in journal.findings(opened["id"])}
        finally:
            journal.close()

    wait_for(alert_joined, 30, "the alert's finding on the open dlq incident")
    incident = current.follow(known, ("resolved", "escalated"), 60, scenario="dlq_overflow")
    assert incident["id"] == opened["id"]
    assert incident["state"] == "resolved", incident["timeline"]
    others = [i for i in current.incidents() if i["id"] not in known | {incident["id"]}]
    assert [i for i in others if i["key"] == "dlq"] == []
    journal = current.journal()
    try:
        rules = {f.rule for f in journal.findings(incident["id"])}
    finally:
        journal.close()
    assert rules & {"dlq-overflow", "dlq-filling"}, rules
