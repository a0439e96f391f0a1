"""Approvals that can never be given: a quorum larger than the people who hold its role.

A policy asking two `team` members to agree, with one `team` member in the people
file, parks every such plan in awaiting_approval until it expires, silently. The
check compares the authority matrix with the people file's role holders and says
each gap once, for `watchdog validate` and the daemon's start-up log.

Pure: the matrix and the role → names map go in; the warnings come out.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from watchdog.model import Risk, Severity
from watchdog.policy.schema import Approval, AuthorityRow


def unmeetable_quorums(
    authority: Mapping[Severity, AuthorityRow], holders: Mapping[str, Sequence[str]]
) -> Iterator[str]:
    """One sentence per (severity, risk) whose approval the people file cannot give."""
    for severity in sorted(authority, key=lambda s: s.rank):
        row = authority[severity]
        for risk in Risk:
            rule = getattr(row, risk.value)
            if not isinstance(rule, Approval):
                continue
            names = list(holders.get(rule.role, ()))
            if len(names) >= rule.quorum:
                continue
            who = ", ".join(names) if names else "nobody"
            yield (
                f"authority.{severity.value}.{risk.value}: {rule.quorum} distinct "
                f"{rule.role} must approve, and the people file has {len(names)} ({who}): "
                f"a {severity.value} plan with a {risk.value} step can never be approved; "
                f"add people with `watchdog people add NAME --role {rule.role}` or lower "
                "the quorum"
            )
