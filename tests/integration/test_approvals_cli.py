"""`watchdog people` and `watchdog approve|reject` as an operator types them, against a journal.

The daemon side of a CLI decision is in test_approvals_daemon.py; here: the
token printed once and only its hash stored, roles checked, and each refusal's
message and exit code (0 recorded, 1 refused, 2 bad input).
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.integration.approvals_fixtures import awaiting
from tests.integration.test_cli_and_bad_targets import run_cli
from watchdog.demo import POLICY
from watchdog.people import People
from watchdog.policyfile import load_policy
from watchdog.store.journal import open_journal


def test_people_add_prints_the_token_once_and_stores_only_its_hash(tmp_path: Path) -> None:
    people = tmp_path / "people.yaml"
    added = run_cli("people", "add", "lee", "--role", "lead", "--people", str(people))
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip().splitlines()[-1]
    assert len(token) >= 60 and token.split(".")[1] not in people.read_text()
    assert People(people).sign_in("lee", token) is not None

    listed = run_cli("people", "list", "--people", str(people))
    assert listed.stdout.strip() == "lee  lead" and token not in listed.stdout

    boss = run_cli("people", "add", "bo", "--role", "boss", "--people", str(people))
    assert boss.returncode == 2
    assert "role 'boss' is not one of the policy's roles (oncall, lead, team)" in boss.stderr
    checked = run_cli(
        "people", "add", "bo", "--role", "boss", "--people", str(people), "--policy", str(POLICY)
    )
    assert checked.returncode == 2 and "'boss'" in checked.stderr
    unset = {k: v for k, v in os.environ.items() if k != "WATCHDOG_PEOPLE"}
    nowhere = run_cli("people", "add", "bo", "--role", "lead", env=unset)
    assert nowhere.returncode == 2 and "set WATCHDOG_PEOPLE or pass --people" in nowhere.stderr


def test_approve_and_reject_from_the_cli_with_their_exit_codes(tmp_path: Path) -> None:
    people = tmp_path / "people.yaml"
    for name, role in (("lee", "lead"), ("tara", "team")):
        assert (
            run_cli("people", "add", name, "--role", role, "--people", str(people)).returncode == 0
        )
    state = str(tmp_path / "journal.db")
    journal = open_journal(state)
    incident = awaiting(journal, load_policy(POLICY), "database_migration_failure")
    journal.close()
    where = ("--state", state, "--people", str(people))

    wrong_role = run_cli("approve", str(incident), "--as", "tara", *where)
    assert wrong_role.returncode == 1 and "its plan needs a lead" in wrong_role.stderr
    nobody = run_cli("approve", str(incident), "--as", "zed", *where)
    assert nobody.returncode == 2 and "no person named 'zed'" in nobody.stderr
    missing = run_cli("approve", "77", "--as", "lee", *where)
    assert missing.returncode == 2 and "no incident 77" in missing.stderr
    bare = run_cli("reject", str(incident), "--as", "lee", *where)
    assert bare.returncode == 2 and "--comment" in bare.stderr

    approved = run_cli("approve", str(incident), "--as", "lee", "--comment", "go", *where)
    assert approved.returncode == 0, approved.stderr
    assert approved.stdout.strip() == (
        f"incident {incident}: lee (lead) approved; 1 of 1 distinct lead approvals: "
        "the daemon starts the plan on its next tick"
    )
    twice = run_cli("approve", str(incident), "--as", "lee", *where)
    assert twice.returncode == 1 and "counts once" in twice.stderr
    rejected = run_cli(
        "reject", str(incident), "--as", "lee", "--comment", "changed my mind", *where
    )
    assert rejected.returncode == 0 and "escalates" in rejected.stdout

    shown = run_cli("incidents", "show", str(incident), "--state", state).stdout
    assert "lee (lead) approve: go" in shown and "lee (lead) reject: changed my mind" in shown
    assert "lee (lead) approved: go" in shown  # the timeline line
