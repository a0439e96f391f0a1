"""A real daemon assesses the impact of its plan and judges the pre-rollback checklist.

The sandbox and `watchdog run` with the songnodes policy, P2 paged on open to
the four fake vendors, and a people file: dlq-manager killed opens scenario 1's
restart. The impact (services and their dependents, data loss, expected
duration, fix forward, who is on call) and the checklist's verdicts are
journaled with the plan, before its first step, and shown by `incidents show`
and in the page's body.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.approvals_fixtures import write_crew
from tests.integration.daemon_stage import Stage, songnodes_variant, staged_daemon
from tests.integration.notify_stage import Vendors
from tests.integration.test_cli_and_bad_targets import run_cli
from tests.integration.test_notify_daemon import page_p2_everywhere
from watchdog.demo import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def stage(tmp_path: Path, fakes: Vendors, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stage]:
    for name, value in fakes.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("WATCHDOG_PEOPLE", str(write_crew(tmp_path).path))
    with staged_daemon(tmp_path, songnodes_variant(tmp_path, page_p2_everywhere)) as stage:
        yield stage


def test_the_plans_impact_and_pre_checklist_are_journaled_and_shown(
    stage: Stage, fakes: Vendors
) -> None:
    resolved = stage.inject_and_follow("crash", service="dlq-manager")
    assert resolved["state"] == "resolved", resolved["timeline"]
    number = resolved["id"]

    journal = stage.journal()
    try:
        kinds = [event.kind for event in journal.timeline(number)]
        plan = journal.plan(number)
    finally:
        journal.close()
    assert "prechecklist" in kinds and kinds.index("prechecklist") < kinds.index("step_started")
    assert plan is not None
    verdicts = {c.item: c.verdict for c in plan.prechecks}
    assert verdicts == {
        "Verify service logs (last 100 lines)": "not_satisfied",
        "Check dependent services status": "satisfied",  # the sandbox's graph (catalog.py)
        "Confirm backup availability": "not_applicable",
        "Notify team in #incidents": "satisfied",
    }
    wanted = [
        "services affected: dlq-manager; their dependents: none in the Compose graph",
        "data loss: none (the plan touches no data)",
        "on call: olga; can approve now: no approval needed",
    ]
    for line in wanted:
        assert line in plan.impact, plan.impact
    assert any(line.startswith("expected duration: ~") for line in plan.impact), plan.impact

    shown = run_cli("incidents", "show", str(number), "--state", str(stage.folder / "journal.db"))
    assert shown.returncode == 0, shown.stderr
    assert "pre-rollback checklist:" in shown.stdout
    assert "- Confirm backup availability: not applicable: the plan restores no data" in (
        shown.stdout
    )
    assert f"- {wanted[0]}" in shown.stdout
    # The first page, sent as the incident opened, already carries the plan's impact.
    opened = first_page(fakes, number)
    assert opened is not None and opened["plan"]["steps"], opened
    assert wanted[1] in opened["impact"], opened
    assert any(line.startswith("Notify team in #incidents") for line in opened["prechecks"])


    # A plan put to a human: its page carries the impact and the verdicts it is judged by.
    known = stage.inject("crash", service="redis")
    waiting = stage.follow(known, ("awaiting_approval",), scenario="stateful_service_failure")
    wait_for(lambda: approval_page(fakes, waiting["id"]), 20, "the approval page at PagerDuty")
    details = approval_page(fakes, waiting["id"])
    assert "on call: olga; can approve now: team (quorum 2): tara, tom, lena" in (
        details["impact"]
    ), details
    assert "Notify team in #incidents: satisfied: the policy pages for this severity" in (
        details["prechecks"]
    )


def first_page(fakes: Vendors, number: int) -> dict[str, Any] | None:
    """The custom details of the first page PagerDuty received about incident `number`."""
    pages = [
        e["payload"]["custom_details"]
        for e in fakes.pagerduty.events("trigger")
        if e["payload"]["custom_details"]["incident"] == number
    ]
    return pages[0] if pages else None


def approval_page(fakes: Vendors, number: int) -> dict[str, Any] | None:
    """The custom details of the page sent when `number` began to wait for approval."""
    pages = [
        e["payload"]["custom_details"]
        for e in fakes.pagerduty.events("trigger")
        if e["payload"]["custom_details"]["incident"] == number
        and e["payload"]["custom_details"]["state"] == "awaiting_approval"
    ]
    return pages[-1] if pages else None
