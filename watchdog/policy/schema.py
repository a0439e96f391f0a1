"""The shape of a policy file, validated by pydantic.

A policy is the runbook as data: where the stack lives (targets), what to read
(signals), when something is wrong (rules), how bad it is (severity on each rule),
what to do (scenarios of steps) and who must agree (authority). Field-level
checks live here; checks across fields (a rule naming an unknown signal) live in
`watchdog.policy.checks` so each error can name its own path in the file.

The models live in three modules by what they describe (`signalspecs`: targets
and signals; `scenariospecs`: rules, scenarios, authority; `operatingspecs`:
guards, last-good, notify, stack); this module assembles them into `Policy` and
re-exports every one, so `from watchdog.policy.schema import X` is the one
import the rest of the code uses.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from watchdog.model import Severity
from watchdog.policy.discovery import DiscoverySpec
from watchdog.policy.drillspecs import DrillSpec, DrillsSpec
from watchdog.policy.impactspecs import PrecheckSpec
from watchdog.policy.operatingspecs import (
    Channel,
    ContactSpec,
    FollowupSpec,
    GuardSpec,
    LastGoodSpec,
    NotifySpec,
    Responder,
    StackSpec,
    runbook_followups,
)
from watchdog.policy.scenariospecs import (
    AfterChange,
    Approval,
    AuthorityRow,
    AuthRule,
    CheckSpec,
    ReenableSpec,
    RuleSpec,
    ScenarioSpec,
    StepSpec,
)
from watchdog.policy.signalspecs import (
    AlertSignal,
    AnySignal,
    Condition,
    DerivedSignal,
    DockerSignal,
    HostSignal,
    HttpSignal,
    PostgresSignal,
    PrometheusSignal,
    Signal,
    SignalBase,
    TableSignal,
    TargetSpec,
    TcpSignal,
)
from watchdog.policy.specbase import Op, Strict

__all__ = [
    "AfterChange",
    "AlertSignal",
    "AnySignal",
    "Approval",
    "AuthRule",
    "AuthorityRow",
    "Channel",
    "CheckSpec",
    "Condition",
    "ContactSpec",
    "DerivedSignal",
    "DockerSignal",
    "DrillSpec",
    "DrillsSpec",
    "FollowupSpec",
    "GuardSpec",
    "HostSignal",
    "HttpSignal",
    "LastGoodSpec",
    "NotifySpec",
    "Op",
    "Policy",
    "PostgresSignal",
    "PrecheckSpec",
    "PrometheusSignal",
    "ReenableSpec",
    "Responder",
    "RuleSpec",
    "ScenarioSpec",
    "Signal",
    "SignalBase",
    "StackSpec",
    "StepSpec",
    "Strict",
    "TableSignal",
    "TargetSpec",
    "TcpSignal",
]


class Policy(Strict):
    version: Literal[1]
    stack: StackSpec
    targets: dict[str, TargetSpec] = Field(default_factory=dict)
    signals: list[Signal] = Field(default_factory=list)
    rules: list[RuleSpec] = Field(default_factory=list)
    scenarios: dict[str, ScenarioSpec] = Field(default_factory=dict)
    authority: dict[Severity, AuthorityRow]
    roles: list[str] = Field(default_factory=lambda: ["oncall", "lead", "team"])
    close_roles: list[str] = Field(
        default_factory=lambda: ["oncall", "lead"],
        min_length=1,
        description="who may end any open incident by hand (`watchdog incidents close`)",
    )
    guards: GuardSpec = Field(default_factory=GuardSpec)
    last_good: LastGoodSpec = Field(default_factory=LastGoodSpec)
    notify: NotifySpec = Field(default_factory=NotifySpec)
    #: What a person owes after an incident that ran a step (the runbook's 24-hour and
    #: 1-week items); `watchdog.policy.followups` decides which are owed.
    followups: list[FollowupSpec] = Field(default_factory=runbook_followups)
    #: The runbook's Post-Rollback "Immediate" checks, verified after every plan with
    #: steps besides the scenario's own checklist (its own item on a signal wins).
    post_rollback: list[CheckSpec] = Field(default_factory=list)
    #: Services found by the Compose project's labels (watchdog.policy.discovery): with
    #: it, Docker signals skip opted-out services and protection follows labels and images.
    discovery: DiscoverySpec | None = None
    #: Rehearsals of the runbook's faults on a drill target (`watchdog drill`, scheduled
    #: inside `watchdog run`); see `watchdog.policy.drillspecs`.
    drills: DrillsSpec = Field(default_factory=DrillsSpec)

    def probed_signals(self) -> list[AnySignal]:
        """The enabled signals a probe reads (not derived, not fed by alerts)."""
        return [
            s
            for s in self.signals
            if s.enabled and not isinstance(s, DerivedSignal | AlertSignal)
        ]

    def docker_health_signals(self) -> list[str]:
        """The probed Docker signals that read each container's health (1 healthy, 0 not).

        The one definition of "the healthy Docker signal": the daemon's per-service
        health (for last-known-good images) and `watchdog rollback`'s checklist both use it.
        """
        return [
            s.name
            for s in self.probed_signals()
            if isinstance(s, DockerSignal) and s.metric == "healthy"
        ]

    def signal(self, name: str) -> AnySignal:
        for signal in self.signals:
            if signal.name == name:
                return signal
        raise KeyError(name)
