"""`watchdog demo` end to end, as `make demo` runs it: exit 0 only when all six recovered."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from watchdog.demo import FAULTS, TIME_SCALE, run_demo
from watchdog.policy.explainvalues import Explanation
from watchdog.policy.scaling import compress_time
from watchdog.policyfile import load_policy
from watchdog.policymarks import policy_places
from watchdog.store.explainfacts import read_explanation
from watchdog.store.journal import open_journal

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


def test_demo_recovers_every_scenario_and_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    lines: list[str] = []
    try:
        assert run_demo(out=lines.append, keep=True) == 0, "\n".join(lines)
        kept = re.search(r"^journal: (\S+)journal\.db  logs:", "\n".join(lines), re.M)
        assert kept, lines[-3:]
        explain_every_incident(Path(kept.group(1)), capsys)
    finally:
        for line in lines:
            if line.startswith("journal: "):
                shutil.rmtree(Path(line.split()[1]).parent, ignore_errors=True)
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


def explain_every_incident(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`watchdog explain` on each demo scenario's incident, checked against the journal.

    The chain of every incident has each link; every policy link names the demo policy's
    file and the line its rule, scenario, signal or authority row is written on."""
    from watchdog.cli import main

    state, policy_file = folder / "journal.db", folder / "songnodes-demo.yaml"
    text = policy_file.read_text(encoding="utf-8").splitlines()
    policy = compress_time(load_policy(policy_file), TIME_SCALE)  # the daemon's clock
    places = policy_places(policy_file, policy)
    journal = open_journal(str(state))
    try:
        records = journal.list_incidents(limit=100)
        assert len(records) == len(FAULTS)
        for record in records:
            told = read_explanation(journal, record.id, policy, places)
            findings, plan = journal.findings(record.id), journal.plan(record.id)
            assert plan is not None
            check_explanation(told, text, [f.rule for f in findings], plan.scenario,
                              len({s.index for s in journal.steps(record.id)}))
            assert told.title.startswith(
                f"Incident {record.id}: {record.severity.value} {record.scenario}"
            )
            assert told.title.endswith(", resolved")
            assert main(["explain", str(record.id), "--state", str(state), "--policy",
                         str(policy_file), "--time-scale", str(TIME_SCALE)]) == 0
            printed = capsys.readouterr().out
            assert printed.startswith(told.title) and "near misses (" in printed
            assert f"authority: who may authorise a {record.severity.value} plan  " \
                f"[{policy_file}:" in printed
    finally:
        journal.close()


def check_explanation(
    told: Explanation, text: list[str], rules: list[str], scenario: str, steps: int
) -> None:
    assert told.stages() == (
        "observed", "rule", "finding", "severity", "authority", "guards", "plan", "step",
        "verification",
    ), told.text()
    assert told.notes == (), told.notes
    for link in told.links:
        if link.place is not None:  # the file's own line says what the link names
            name = link.place.path.split(".")[-1].split()[-1]
            assert name in text[link.place.line - 1], (link.heading(), text[link.place.line - 1])
    cited = [link.title.split()[0] for link in told.links if link.stage == "rule"]
    assert cited == rules
    assert [link.place.path for link in told.links if link.stage == "plan" and link.place] == [
        f"scenarios.{scenario}"
    ]
    assert sum(1 for link in told.links if link.stage == "step") == steps
    assert next(link for link in told.links if link.stage == "verification").title == "resolved"
    guards = next(link for link in told.links if link.stage == "guards")
    assert any("guards pass" in line for line in guards.lines), guards.lines
