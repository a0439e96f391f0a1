"""Follow-ups in a real SQLite journal: written with the close that ends an incident, or
not at all; closed once; `followups done --as` checks the name against the people file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.approvals_fixtures import Crew, awaiting, crew  # noqa: F401
from watchdog.cli import main
from watchdog.demo import POLICY
from watchdog.engine.closing import close_incident
from watchdog.model import Risk, Step
from watchdog.people import People
from watchdog.policy.operatingspecs import FollowupSpec
from watchdog.policyfile import load_policy
from watchdog.store.journal import open_journal

P1 = "database_migration_failure"
ITEMS = [FollowupSpec(text="Post-mortem scheduled", due_after=60, owner="lead")]


def test_a_human_close_writes_follow_ups_in_its_transaction_only_if_a_step_ran(
    tmp_path: Path, crew: Crew  # noqa: F811
) -> None:
    policy = load_policy(POLICY)
    lee = People(crew.path, policy.roles).named("lee")
    assert lee is not None
    journal = open_journal(str(tmp_path / "journal.db"))
    try:
        acted, idle = awaiting(journal, policy, P1), awaiting(journal, policy, P1, reason="idle")
        step = journal.step_started(acted, index=0, step=Step("dump", "db.dump", Risk.SAFE), at=1.0)
        journal.step_finished(step, status="failed", at=2.0, output="no space left")
        for incident in (acted, idle):
            close_incident(
                journal, incident_id=incident, person=lee, comment="done by hand",
                close_roles=["lead"], at=100.0, followup_items=ITEMS,
            )
        [owed] = journal.followups(incident_id=acted)
        assert (owed.text, owed.owner, owed.due_at, owed.created_at) == (
            "Post-mortem scheduled", "lead", 160.0, 100.0
        )
        assert journal.followups(incident_id=idle) == []
        assert journal.timeline(acted)[-1].kind == "followups"
        assert journal.overdue_followups(160.0) == 0 and journal.overdue_followups(160.5) == 1

        done = journal.followup_done(owed.id, person="lee", at=200.0)
        assert (done.done_by, done.done_at, done.is_open) == ("lee", 200.0, False)
        with pytest.raises(ValueError, match="already closed by lee at 1970-01-01T00:03:20Z"):
            journal.followup_done(owed.id, person="kim", at=300.0)
        with pytest.raises(KeyError, match="no follow-up with id 999"):
            journal.followup_done(999, person="kim", at=300.0)
        assert journal.overdue_followups(1e9) == 0 and journal.followups() == []
        assert journal.timeline(acted)[-1].summary == (
            f"follow-up {owed.id} done by lee: Post-mortem scheduled"
        )
    finally:
        journal.close()


def test_followups_done_names_the_bad_input(
    tmp_path: Path, crew: Crew, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    state = ("--state", str(tmp_path / "journal.db"))
    people = ("--people", str(crew.path))
    open_journal(state[1]).close()  # an existing journal: the bad input is the person
    assert main(["followups", "done", "1", "--as", "nobody", *state, *people]) == 2
    assert f"{crew.path}: no person named 'nobody'" in capsys.readouterr().err
    assert main(["followups", "done", "41", "--as", "lee", *state, *people]) == 2
    assert "no follow-up with id 41" in capsys.readouterr().err
    assert main(["report", "41", *state]) == 2
    assert "no incident with id 41" in capsys.readouterr().err
    assert main(["followups", *state]) == 0
    assert capsys.readouterr().out.strip() == "no open follow-ups"
