"""Plans and findings to JSON-shaped dicts and back, exactly.

The journal stores what the core decided as JSON, and a restart must act on the
very same values, so `plan_from_dict(plan_to_dict(p)) == p` for every plan (a
property test holds us to it). Enums are stored as their values; tuples are
stored as lists and restored as tuples. Step parameters may hold any JSON value:
lists inside them come back as tuples too, since plan values are immutable
(a step is never given a list it could mutate), and dicts stay dicts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from watchdog.model import (
    AuthMode,
    Authorization,
    Check,
    Finding,
    Plan,
    PreCheck,
    Risk,
    Severity,
    Step,
)


def finding_to_dict(finding: Finding) -> dict[str, Any]:
    return {
        "rule": finding.rule,
        "signal": finding.signal,
        "series": finding.series,
        "severity": finding.severity.value,
        "scenario": finding.scenario,
        "group": finding.group,
        "subject": finding.subject,
        "since": finding.since,
        "reason": finding.reason,
        "evidence": list(finding.evidence),
        "params": [[name, value] for name, value in finding.params],
        "supersedes": list(finding.supersedes),
        "headline": finding.headline,
        # Only when there is one: a finding without a value is stored as before.
        **({"value": finding.value} if finding.value is not None else {}),
    }


def finding_from_dict(data: dict[str, Any]) -> Finding:
    return Finding(
        rule=data["rule"],
        signal=data["signal"],
        series=data["series"],
        severity=Severity(data["severity"]),
        scenario=data["scenario"],
        group=data["group"],
        subject=data["subject"],
        since=data["since"],
        reason=data["reason"],
        evidence=tuple(data.get("evidence", ())),
        params=tuple((name, value) for name, value in data.get("params", ())),
        supersedes=tuple(data.get("supersedes", ())),
        headline=str(data.get("headline", "")),
        value=_number(data.get("value")),
    )


def _number(value: Any) -> float | None:
    """A stored finding's value; None for one journaled before values were kept."""
    return float(value) if isinstance(value, int | float) else None


def step_to_dict(step: Step) -> dict[str, Any]:
    return {
        "name": step.name,
        "action": step.action,
        "risk": step.risk.value,
        "params": [[name, _to_json(value)] for name, value in step.params],
        "idempotent": step.idempotent,
        "timeout_seconds": step.timeout_seconds,
        "note": step.note,
    }


def step_from_dict(data: dict[str, Any]) -> Step:
    return Step(
        name=data["name"],
        action=data["action"],
        risk=Risk(data["risk"]),
        params=tuple((name, _from_json(value)) for name, value in data.get("params", ())),
        idempotent=data.get("idempotent", True),
        timeout_seconds=data.get("timeout_seconds", 30.0),
        note=data.get("note", ""),
    )


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    auth = plan.authorization
    return {
        "scenario": plan.scenario,
        "title": plan.title,
        "steps": [step_to_dict(step) for step in plan.steps],
        "checklist": [dataclasses.asdict(check) for check in plan.checklist],
        "verify_for_seconds": plan.verify_for_seconds,
        "verify_timeout_seconds": plan.verify_timeout_seconds,
        "give_up_seconds": plan.give_up_seconds,
        "authorization": {
            "mode": auth.mode.value,
            "reason": auth.reason,
            "role": auth.role,
            "quorum": auth.quorum,
        },
        "reason": plan.reason,
        "impact": list(plan.impact),
        # Only when there are some: the digest of a plan without them stays as it was.
        **(
            {"prechecks": [dataclasses.asdict(item) for item in plan.prechecks]}
            if plan.prechecks
            else {}
        ),
        **({"runbook": plan.runbook} if plan.runbook else {}),
        **({"prepared": list(plan.prepared)} if plan.prepared else {}),
    }


def plan_from_dict(data: dict[str, Any]) -> Plan:
    auth = data["authorization"]
    return Plan(
        scenario=data["scenario"],
        title=data["title"],
        steps=tuple(step_from_dict(step) for step in data["steps"]),
        checklist=tuple(Check(**check) for check in data["checklist"]),
        verify_for_seconds=data["verify_for_seconds"],
        verify_timeout_seconds=data["verify_timeout_seconds"],
        give_up_seconds=data.get("give_up_seconds"),  # None in plans journaled before it
        authorization=Authorization(
            mode=AuthMode(auth["mode"]),
            reason=auth["reason"],
            role=auth.get("role"),
            quorum=auth.get("quorum", 0),
        ),
        reason=data["reason"],
        impact=tuple(data.get("impact", ())),
        prechecks=tuple(PreCheck(**item) for item in data.get("prechecks", ())),
        runbook=str(data.get("runbook", "")),
        prepared=tuple(str(line) for line in data.get("prepared", ())),
    )


def _to_json(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_to_json(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _to_json(item) for key, item in value.items()}
    return value


def _from_json(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_from_json(item) for item in value)
    if isinstance(value, dict):
        return {key: _from_json(item) for key, item in value.items()}
    return value


def plan_digest(plan: Plan) -> str:
    """A short fingerprint of the plan exactly as stored and shown to a human.

    An approval is recorded with the digest of the plan its giver saw, and counts
    only for a plan with the same digest: a plan replaced (a new rung, a
    re-triage, a restart that re-planned) needs its own approval.
    """
    canonical = json.dumps(plan_to_dict(plan), sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
