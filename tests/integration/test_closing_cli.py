"""`watchdog incidents close` as an operator types it, and `Journal.close_by_human` under it.

A real SQLite journal and a real people file. Each refusal (no such person or
incident, no comment, the wrong role, an incident already final) has its exit
code and message, and leaves the journal exactly as it was; a close is one
transaction that frees the incident's key for the next incident of that fault.
"""

from __future__ import annotations

from dataclasses import astuple
from pathlib import Path

import pytest
import yaml

from tests.integration.approvals_fixtures import awaiting
from tests.integration.test_cli_and_bad_targets import run_cli
from watchdog.demo import POLICY
from watchdog.model import Severity
from watchdog.policyfile import load_policy
from watchdog.store.journal import Journal, open_journal

P1 = "database_migration_failure"


def snapshot(journal: Journal, incident: int) -> tuple[object, ...]:
    """Everything a close could change: the row and the whole timeline."""
    return (
        astuple(journal.incident(incident)),
        [astuple(event) for event in journal.timeline(incident)],
    )


# The journal ------------------------------------------------------------------------


def test_close_by_human_is_one_transaction_that_frees_the_key(tmp_path: Path) -> None:
    journal = open_journal(str(tmp_path / "journal.db"))
    try:
        incident = awaiting(journal, load_policy(POLICY), P1)
        key = journal.incident(incident).key
        journal.set_state(incident, state="executing", at=1000.0, reason="approved by lee")
        closed = journal.close_by_human(
            incident, person="lee", role="lead", comment="migrated by hand", at=2000.0
        )
        assert (closed.state, closed.closed_at, closed.updated_at) == ("closed", 2000.0, 2000.0)
        assert journal.incident(incident) == closed and not closed.is_open
        last = journal.timeline(incident)[-1]
        assert (last.kind, last.at) == ("closed_by_human", 2000.0)
        assert last.summary == "executing → closed by lee (lead): migrated by hand"
        assert last.data == {
            "from": "executing",
            "to": "closed",
            "person": "lee",
            "role": "lead",
            "comment": "migrated by hand",
        }
        assert journal.find_open(key) is None
        assert incident not in [r.id for r in journal.open_incidents()]
        again = journal.open_incident(
            key=key,
            severity=Severity.P1,
            scenario=P1,
            subject="database",
            state="triaged",
            reason="the same fault, seen again",
            at=3000.0,
            findings=[],
        )
        assert again != incident and journal.find_open(key) is not None
    finally:
        journal.close()


def test_close_by_human_refuses_final_and_unknown_incidents_and_changes_nothing(
    tmp_path: Path,
) -> None:
    journal = open_journal(str(tmp_path / "journal.db"))
    try:
        policy = load_policy(POLICY)
        closed = awaiting(journal, policy, P1)
        journal.close_by_human(closed, person="lee", role="lead", comment="done", at=10.0)
        resolved = awaiting(journal, policy, P1)
        journal.set_state(resolved, state="resolved", at=11.0, reason="verified", closed=True)
        for incident, state in ((closed, "closed"), (resolved, "resolved")):
            before = snapshot(journal, incident)
            with pytest.raises(ValueError, match=f"incident {incident} is already {state}"):
                journal.close_by_human(incident, person="lee", role="lead", comment="x", at=20.0)
            assert snapshot(journal, incident) == before
        with pytest.raises(KeyError, match="no incident with id 4242"):
            journal.close_by_human(4242, person="lee", role="lead", comment="x", at=20.0)
    finally:
        journal.close()


# The command --------------------------------------------------------------------------


@pytest.fixture
def setup(tmp_path: Path) -> tuple[str, Path, int]:
    people = tmp_path / "people.yaml"
    for name, role in (("lee", "lead"), ("olga", "oncall"), ("tara", "team")):
        added = run_cli("people", "add", name, "--role", role, "--people", str(people))
        assert added.returncode == 0, added.stderr
    state = str(tmp_path / "journal.db")
    journal = open_journal(state)
    incident = awaiting(journal, load_policy(POLICY), P1)
    journal.set_state(incident, state="escalated", at=1.0, reason="approval expired")
    journal.close()
    return state, people, incident


def test_a_lead_closes_an_escalated_incident_from_the_cli(setup: tuple[str, Path, int]) -> None:
    state, people, incident = setup
    closed = run_cli(
        "incidents", "close", str(incident), "--as", "lee", "--comment", "restored by hand",
        "--state", state, "--people", str(people),
    )
    assert closed.returncode == 0, closed.stderr
    assert closed.stdout.strip() == (
        f"incident {incident}: closed by lee (lead), it was escalated: restored by hand; "
        "a running daemon lets go of it on its next tick"
    )
    shown = run_cli("incidents", "show", str(incident), "--state", state).stdout
    assert "escalated → closed by lee (lead): restored by hand" in shown
    assert run_cli("incidents", "list", "--open", "--state", state).stdout.count(P1) == 0
    journal = open_journal(state)
    try:
        assert journal.incident(incident).state == "closed"
    finally:
        journal.close()


def test_every_bad_close_says_why_exits_non_zero_and_changes_nothing(
    setup: tuple[str, Path, int],
) -> None:
    state, people, incident = setup
    where = ("--state", state, "--people", str(people))
    journal = open_journal(state)
    before = snapshot(journal, incident)
    journal.close()

    def close(*args: str) -> tuple[int, str]:
        done = run_cli("incidents", "close", *args, *where)
        return done.returncode, done.stdout + done.stderr

    assert close(str(incident), "--as", "tara", "--comment", "x") == (
        1,
        f"watchdog incidents close: tara (team) may not close incident {incident}: closing "
        "needs one of the roles oncall, lead (policy close_roles)\n",
    )
    code, said = close(str(incident), "--as", "zed", "--comment", "x")
    assert code == 2 and "no person named 'zed'" in said
    code, said = close("77", "--as", "lee", "--comment", "x")
    assert code == 2 and "no incident 77" in said
    code, said = close("99999999999999999999", "--as", "lee", "--comment", "x")
    assert code == 2 and "no incident 99999999999999999999" in said
    code, said = close(str(incident), "--as", "lee")
    assert code == 2 and "`incidents close` needs --comment" in said
    code, said = close(str(incident), "--comment", "x")
    assert code == 2 and "needs --as" in said
    code, said = close("--as", "lee", "--comment", "x")
    assert code == 2 and "needs ID" in said
    code, said = close(str(incident), "--as", "lee", "--comment", "   ")
    assert code == 2 and "comment: empty; expected a few words" in said
    code, said = close("abc", "--as", "lee", "--comment", "x")
    assert code == 2 and "invalid int value: 'abc'" in said

    journal = open_journal(state)
    try:
        assert snapshot(journal, incident) == before
    finally:
        journal.close()

    assert close(str(incident), "--as", "olga", "--comment", "false alarm")[0] == 0
    code, said = close(str(incident), "--as", "lee", "--comment", "again")
    assert code == 1 and f"incident {incident} is already closed" in said
    journal = open_journal(state)
    try:
        closes = [e for e in journal.timeline(incident) if e.kind == "closed_by_human"]
        assert [(e.data["person"], e.data["role"]) for e in closes] == [("olga", "oncall")]
    finally:
        journal.close()


def test_close_roles_come_from_the_policy_when_given(
    setup: tuple[str, Path, int], tmp_path: Path
) -> None:
    state, people, incident = setup
    data = yaml.safe_load(Path(POLICY).read_text())
    data["close_roles"] = ["team"]
    policy = tmp_path / "team-closes.yaml"
    policy.write_text(yaml.safe_dump(data, sort_keys=False))
    where = ("--state", state, "--people", str(people), "--policy", str(policy))

    lead = run_cli("incidents", "close", str(incident), "--as", "lee", "--comment", "x", *where)
    assert lead.returncode == 1 and "needs one of the roles team" in lead.stderr
    team = run_cli("incidents", "close", str(incident), "--as", "tara", "--comment", "ok", *where)
    assert team.returncode == 0, team.stderr
    assert f"incident {incident}: closed by tara (team)" in team.stdout
