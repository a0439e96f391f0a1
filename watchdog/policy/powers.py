"""The policy cannot widen its own powers.

A policy file is trusted to say *when* and *with whose approval* the watchdog
acts, not to make an action less dangerous than the catalogue says it is, nor to
point an action at files outside what it declares:

- a step's `risk:` may raise its action's own risk (`ACTIONS[...].risk`), never
  lower it: `database.restore` marked `safe` would run by itself at P2, where the
  authority table lets only safe steps run unapproved;
- migration files come only from the policy's one declared folder,
  `stack.migrations_dir`: every step's `migration_dirs` must lie inside it. This
  check is lexical (the core reads no disk); the action checks it again on the
  real paths, symlinks resolved (`watchdog.actions.database_migrations`).

Pure: a validated `Policy` in, problems out.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from watchdog.model import Risk
from watchdog.policy.catalogue import ACTIONS
from watchdog.policy.problems import Problem
from watchdog.policy.schema import Policy

#: Risks from least to most harmful.
RISK_ORDER: tuple[Risk, ...] = (Risk.SAFE, Risk.RISKY, Risk.DESTRUCTIVE)


def lowers_risk(action_risk: Risk, step_risk: Risk | None) -> bool:
    """Whether a step's stated risk is below its action's own: never allowed."""
    if step_risk is None:
        return False
    return RISK_ORDER.index(step_risk) < RISK_ORDER.index(action_risk)


def effective_risk(action_risk: Risk, step_risk: Risk | None) -> Risk:
    """The higher of the action's own risk and the step's: a step may only raise it."""
    if step_risk is None or lowers_risk(action_risk, step_risk):
        return action_risk
    return step_risk


def power_problems(policy: Policy) -> Iterator[Problem]:
    """Steps that would lower an action's risk or reach outside the migrations folder."""
    root = policy.stack.migrations_dir
    for name, scenario in policy.scenarios.items():
        for index, step in enumerate(scenario.steps):
            path = f"scenarios.{name}.steps[{index}]"
            action = ACTIONS.get(step.action)
            if action is None:
                continue  # named by checks.py
            if step.risk is not None and lowers_risk(action.risk, step.risk):
                yield Problem(
                    f"{path}.risk",
                    f"{step.risk.value!r} (step {step.name!r})",
                    f"at least {action.risk.value!r}, the own risk of {step.action}: "
                    "a step may raise an action's risk, never lower it",
                )
            if "migration_dirs" in step.params:
                yield from _migration_dir_problems(
                    f"{path}.params.migration_dirs",
                    step.params["migration_dirs"],
                    root,
                    base_given="base_dir" in step.params,
                )


def _migration_dir_problems(
    path: str, raw: Any, root: str | None, *, base_given: bool
) -> Iterator[Problem]:
    folders = [raw] if isinstance(raw, str) else raw
    if not isinstance(folders, list) or not folders:
        yield Problem(path, repr(raw), "a folder, or a list of folders, of migration files")
        return
    if root is None:
        yield Problem(
            path,
            repr(raw),
            "folders inside stack.migrations_dir, which this policy does not declare: "
            "migration files run only from the policy's one migrations folder",
        )
        return
    for position, folder in enumerate(folders):
        where = f"{path}[{position}]" if not isinstance(raw, str) else path
        if not isinstance(folder, str) or not folder:
            yield Problem(where, repr(folder), "the path of a folder")
        elif ".." in _parts(folder):
            yield Problem(where, repr(folder), "a path without '..'")
        elif not base_given and not within(folder, root):
            yield Problem(
                where,
                repr(folder),
                f"a folder inside stack.migrations_dir ({root!r})",
            )


def within(folder: str, root: str) -> bool:
    """Whether `folder` is `root` or below it, by the words of the paths alone."""
    if folder.startswith("/") != root.startswith("/"):
        return False
    mine, theirs = _parts(folder), _parts(root)
    return mine[: len(theirs)] == theirs


def _parts(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]
