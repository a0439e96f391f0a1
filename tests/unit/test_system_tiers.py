"""Scenario 5's orders, without an engine: which tier a service falls in, and what the
commands keep of the prepared plan (stop only, no database, --force)."""

from __future__ import annotations

from tests.unit.helpers import SONGNODES
from watchdog.actions.docker_system import assign_tiers
from watchdog.commands.fullrollback import prepared_scenario, shape
from watchdog.model import Severity
from watchdog.policy.planner import plan_for
from watchdog.policyfile import load_policy

SERVICES = ["api-gateway", "scraper-mixesdb", "postgres", "rest-api", "scraper-1001tracklists",
            "metadata-enrichment", "grafana"]
TIERS = [["scraper-*"], ["metadata-enrichment"], ["rest-api"], ["api-gateway"]]


def test_each_service_falls_in_the_first_tier_matching_it_stateful_apart() -> None:
    ordered, stateful = assign_tiers(SERVICES, TIERS, frozenset({"postgres"}))
    assert ordered == [
        ("scraper-*", ["scraper-mixesdb", "scraper-1001tracklists"]),
        ("metadata-enrichment", ["metadata-enrichment"]),
        ("rest-api", ["rest-api"]),
        ("api-gateway", ["api-gateway"]),
        ("services no tier names", ["grafana"]),
    ]
    assert stateful == ["postgres"]
    rebuild, _ = assign_tiers(SERVICES, TIERS, frozenset({"postgres"}), unlisted_first=True)
    assert rebuild[0] == ("services no tier names", ["grafana"])
    assert rebuild[-1] == ("api-gateway", ["api-gateway"])  # the front end comes back last


def test_the_commands_keep_what_they_run_of_the_prepared_plan() -> None:
    policy = load_policy(SONGNODES, environ={})
    plan = plan_for(policy, scenario=prepared_scenario(policy), severity=Severity.P0,
                    subject="songnodes", params={"series": "songnodes"}, why="test")
    stop, notes = shape(plan, stop_only=True, force=True, database=True)
    assert [s.action for s in stop.steps] == ["system.snapshot", "system.emergency_stop"]
    assert stop.steps[1].param_map()["force"] is True and stop.checklist == ()
    assert stop.title.startswith("Emergency stop of songnodes")
    full, notes = shape(plan, stop_only=False, force=False, database=False)
    assert not [s for s in full.steps if s.action.startswith(("database.", "migrations."))]
    assert full.steps[1].param_map()["force"] is False
    assert "no database configured (WATCHDOG_DATABASE_URL): its steps are left out" in notes
    kept, _ = shape(plan, stop_only=False, force=False, database=True)
    assert kept.steps == plan.steps
