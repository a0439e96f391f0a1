"""The policy cannot widen its own powers: not an action's risk, not a shell command."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel

from tests.unit.helpers import songnodes
from watchdog.model import AuthMode, Risk, Severity
from watchdog.policy.catalogue import ACTIONS
from watchdog.policy.planner import plan_for
from watchdog.policy.powers import effective_risk, lowers_risk, within
from watchdog.policy.schema import Policy

RESTORE = "database_migration_failure"


def test_a_step_may_raise_an_actions_risk_never_lower_it() -> None:
    assert effective_risk(Risk.RISKY, Risk.SAFE) is Risk.RISKY
    assert effective_risk(Risk.RISKY, Risk.DESTRUCTIVE) is Risk.DESTRUCTIVE
    assert effective_risk(Risk.SAFE, None) is Risk.SAFE
    assert lowers_risk(Risk.DESTRUCTIVE, Risk.RISKY)
    assert not lowers_risk(Risk.SAFE, Risk.RISKY)


def test_a_policy_that_skipped_validation_still_cannot_run_a_restore_unapproved_at_p2() -> None:
    """`watchdog validate` refuses `risk: safe` on database.restore (test_validate); the
    planner does not trust a Policy built without it either."""
    policy = songnodes()
    scenario = policy.scenarios[RESTORE]
    lowered = [
        s.model_copy(update={"risk": Risk.SAFE})
        if s.action in ("database.restore", "migrations.down")
        else s
        for s in scenario.steps
    ]
    forged = policy.model_copy(
        update={"scenarios": {RESTORE: scenario.model_copy(update={"steps": lowered})}}
    )
    plan = plan_for(
        forged, scenario=RESTORE, severity=Severity.P2, subject="musicdb", params={}, why="test"
    )
    risks = {s.action: s.risk for s in plan.steps}
    assert risks["database.restore"] is Risk.RISKY
    assert risks["migrations.down"] is Risk.RISKY
    assert plan.authorization.mode is not AuthMode.AUTO


def test_paths_inside_the_migrations_folder_by_their_words() -> None:
    assert within("sql/migrations/medallion", "sql/migrations")
    assert within("./sql/migrations/", "sql/migrations")
    assert not within("sql/migrations-old", "sql/migrations")
    assert not within("/sql/migrations", "sql/migrations")
    assert not within("sql", "sql/migrations")


#: Words that would make a field a command line, a program or a script to run.
COMMAND_WORDS = (
    "command", "cmd", "argv", "args", "exec", "shell", "script", "program", "entrypoint",
    "hook", "run", "subprocess", "popen", "binary", "executable",
)


def _models(model: type[BaseModel], seen: set[type[BaseModel]]) -> None:
    if model in seen:
        return
    seen.add(model)
    for field in model.model_fields.values():
        for inner in _types(field.annotation):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                _models(inner, seen)


def _types(annotation: Any) -> list[Any]:
    found = [annotation]
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _types(typing.get_args(annotation)[0])
    if origin is not None or isinstance(annotation, types.UnionType):
        for arg in typing.get_args(annotation):
            found += _types(arg)
    return found


def _command_like(name: str) -> list[str]:
    parts = name.lower().replace("-", "_").split("_")
    return [w for w in COMMAND_WORDS if w in parts]


def test_no_field_of_a_policy_names_a_command_to_run() -> None:
    """Walk every model a policy file can hold, and every action parameter a step
    can pass: none is a command, an argv, a script or a program. The only programs
    the watchdog starts are psql and pg_dump, with argv it builds itself."""
    seen: set[type[BaseModel]] = set()
    _models(Policy, seen)
    assert len(seen) > 20  # the walk reached the signal kinds, steps, authority...
    fields = {
        f"{model.__name__}.{name}": name for model in seen for name in model.model_fields
    }
    fields.update(
        {
            f"{action}.params.{name}": name
            for action, spec in ACTIONS.items()
            for name in (*spec.required, *spec.optional)
        }
    )
    assert "StepSpec.params" in fields and "http.call.params.path" in fields
    offending = {where: _command_like(name) for where, name in fields.items()}
    assert {where: words for where, words in offending.items() if words} == {}
