"""Scenario 5 by the daemon: every service down opens one P0, never twenty.

The sandbox and `watchdog run` with the songnodes policy and the four fake vendors.
Every application service is killed at once. The daemon opens a single P0
(`complete_system_failure`; the per-service rules are held, then absorbed), pages
at once with the prepared full rollback, keeps a forensic snapshot in the folder
the page names, starts what is stopped, and verifies. Nothing of the prepared plan
(emergency stop, rebuild, restore) runs: that is a person's, by hand.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemon_stage import Stage, staged_daemon
from tests.integration.notify_stage import Vendors
from tests.integration.test_impact_daemon import first_page
from watchdog.demo import wait_for

pytestmark = pytest.mark.slow

APPLICATION = (
    "metadata-enrichment", "rest-api", "api-gateway-internal", "dlq-manager", "audio-analysis",
    "api-gateway", "graph-visualization-api", "scraper-mixesdb", "scraper-1001tracklists",
)


@pytest.fixture
def stage(tmp_path: Path, fakes: Vendors, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stage]:
    for name, value in fakes.environment().items():
        monkeypatch.setenv(name, value)
    with staged_daemon(tmp_path) as stage:
        yield stage


def test_every_service_down_opens_one_p0_snapshots_starts_and_pages_the_prepared_plan(
    stage: Stage, fakes: Vendors
) -> None:
    known = stage.inject("crash", service=APPLICATION[0])
    for service in APPLICATION[1:]:
        stage.stack.inject("crash", service=service)
    outage = stage.follow(known, ("resolved", "escalated"), 60)
    assert outage["state"] == "resolved", outage
    opened = [i for i in stage.incidents() if i["id"] not in known]
    assert [(i["severity"], i["scenario"]) for i in opened] == [
        ("P0", "complete_system_failure")
    ], opened

    journal = stage.journal()
    try:
        steps = journal.steps(outage["id"])
        plan = journal.plan(outage["id"])
    finally:
        journal.close()
    assert [(s.action, s.status) for s in steps] == [
        ("system.snapshot", "succeeded"), ("service.start", "succeeded")
    ]
    folder = stage.folder / "forensics" / f"incident-{outage['id']}"
    assert str(folder) in steps[0].output, steps[0].output
    assert {"df.json", "meminfo.txt", "journal.jsonl", "README.txt"} <= {
        p.name for p in folder.iterdir()
    }
    events = [json.loads(line) for line in (folder / "journal.jsonl").read_text().splitlines()]
    assert any(e["kind"] == "opened" for e in events), events[:3]
    assert plan is not None and plan.prepared[0].startswith("by hand"), plan

    # Paged at once, with the plan, the snapshot's folder and the prepared full rollback.
    wait_for(lambda: first_page(fakes, outage["id"]) is not None, 20, "the P0 page at PagerDuty")
    page = first_page(fakes, outage["id"])
    assert page is not None
    prepared = page["prepared"]
    assert isinstance(prepared, list) and "`watchdog rollback --full" in prepared[0], page
    assert any("system.emergency_stop" in line for line in prepared), prepared
    impact = page["impact"]
    assert isinstance(impact, list)
    assert any(f"forensics/incident-{outage['id']}" in line for line in impact), impact
