"""Planner: a scenario and the finding behind it become a concrete Plan.

The plan is complete before anything runs — steps with their parameters filled
in, the checklist that will prove success, who must authorise it and the impact
a human should weigh — so it can be journaled, paged and approved as one value,
and what runs is exactly what was approved.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from watchdog.model import Check, Plan, Severity, Step
from watchdog.policy.authorize import authorize_plan
from watchdog.policy.catalogue import ACTIONS, assess_idempotence
from watchdog.policy.durations import format_duration
from watchdog.policy.impact import assess_impact
from watchdog.policy.powers import effective_risk
from watchdog.policy.prechecks import PrecheckFacts, blocking, judge
from watchdog.policy.schema import CheckSpec, Policy, StepSpec


class _Words(dict[str, str]):
    """Template values; a name with no value stays visible instead of vanishing."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def plan_for(
    policy: Policy,
    *,
    scenario: str,
    severity: Severity,
    subject: str,
    params: Mapping[str, str],
    why: str,
) -> Plan:
    spec = policy.scenarios[scenario]
    words = _Words(params)
    words.setdefault("subject", subject)
    steps = tuple(_step(step, words) for step in spec.steps)
    checklist = render_checks(spec.checklist, words)
    if steps:  # a rollback: the runbook's shared post-rollback checks too
        checklist += shared_checks(policy, spec.skip_post_rollback, checklist, words)
    authorization = authorize_plan(severity, steps, policy.authority)
    return Plan(
        scenario=scenario,
        title=_render(spec.title, words),
        steps=steps,
        checklist=checklist,
        verify_for_seconds=spec.verify_for,
        verify_timeout_seconds=spec.verify_timeout,
        give_up_seconds=spec.give_up,
        authorization=authorization,
        reason=f"{severity} {scenario}"
        + (f" ({spec.runbook})" if spec.runbook else "")
        + f": {why}",
        impact=_impact(policy, spec.impact, steps, spec.verify_for, words),
        runbook=spec.runbook,
        prepared=_prepared(policy, spec.prepared, words),
    )


def _step(spec: StepSpec, words: _Words) -> Step:
    """One step with its templates filled in; its idempotence judged on the filled params.

    `{incident}` is the id of the incident the plan is for, which the engine passes
    in `params`; a step that names it (provider.disable writes its undo record
    under it) is idempotent only once it is filled in.
    """
    params = {key: _render(value, words) for key, value in spec.params.items()}
    return Step(
        name=_render(spec.name, words),
        action=spec.action,
        risk=effective_risk(ACTIONS[spec.action].risk, spec.risk),
        params=tuple(sorted(params.items())),
        idempotent=assess_idempotence(spec.action, params).idempotent,
        timeout_seconds=spec.timeout,
        note=_render(spec.note, words),
    )


def render_checks(specs: Sequence[CheckSpec], params: Mapping[str, str]) -> tuple[Check, ...]:
    """Checklist lines with their templates ('{provider}', '{subject}') filled in."""
    words = params if isinstance(params, _Words) else _Words(params)
    return tuple(
        Check(
            _render(c.description, words),
            _render(c.signal, words),
            c.op,
            c.threshold,
            c.measure,
            c.window,
            _render(c.series, words),
        )
        for c in specs
    )


def shared_checks(
    policy: Policy, skipped: Sequence[str], own: Sequence[Check], words: Mapping[str, str]
) -> tuple[Check, ...]:
    """The policy's `post_rollback` checks this plan adds to its own checklist.

    The scenario's own item on a signal wins (scenario 1 allows the two services
    it stopped to stay down); a signal the scenario skips (its source is a
    service the plan stops) or that the policy does not read is left out.
    """
    enabled = {s.name for s in policy.signals if s.enabled}
    taken = {check.signal for check in own} | set(skipped)
    return tuple(
        check
        for check in render_checks(policy.post_rollback, words)
        if check.signal not in taken and check.signal in enabled
    )


def with_assessment(
    policy: Policy, plan: Plan, facts: PrecheckFacts, now: float
) -> tuple[Plan, str | None]:
    """The plan with its impact assessment and pre-rollback verdicts, and why it must
    not act (a required item not satisfied), or None."""
    spec = policy.scenarios.get(plan.scenario)
    if spec is None:
        return plan, None
    impact = assess_impact(
        plan,
        facts.impact,
        now,
        expected=spec.expected_duration,
        fix_forward=spec.fix_forward,
    )
    verdicts = judge(spec.prechecks, plan, facts, now)
    assessed = replace(plan, impact=(*plan.impact, *impact), prechecks=verdicts)
    return assessed, blocking(verdicts)


#: How a person runs a by-hand plan (commands/fullrollback.py).
FULL_ROLLBACK = "watchdog rollback --full --policy POLICY"
PREPARED_COMMAND = (
    f"by hand, if this plan does not recover the stack: `{FULL_ROLLBACK}` (type the "
    "stack's name; each risky step asks again), or `watchdog emergency-stop --policy "
    "POLICY` for the snapshot and the stop alone"
)


def _prepared(policy: Policy, name: str | None, words: _Words) -> tuple[str, ...]:
    """The by-hand plan's command and its steps, numbered, for the page."""
    if name is None:
        return ()
    steps = [_step(step, words) for step in policy.scenarios[name].steps]
    return (
        PREPARED_COMMAND,
        *(f"{i}. {s.name} ({s.action}, {s.risk.value})" for i, s in enumerate(steps, 1)),
    )


def _impact(
    policy: Policy, lines: list[str], steps: tuple[Step, ...], verify_for: float, words: _Words
) -> tuple[str, ...]:
    stopped = sorted(
        {
            service
            for step in steps
            if step.action in ("service.stop", "service.restart")
            for service in step.param_map().get("services", [])
        }
    )
    protected = sorted(set(stopped) & set(policy.stack.protected_services))
    expected = sum(step.timeout_seconds for step in steps) + verify_for
    facts = [_render(line, words) for line in lines]
    if stopped:
        facts.append("services stopped or restarted: " + ", ".join(stopped))
    if protected:
        facts.append(
            "PROTECTED services in this plan (never touched automatically): " + ", ".join(protected)
        )
    facts.append(f"at most {format_duration(expected)} including verification")
    return tuple(facts)


def _render(value: Any, words: _Words) -> Any:
    if isinstance(value, str):
        return value.format_map(words)
    if isinstance(value, list):
        return [_render(item, words) for item in value]
    if isinstance(value, dict):
        return {key: _render(item, words) for key, item in value.items()}
    return value


def protected_in(plan: Plan, protected: Iterable[str]) -> list[str]:
    """The protected services an automatic plan would touch."""
    return sorted(set(plan_targets(plan, "")) & set(protected))


def plan_targets(plan: Plan, key: str) -> list[str]:
    """What a plan changes, for cooldowns: the services it stops or restarts, and the incident.

    Targets that are only read or reloaded are left out: reloading the
    configuration twice in a minute is harmless, restarting a service twice is a loop.
    """
    touched: set[str] = {f"incident:{key}"}
    for step in plan.steps:
        params = step.param_map()
        services = params.get("services", params.get("service", []))
        touched.update([services] if isinstance(services, str) else [str(s) for s in services])
    return sorted(touched)
