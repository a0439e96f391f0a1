"""`watchdog demo` end to end, as `make demo` runs it: exit 0 only when all six recovered."""

from __future__ import annotations

import pytest

from watchdog.demo import FAULTS, run_demo

pytestmark = pytest.mark.slow

#: Scenario 1's plan as the timeline shows it, in order (the sixth fault's).
NEW_VERSION_STEPS = (
    "keep the failing containers' logs and the dependents' status (attempt 1) succeeded: "
    "dlq-manager: ",
    "confirm a backup exists if the service is schema-coupled (attempt 1) succeeded: "
    "dlq-manager is schema-coupled: newest backup musicdb_backup_",
    "stop the failed new service (attempt 1) succeeded",
    "revert to the last known good image (attempt 1) succeeded: reverted dlq-manager to its "
    "last known good version: dlq-manager 1.5.0 → 1.4.0",
    "restart its dependents in order (attempt 1) succeeded",
    "verifying → resolved",
)


def test_demo_recovers_every_scenario_and_exits_zero() -> None:
    lines: list[str] = []
    assert run_demo(out=lines.append) == 0, "\n".join(lines)
    text = "\n".join(lines)
    for fault in FAULTS:
        assert f"=== {fault.title} ===" in text
    assert text.count("verifying → resolved") == len(FAULTS)
    assert "all scenarios recovered" in text
    summary = text[text.index("SCENARIO") :].splitlines()[1 : 1 + len(FAULTS)]
    assert all("resolved" in row for row in summary), summary
    # The sixth fault, a new version failing after its deploy, is scenario 1, said so.
    assert "scenario 1's 15-minute watch shortened to 2m (12 s at 10x)" in text
    sixth = text[text.index(f"=== {FAULTS[-1].title} ===") : text.index("SCENARIO")]
    assert "P2 new_service_failure" in sixth
    assert "dlq-manager's version changed" in sixth and "(1.5.0, last good 1.4.0)" in sixth
    assert "exiting with status 1" in sixth  # the evidence: the failed version's own log
    at = [sixth.find(step) for step in NEW_VERSION_STEPS]
    assert -1 not in at and at == sorted(at), list(zip(NEW_VERSION_STEPS, at, strict=True))
    assert "new_service_failure       5/5    resolved" in summary[-1]
