"""A quorum the people file cannot meet: said by `validate` and at start-up, not at 3 a.m."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.helpers import SONGNODES, songnodes
from watchdog.cli import main
from watchdog.policy.quorums import unmeetable_quorums


def test_a_quorum_larger_than_its_role_is_named_with_the_fix() -> None:
    policy = songnodes()
    holders = {"oncall": ["olga"], "lead": ["lee"], "team": ["tara"]}
    warnings = list(unmeetable_quorums(policy.authority, holders))
    assert warnings == [
        "authority.P2.risky: 2 distinct team must approve, and the people file has 1 (tara): "
        "a P2 plan with a risky step can never be approved; add people with "
        "`watchdog people add NAME --role team` or lower the quorum"
    ]
    assert list(unmeetable_quorums(policy.authority, {**holders, "team": ["tara", "tom"]})) == []


def test_validate_warns_with_the_people_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    people = tmp_path / "people.yaml"
    assert main(["people", "add", "olga", "--role", "oncall", "--people", str(people)]) == 0
    assert main(["validate", str(SONGNODES), "--people", str(people)]) == 0
    out = capsys.readouterr().out
    assert "songnodes.yaml: ok" in out
    assert "warning: authority.P1.risky: 1 distinct lead must approve, and the people file " \
        "has 0 (nobody)" in out
