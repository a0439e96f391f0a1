"""Authorisation: who must agree before a plan runs (the runbook's matrix, as data).

The matrix maps severity × step risk to `auto`, `never` or an approval by a role
with a quorum. A plan is only as automatic as its least automatic step: a
migration rollback that starts by stopping services waits for its approval
before the first stop, so a human never finds the stack half rolled back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from watchdog.model import AuthMode, Authorization, Risk, Severity, Step
from watchdog.policy.schema import Approval, AuthorityRow


def authorize_step(
    severity: Severity, risk: Risk, authority: Mapping[Severity, AuthorityRow]
) -> Authorization:
    row = authority.get(severity)
    if row is None:
        return Authorization(AuthMode.NEVER, f"no authority row for {severity}: nothing runs")
    rule = getattr(row, risk.value)
    why = f" ({row.why})" if row.why else ""
    if rule == "auto":
        return Authorization(AuthMode.AUTO, f"{risk} steps of a {severity} run without approval")
    if rule == "never":
        return Authorization(AuthMode.NEVER, f"{risk} steps of a {severity} never run{why}")
    assert isinstance(rule, Approval)
    who = f"{rule.quorum} distinct {rule.role}" if rule.quorum > 1 else f"one {rule.role}"
    return Authorization(
        AuthMode.APPROVAL,
        f"{risk} steps of a {severity} need approval by {who}{why}",
        role=rule.role,
        quorum=rule.quorum,
    )


def authorize_plan(
    severity: Severity, steps: Sequence[Step], authority: Mapping[Severity, AuthorityRow]
) -> Authorization:
    """What happens to this plan, in words: it runs now, it waits for someone, or never runs.

    The plan is as automatic as its strictest step, which the sentence names; a plan
    that runs at once does not quote the rule for the approvals it does not need.
    """
    if not steps:
        return Authorization(AuthMode.AUTO, "no steps to run: notify only")
    strictest: tuple[int, Authorization, Step] | None = None
    for step in steps:
        decision = authorize_step(severity, step.risk, authority)
        weight = _weight(decision)
        if strictest is None or weight > strictest[0]:
            strictest = (weight, decision, step)
    assert strictest is not None
    _, decision, step = strictest
    count = f"all {len(steps)} steps are" if len(steps) > 1 else "its one step is"
    if decision.mode is AuthMode.AUTO:
        return Authorization(
            AuthMode.AUTO, f"runs now, no approval needed: {count} {step.risk}"
        )
    if decision.mode is AuthMode.NEVER:
        return Authorization(
            AuthMode.NEVER,
            f"nothing runs: step {step.name!r} is {step.risk}, and {decision.reason}",
        )
    return Authorization(
        decision.mode,
        f"nothing runs until approved: step {step.name!r} is {step.risk}, and {decision.reason}",
        role=decision.role,
        quorum=decision.quorum,
    )


def counted_approvers(
    decisions: Iterable[tuple[str, str, str]], role: str | None
) -> tuple[str, ...]:
    """Who counts toward a quorum: each distinct person who approved in `role`, once.

    `decisions` are (person, role, decision) as the journal keeps them; the daemon
    (to start the plan) and the approval commands (to refuse a second vote by the
    same person) both count with this, so they never disagree.
    """
    return tuple(sorted({p for p, r, d in decisions if d == "approve" and r == role}))


def _weight(decision: Authorization) -> int:
    if decision.mode is AuthMode.NEVER:
        return 1000
    if decision.mode is AuthMode.APPROVAL:
        return 100 + decision.quorum
    return 0
