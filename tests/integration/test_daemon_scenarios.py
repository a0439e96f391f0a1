"""The daemon against the sandbox, over real HTTP, as separate processes: every demo scenario.

One sandbox and one daemon (`watchdog run` with the songnodes policy, clock
compressed tenfold) serve the module; the scenarios run in the demo's order.
Each asserts the journal (incident, plan, steps, timeline), the daemon's metrics
and the sandbox's real state after recovery.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.daemon_stage import Stage, songnodes_variant, staged_daemon
from watchdog.commands.replaycmd import replay
from watchdog.demo import FAULTS, POLICY, TIME_SCALE, read_headers

pytestmark = pytest.mark.slow

CONFIG = "metadata_enrichment_config"


def stricter_outage(data: dict[str, Any]) -> None:
    """songnodes made stricter about partial outages: a P1 as soon as more than a tenth of
    the services (one of nine) fail their health check for 5 s, not more than half for 1 m."""
    rule = next(r for r in data["rules"] if r["name"] == "most-services-down")
    rule.update(threshold=0.1, **{"for": "5s"})


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    """The daemon runs the stricter variant in shadow beside songnodes (issue 18): the
    scenarios below see only the live policy act; the last test reads the shadow's rows."""
    folder = tmp_path_factory.mktemp("scenarios")
    shadow = songnodes_variant(folder, stricter_outage)
    with staged_daemon(folder, extra_args=["--shadow-policy", str(shadow)]) as stage:
        yield stage


def steps_of(incident: dict[str, Any]) -> list[tuple[str, str]]:
    return [(s["name"], s["status"]) for s in incident["steps"]]


def test_crashed_service_is_restarted_and_resolved(stage: Stage) -> None:
    before = stage.stack.service("dlq-manager")
    incident = stage.inject_and_follow("crash", service="dlq-manager")
    assert incident["state"] == "resolved", incident["timeline"]
    assert (incident["severity"], incident["scenario"]) == ("P2", "service_failure")
    assert incident["key"] == "service_failure/dlq-manager"
    assert steps_of(incident) == [("restart the failed service", "succeeded")]
    after = stage.stack.service("dlq-manager")
    assert after["running"] and after["pid"] != before["pid"] and after["port"] == before["port"]
    kinds = [e["kind"] for e in incident["timeline"]]
    assert kinds[0] == "opened" and "authorization" in kinds and "guards" in kinds
    assert "step_started" in kinds and "verification" in kinds
    assert "dlq-manager health 0 < 1" in incident["reason"]
    assert (
        stage.metric("watchdog_incidents_opened_total", severity="P2", scenario="service_failure")
        >= 1
    )
    assert (
        stage.metric(
            "watchdog_actions_total",
            scenario="service_failure",
            action="service.restart",
            outcome="succeeded",
        )
        >= 1
    )


def test_corrupted_configuration_is_restored_from_last_known_good(stage: Stage) -> None:
    good = stage.stack.control.table("metadata_enrichment_config")
    incident = stage.inject_and_follow("corrupt_config")
    assert incident["state"] == "resolved", incident["timeline"]
    assert (incident["severity"], incident["scenario"]) == ("P2", "configuration_corruption")
    assert [status for _, status in steps_of(incident)] == ["succeeded"] * 7
    restored = stage.stack.control.table("metadata_enrichment_config")
    key = "metadata_field"
    assert sorted(restored, key=lambda r: r[key]) == sorted(good, key=lambda r: r[key])
    outputs = {s["name"]: s["output"] for s in incident["steps"]}
    backup = Path(outputs["back up the corrupted configuration"].rsplit(" to ", 1)[1])
    assert backup.exists() and backup.read_text().count("\n") == len(good) + 1
    assert "serves exactly the 14 enabled fields" in outputs["verify the loaded configuration"]
    config = httpx.get(stage.stack.urls["metadata-enrichment"] + "/admin/config", timeout=5).json()
    assert config["configuration"]["total_fields"] == 14


def test_failing_provider_is_disabled_and_breaker_closed(stage: Stage) -> None:
    incident = stage.inject_and_follow("provider_outage", provider="spotify")
    assert incident["state"] == "resolved", incident["timeline"]
    assert (incident["severity"], incident["scenario"]) == ("P2", "provider_failure")
    assert incident["key"] == "provider/spotify"
    assert [status for _, status in steps_of(incident)] == ["succeeded"] * 4
    rows = stage.stack.control.table("metadata_enrichment_config")
    enabled = [r for r in rows if r["enabled"]]
    assert enabled and all(
        r.get(f"priority_{n}_provider") != "spotify" for r in enabled for n in range(1, 5)
    )
    breakers = httpx.get(stage.stack.urls["api-gateway-internal"] + "/health", timeout=5).json()
    assert breakers["circuit_breakers"]["spotify"] == "CLOSED"


def test_a_recovered_provider_is_put_back_exactly_leaving_later_edits_alone(
    stage: Stage,
) -> None:
    """Scenario 3's way back: once spotify's breaker stays CLOSED for the rule's clear_for
    (6 s at this time scale), a follow-up incident restores exactly the rows the disable
    changed; a row edited by hand since keeps its edit, and so does a row it never touched."""
    journal = stage.journal()
    try:
        disable = next(
            i for i in journal.list_incidents(limit=100) if i.scenario == "provider_failure"
        )
        change = next(
            e.data
            for e in journal.timeline(disable.id)
            if e.kind == "step_evidence" and e.data.get("action") == "provider.disable"
        )
    finally:
        journal.close()
    before = {r["metadata_field"]: r for r in change["before"]}
    rows = stage.stack.control.table(CONFIG)
    edited_since = sorted(before)[0]
    untouched = next(r["metadata_field"] for r in rows if r["metadata_field"] not in before)
    for row in rows:
        if row["metadata_field"] in (edited_since, untouched):
            row["field_description"] = "edited by hand after the disable"
    known = {i["id"] for i in stage.incidents()}
    stage.stack.control.put_table(CONFIG, rows)
    stage.stack.inject("provider_restore", provider="spotify")

    follow_up = stage.follow(known, ("resolved", "escalated"), 60, scenario="provider_reenable")

    assert follow_up["state"] == "resolved", follow_up["timeline"]
    assert (follow_up["key"], follow_up["severity"]) == ("reenable/spotify", "P2")
    assert [status for _, status in steps_of(follow_up)] == ["succeeded"] * 3
    assert edited_since in follow_up["steps"][0]["output"]  # named, not overwritten
    live = {r["metadata_field"]: r for r in stage.stack.control.table(CONFIG)}
    for field, image in before.items():
        if field != edited_since:
            assert {k: live[field][k] for k in image if k != "last_updated"} == {
                k: v for k, v in image.items() if k != "last_updated"
            }
    assert live[edited_since]["field_description"] == "edited by hand after the disable"
    assert live[edited_since]["priority_1_provider"] != "spotify"
    assert live[untouched]["field_description"] == "edited by hand after the disable"
    routed = [r for r in live.values() if r["enabled"] and r["priority_1_provider"] == "spotify"]
    assert routed, "spotify leads no waterfall again"
    journal = stage.journal()
    try:
        assert journal.get_flag(f"reenabled:{disable.id}") == str(follow_up["id"])
        assert any(e.kind == "reenable" for e in journal.timeline(disable.id))
    finally:
        journal.close()


def test_dlq_overflow_restarts_the_workers_and_drains(stage: Stage) -> None:
    pids = {
        n: stage.stack.service(n)["pid"] for n in ("enrichment-worker-1", "enrichment-worker-2")
    }
    incident = stage.inject_and_follow("dlq_overflow", seconds=60)
    assert incident["state"] == "resolved", incident["timeline"]
    assert incident["scenario"] == "dlq_overflow" and incident["severity"] in ("P1", "P2")
    assert steps_of(incident) == [("restart the enrichment workers", "succeeded")]
    for name, pid in pids.items():
        assert stage.stack.service(name)["pid"] != pid
    queue = httpx.get(
        stage.stack.urls["rabbitmq"] + "/api/queues/musicdb/enrichment.dlq.queue",
        auth=("guest", "guest"),
        timeout=5,
    ).json()
    assert queue["messages"] < 100
    stats = httpx.get(stage.stack.urls["dlq-manager"] + "/dlq/stats", timeout=5).json()
    assert stats["total_messages"] == 0  # the trap: /dlq/stats never saw any of it


def test_every_decision_is_in_the_journal_with_its_reason(stage: Stage) -> None:
    journal = stage.journal()
    try:
        records = journal.list_incidents(limit=20)
        # Every demo fault but the bad deploy (it needs the demo's Docker signals: test_demo).
        assert len(records) >= len([f for f in FAULTS if f.kind != "deploy"])
        for record in records:
            kinds = {e.kind for e in journal.timeline(record.id)}
            assert {"opened", "authorization", "state"} <= kinds
            plan = journal.plan(record.id)
            assert plan is not None and plan.reason and plan.authorization.reason
            assert all(s.status in ("succeeded", "skipped") for s in journal.steps(record.id))
    finally:
        journal.close()
    # The observations behind those decisions were journaled (issue 18): replayed through
    # the policy as the daemon ran it, the crash's minute opens the crashed service's
    # incident again, and the policy file at the daemon's scale decides alike.
    crash = next(r for r in records if r.key == "service_failure/dlq-manager")
    diff, _ = replay(stage.state, str(POLICY), since=str(crash.opened_at - 30),
                     until=str(crash.opened_at + 30), time_scale=TIME_SCALE)
    assert crash.key in {i.key for i in diff.baseline.incidents}, diff.text()
    assert not diff.differing(), diff.text()
    assert stage.metric("watchdog_incidents_open", severity="P2") == 0
    assert stage.metric("watchdog_time_to_recover_seconds_count", scenario="service_failure") >= 1
    health = httpx.get(stage.url + "/healthz", timeout=5).json()
    assert health["status"] == "ok" and health["ticks"] > 0
    # One sidecar on its SQLite file always leads; it has no term to fence (issue 17).
    assert (health["role"], health["token"], health["leader"]) == (
        "leader", None, health["instance"])
    assert health["stack"] == "songnodes" and health["since"] == health["started_at"]
    assert stage.metric("watchdog_leader") == 1


def test_a_stricter_shadow_policy_beside_live_acted_on_nothing(stage: Stage) -> None:
    """Shadow beside live on the sandbox (issue 18): the stricter variant saw the crashed
    dlq-manager as a P1 partial outage where the live policy opened its P2, agreed on
    the faults it decides alike, and acted on nothing: no incident, step, page or
    sandbox restart of its own; its rows are on /metrics and the web page."""
    journal = stage.journal()
    try:
        rows = journal.shadow_decisions(limit=500)
        incidents = journal.list_incidents(limit=100, include_closed=True)
        acted = {i.key for i in incidents if journal.steps(i.id) or journal.deliveries(i.id)}
        restarts_by_live = sum(
            1 for i in incidents if i.key == "service_failure/dlq-manager"
            for s in journal.steps(i.id)
            if s.name == "restart the failed service" and s.status == "succeeded"
        )
    finally:
        journal.close()
    judged = {(r.key, r.agreement) for r in rows}
    assert ("service_failure/dlq-manager", "live-only") in judged, rows
    shadow_only = [r for r in rows if r.agreement == "shadow-only"]
    assert shadow_only and all(r.live == "" for r in shadow_only), rows
    assert any(r.shadow.startswith("P1 partial_outage") for r in shadow_only), shadow_only
    assert ("configuration", "agree") in judged, rows  # same rules, same tick, same plan
    assert all(r.policy.endswith("policy.yaml") for r in rows)
    # It acted on nothing: its incidents are nowhere in the journal, no step or page is
    # theirs, and the sandbox's dlq-manager was restarted only by the live policy's steps.
    assert "partial_outage" not in {i.scenario for i in incidents}
    assert not acted & {r.key for r in shadow_only}
    assert stage.stack.service("dlq-manager")["restarts"] == restarts_by_live == 1
    for agreement in ("agree", "differs", "shadow-only", "live-only"):
        counted = stage.metric("watchdog_shadow_decisions_total", agreement=agreement)
        assert counted == sum(1 for r in rows if r.agreement == agreement), agreement
    reader = read_headers(stage.daemon.read_token)
    page = httpx.get(stage.url + "/ui/", headers=reader, timeout=5).text
    assert 'id="shadow-decisions"' in page and "It acted on nothing" in page
    assert "shadow-only" in page and "P1 partial_outage" in page
    crash = next(i for i in incidents if i.key == "service_failure/dlq-manager")
    beside = httpx.get(f"{stage.url}/ui/incidents/{crash.id}", headers=reader, timeout=5).text
    assert "Shadow policy on this key (1)" in beside and "live-only" in beside
