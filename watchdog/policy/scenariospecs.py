"""When something is wrong and what to do: rules, scenarios of steps, and authority.

Rules turn signals into findings at a severity; scenarios are the runbook's
remediation ladders (steps, the checklist that proves them, the automatic
re-enable); the authority rows say, per severity and risk, who must agree.
Re-exported by `watchdog.policy.schema`, where other code imports them from.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from watchdog.model import Risk, Severity
from watchdog.policy.durations import Duration
from watchdog.policy.impactspecs import PrecheckSpec
from watchdog.policy.specbase import Op, Strict


class AfterChange(Strict):
    """Where a rule's finding goes when the failing service changed shortly before.

    `signal` is a Docker signal of metric `changed` (seconds since the service's
    image or configuration stopped matching its last known good record); when that
    change is at most `within` older than the failure, the finding opens `scenario`
    (runbook scenario 1: a new version that fails) instead of the rule's own. One
    rule, two routes: the plain restart and the revert of a bad deploy never race.
    """

    signal: str
    within: Duration
    scenario: str
    severity: Severity | None = Field(None, description="the rule's own when absent")
    runbook: str = Field("", description="the runbook row of this route; the rule's when empty")


class RuleSpec(Strict):
    """A threshold held for `for` seconds fires; it clears only after `clear_for`."""

    name: str
    runbook: str = Field("", description="the runbook row this rule encodes")
    signal: str
    op: Op
    threshold: float
    measure: Literal["value", "change_per_minute"] = "value"
    window: Duration = Field(60.0, description="how far back change_per_minute looks")
    for_: Duration = Field(0.0, alias="for")
    clear_for: Duration = 0.0
    on_error: Literal["hold", "breach"] = Field(
        "hold", description="what an observation without a value means for this rule"
    )
    severity: Severity
    scenario: str
    group: str | None = Field(None, description="findings of one group share an incident")
    subject: str = Field("", description="template of the incident's subject, e.g. '{series}'")
    params: dict[str, str] = Field(default_factory=dict)
    supersedes: list[str] = Field(default_factory=list)
    says: str = Field("", description="the words for the signal, e.g. 'DLQ depth'")
    after_change: AfterChange | None = Field(
        None, description="another scenario when the service changed just before it failed"
    )


class StepSpec(Strict):
    name: str
    action: str
    params: dict[str, Any] = Field(default_factory=dict)
    risk: Risk | None = Field(None, description="defaults to the action's own risk class")
    timeout: Duration = 30.0
    note: str = ""


class CheckSpec(Strict):
    """One line of the post-rollback checklist; `signal` may be a template ('{health_signal}')."""

    description: str
    signal: str
    op: Op
    threshold: float
    measure: Literal["value", "change_per_minute"] = "value"
    window: Duration = 60.0
    series: str = Field("", description="only this series (a template, e.g. '{subject}')")


class ReenableSpec(Strict):
    """Putting back what a scenario took out of use, once its cause is healthy again.

    A provider disable is a tourniquet, not a cure: when the checks of `healthy`
    have held for `healthy_for` (by default the `clear_for` of the rules behind
    the incident) after the incident resolved, the daemon opens a follow-up
    incident whose plan is the scenario `scenario`; its steps may name
    `{undoes}`, the incident whose change they undo (`{incident}` is, as in every
    plan, the id of the plan's own incident).
    """

    scenario: str
    healthy: list[CheckSpec] = Field(min_length=1)
    healthy_for: Duration | None = None


class ScenarioSpec(Strict):
    title: str
    runbook: str = ""
    steps: list[StepSpec] = Field(default_factory=list)
    checklist: list[CheckSpec] = Field(default_factory=list)
    verify_for: Duration = 30.0
    verify_timeout: Duration = 120.0
    # Off unless a scenario says: giving up climbs to `next`, and a ladder whose next
    # rung is heavier (a restore) must not be climbed on a guess about a slow start.
    give_up: Duration | None = Field(
        None,
        description="give the plan up (climb to `next`, else page) once its checklist has "
        "failed with the very same reading for this long after the steps, instead of "
        "waiting out verify_timeout: the steps did not change what the rule sees. Set it "
        "above the slowest start of the services the plan touches; unset, the plan waits "
        "out verify_timeout",
    )
    impact: list[str] = Field(default_factory=list)
    #: The runbook's Quick Reference "Rollback Time" for this scenario: the expected
    #: duration until the journal holds three past runs of it on this stack.
    expected_duration: Duration | None = None
    fix_forward: str = Field(
        "", description="the policy's note on fixing forward instead of rolling back"
    )
    prechecks: list[PrecheckSpec] = Field(default_factory=list)
    skip_post_rollback: list[str] = Field(
        default_factory=list,
        description="signals of the shared post_rollback checklist this plan cannot be "
        "verified by (it stops the service they are read from)",
    )
    next: str | None = Field(
        None, description="the next rung of the remediation ladder when this one fails"
    )
    reenable: ReenableSpec | None = Field(
        None, description="undo this scenario's change automatically once healthy again"
    )
    # Scenario 5's prepared plan (stop everything, rebuild, restore) is run by a person
    # who typed the stack's name: no rule, ladder or re-enable may lead the daemon to it.
    by_hand_only: bool = Field(
        False,
        description="the daemon never runs this plan on its own: only `watchdog rollback "
        "--full` or `watchdog emergency-stop` do, after a typed confirmation",
    )
    prepared: str | None = Field(
        None,
        description="a by_hand_only scenario whose plan is prepared and paged with this one's, "
        "for a person to run by hand if this plan does not recover the stack",
    )


class Approval(Strict):
    role: str
    quorum: int = Field(1, ge=1)


AuthRule = Literal["auto", "never"] | Approval


class AuthorityRow(Strict):
    safe: AuthRule
    risky: AuthRule
    destructive: AuthRule
    why: str = ""
