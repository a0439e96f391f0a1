"""Who may end an incident by hand, and which: `assess_close` and the policy's close_roles.

Pure: an incident record, a person and a comment in, a verdict with its HTTP
status and reason out. The refusals come in a fixed order (422, 404, 403, 409),
so a caller without the role learns nothing about the incident's state.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.unit.helpers import SONGNODES
from watchdog.cli import main
from watchdog.engine.approvals import COMMENT_LIMIT
from watchdog.engine.closing import DEFAULT_CLOSE_ROLES, CloseVerdict, assess_close
from watchdog.model import Severity
from watchdog.people import Person
from watchdog.policy.lifecycle import FINAL, STATES
from watchdog.policyfile import load_policy
from watchdog.store.records import IncidentRecord

CLOSE_ROLES = ("oncall", "lead")
LEE = Person("lee", ("lead",), "unused")
OLGA = Person("olga", ("oncall",), "unused")
TARA = Person("tara", ("team",), "unused")
LENA = Person("lena", ("team", "lead"), "unused")


def record(state: str, *, closed_at: float | None = None) -> IncidentRecord:
    final = state in FINAL
    return IncidentRecord(
        id=7,
        key="database_unavailable/postgres",
        severity=Severity.P0,
        scenario="database_unavailable",
        subject="postgres",
        state=state,
        reason="postgres down",
        opened_at=100.0,
        updated_at=120.0,
        closed_at=closed_at if closed_at is not None else (130.0 if final else None),
    )


def verdict(
    state: str | None,
    person: Person = LEE,
    comment: str = "fixed by hand",
    close_roles: tuple[str, ...] = CLOSE_ROLES,
) -> CloseVerdict:
    return assess_close(
        incident_id=7,
        record=None if state is None else record(state),
        person=person,
        comment=comment,
        close_roles=close_roles,
    )


@pytest.mark.parametrize("state", [s for s in STATES if s not in FINAL])
def test_every_state_not_final_can_be_closed_by_a_lead_or_the_oncall(state: str) -> None:
    for person, role in ((LEE, "lead"), (OLGA, "oncall")):
        allowed = verdict(state, person)
        assert allowed == CloseVerdict(
            True, 200, f"{person.name} ({role}) closes incident 7 ({state})", role
        )


@pytest.mark.parametrize("state", sorted(FINAL))
def test_a_final_incident_is_a_409_naming_its_state(state: str) -> None:
    refused = verdict(state)
    assert (refused.allowed, refused.status, refused.role) == (False, 409, None)
    assert refused.reason == (
        f"incident 7 is already {state}; only an incident not yet final (closed, resolved) "
        "can be closed"
    )


def test_an_incident_the_journal_closed_in_another_state_is_final_too() -> None:
    ended = assess_close(
        incident_id=7,
        record=record("escalated", closed_at=150.0),
        person=LEE,
        comment="x",
        close_roles=CLOSE_ROLES,
    )
    assert (ended.allowed, ended.status) == (False, 409)


def test_a_person_without_a_close_role_is_a_403_naming_who_may() -> None:
    refused = verdict("escalated", TARA)
    assert (refused.allowed, refused.status) == (False, 403)
    assert refused.reason == (
        "tara (team) may not close incident 7: closing needs one of the roles oncall, lead "
        "(policy close_roles)"
    )


def test_the_role_recorded_is_the_first_close_role_the_person_holds() -> None:
    assert verdict("executing", LENA).role == "lead"
    assert verdict("executing", LENA, close_roles=("team", "lead")).role == "team"
    assert verdict("executing", TARA, close_roles=("team",)).allowed
    assert not verdict("executing", LEE, close_roles=("team",)).allowed


@pytest.mark.parametrize(
    ("comment", "expected"),
    [
        ("", "comment: empty; expected a few words on why the incident is closed"),
        ("  \n\t ", "comment: empty; expected a few words on why the incident is closed"),
        ("x" * (COMMENT_LIMIT + 1), f"expected at most {COMMENT_LIMIT}"),
        ("ok\x00", "comment: expected printable text, found control characters"),
        ("ok\ud800", "comment: expected printable text, found control characters"),
    ],
)
def test_a_close_without_a_usable_comment_is_a_422(comment: str, expected: str) -> None:
    refused = verdict("escalated", comment=comment)
    assert (refused.allowed, refused.status) == (False, 422)
    assert expected in refused.reason


def test_refusals_come_in_order_so_the_state_leaks_to_no_one_without_the_role() -> None:
    assert verdict(None, TARA, comment="").status == 422
    assert verdict(None, TARA).status == 404
    assert verdict(None, TARA).reason == "no incident 7"
    assert verdict("resolved", TARA).status == 403
    assert verdict("resolved", LEE).status == 409


def test_close_roles_default_to_oncall_and_lead_and_the_shipped_policy_says_so() -> None:
    assert DEFAULT_CLOSE_ROLES == ("oncall", "lead")
    assert load_policy(SONGNODES).close_roles == ["oncall", "lead"]


def bad_policy(tmp_path: Path, close_roles: object) -> Path:
    data = yaml.safe_load(SONGNODES.read_text())
    data["close_roles"] = close_roles
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("close_roles", "message"),
    [
        (["lead", "cto"], "close_roles[1]: found 'cto'; expected one of the roles"),
        ([], "close_roles"),
        ("lead", "close_roles"),
    ],
)
def test_close_roles_must_be_some_of_the_policys_roles(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], close_roles: object, message: str
) -> None:
    path = bad_policy(tmp_path, close_roles)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: " in err and message in err, err
