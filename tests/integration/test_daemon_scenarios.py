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

from watchdog.demo import FAULTS, has_last_good, quiet, running_daemon, wait_for
from watchdog.sandbox.stack import SandboxStack
from watchdog.store.journal import open_journal

pytestmark = pytest.mark.slow


class Stage:
    def __init__(self, folder: Path, stack: SandboxStack, url: str) -> None:
        self.folder = folder
        self.stack = stack
        self.url = url

    def incidents(self) -> list[dict[str, Any]]:
        body: dict[str, Any] = httpx.get(self.url + "/incidents", timeout=5).json()
        return list(body["incidents"])

    def inject_and_follow(self, kind: str, seconds: float = 45, **body: Any) -> dict[str, Any]:
        wait_for(lambda: quiet(self.url), 30, "no open incident")
        known = {i["id"] for i in self.incidents()}
        self.stack.inject(kind, **body)
        found: dict[str, Any] = {}

        def finished() -> bool:
            new = [i for i in self.incidents() if i["id"] not in known]
            if new:
                found.update(min(new, key=lambda i: i["id"]))
            return bool(found) and found["state"] in ("resolved", "closed", "escalated")

        wait_for(finished, seconds, f"the incident for {kind} to finish")
        return found

    def metric(self, name: str, **labels: str) -> float:
        text = httpx.get(self.url + "/metrics", timeout=5).text
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            if line.startswith(name + ("{" if labels else " ")):
                label_part = line[len(name) :].split(" ")[0]
                if all(f'{k}="{v}"' in label_part for k, v in labels.items()):
                    return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"no sample {name}{{{wanted}}} in /metrics")


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    folder = tmp_path_factory.mktemp("scenarios")
    with SandboxStack(folder / "sandbox") as stack, running_daemon(stack, folder) as url:
        wait_for(lambda: has_last_good(folder), 30, "a last known good configuration")
        yield Stage(folder, stack, url)


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
    journal = open_journal(str(stage.folder / "journal.db"))
    try:
        records = journal.list_incidents(limit=20)
        assert len(records) >= len(FAULTS)
        for record in records:
            kinds = {e.kind for e in journal.timeline(record.id)}
            assert {"opened", "authorization", "state"} <= kinds
            plan = journal.plan(record.id)
            assert plan is not None and plan.reason and plan.authorization.reason
            assert all(s.status in ("succeeded", "skipped") for s in journal.steps(record.id))
    finally:
        journal.close()
    assert stage.metric("watchdog_incidents_open", severity="P2") == 0
    assert stage.metric("watchdog_time_to_recover_seconds_count", scenario="service_failure") >= 1
    health = httpx.get(stage.url + "/healthz", timeout=5).json()
    assert health["status"] == "ok" and health["ticks"] > 0


def test_a_second_crash_within_the_cooldown_pages_instead_of_restarting(stage: Stage) -> None:
    first = stage.inject_and_follow("crash", service="rest-api")
    assert first["state"] == "resolved"
    second = stage.inject_and_follow("crash", service="rest-api")
    assert second["state"] == "escalated"
    assert second["steps"] == []
    assert any("cooldown" in e["summary"] for e in second["timeline"] if e["kind"] == "guards")
    stage.stack.control.start("rest-api")  # a human steps in; the incident then resolves
    wait_for(lambda: quiet(stage.url), 30, "the escalated incident to resolve once healthy")
