"""Plans only a person runs: out of the daemon's reach, and never able to destroy.

Also the one cross-check scenario 5's steps need: a `system.resources` step names
signals of the policy, with an operator and a number, so a typo fails `watchdog
validate` and not the rollback at 3 a.m.

Scenario 5's prepared plan (snapshot, emergency stop, resource checks, rebuild,
database restore) stops the whole stack; a scenario marked `by_hand_only` is run
by `watchdog rollback --full` or `watchdog emergency-stop` after the operator
typed the stack's name, never by a rule. And whatever a plan is, the runbook's
`docker compose down -v`, `docker system prune` and `git reset --hard` are in
none: no action of the catalogue does them (`FORBIDDEN` names them for the tests).
"""

from __future__ import annotations

from collections.abc import Iterator

from watchdog.policy.problems import Problem
from watchdog.policy.schema import Policy

OPS = (">", ">=", "<", "<=", "==", "!=")

#: What the runbook's scenario 5 does that no plan of the watchdog may ever do.
FORBIDDEN = ("down -v", "system prune", "volume prune", "volume rm", "git reset")


def by_hand_problems(policy: Policy) -> Iterator[Problem]:
    """A by-hand-only scenario must be out of the daemon's reach: no rule (nor its
    after-change route), no ladder's `next` and no re-enable leads to it."""
    leads = [(f"rules[{i}].scenario", r.scenario) for i, r in enumerate(policy.rules)]
    leads += [
        (f"rules[{i}].after_change.scenario", r.after_change.scenario)
        for i, r in enumerate(policy.rules)
        if r.after_change is not None
    ]
    for name, scenario in policy.scenarios.items():
        if scenario.next is not None:
            leads.append((f"scenarios.{name}.next", scenario.next))
        if scenario.reenable is not None:
            leads.append((f"scenarios.{name}.reenable.scenario", scenario.reenable.scenario))
    for path, target in leads:
        spec = policy.scenarios.get(target)
        if spec is not None and spec.by_hand_only:
            yield Problem(
                path, repr(target),
                "a scenario the daemon may run on its own: this one is by_hand_only "
                "(watchdog rollback --full runs it)",
            )
    for name, scenario in policy.scenarios.items():
        prepared = scenario.prepared
        spec = policy.scenarios.get(prepared) if prepared is not None else None
        if prepared is not None and (spec is None or not spec.by_hand_only):
            yield Problem(
                f"scenarios.{name}.prepared", repr(prepared),
                "the name of a by_hand_only scenario (the plan a person runs by hand)",
            )



def resource_check_problems(policy: Policy) -> Iterator[Problem]:
    """Each `system.resources` check: {signal: one of the policy's, op, threshold: number}."""
    signals = {s.name for s in policy.signals}
    for name, scenario in policy.scenarios.items():
        for index, step in enumerate(scenario.steps):
            if step.action != "system.resources":
                continue
            checks = step.params.get("checks")
            path = f"scenarios.{name}.steps[{index}].params.checks"
            if not isinstance(checks, list) or not checks:
                yield Problem(path, repr(checks), "a list of {signal, op, threshold}")
                continue
            for number, check in enumerate(checks):
                where = f"{path}[{number}]"
                if not isinstance(check, dict):
                    yield Problem(where, repr(check), "{signal, op, threshold}")
                    continue
                if check.get("signal") not in signals:
                    yield Problem(f"{where}.signal", repr(check.get("signal")),
                                  "one of the policy's signals (disk_used, memory_used)")
                if check.get("op") not in OPS:
                    yield Problem(f"{where}.op", repr(check.get("op")), " ".join(OPS))
                threshold = check.get("threshold")
                if isinstance(threshold, bool) or not isinstance(threshold, int | float):
                    yield Problem(f"{where}.threshold", repr(threshold), "a number")
