"""Value types shared by every layer: what was seen, what was decided, what to do.

They are frozen dataclasses so the decision core can pass them around without
anyone mutating a value behind its back, and so that a decision, once journaled,
is exactly what was acted on. Times are plain floats (Unix seconds) handed in by
the caller: nothing here reads the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """The runbook's P0-P3; P0 is the most severe."""

    P0 = "P0"
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"

    @property
    def rank(self) -> int:
        """0 for P0 .. 3 for P3, so that `min` by rank is the most severe."""
        return int(self.value[1])

    def more_severe_than(self, other: Severity) -> bool:
        return self.rank < other.rank


class Risk(StrEnum):
    """How much harm a step can do if it is wrong (ARCHITECTURE.md)."""

    SAFE = "safe"
    RISKY = "risky"
    DESTRUCTIVE = "destructive"


class AuthMode(StrEnum):
    AUTO = "auto"
    APPROVAL = "approval"
    NEVER = "never"


@dataclass(frozen=True, slots=True)
class Observation:
    """One reading of one signal series, or the reason there is none.

    `series` tells apart the members of a signal that yields several values at
    once (one circuit breaker per provider); it is "" for a single value. An
    error observation may still carry a value (an unreachable health endpoint is
    unhealthy: 0), so that rules can match it.
    """

    signal: str
    at: float
    value: float | None
    series: str = ""
    error: str | None = None
    detail: str = ""
    duration_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Alert:
    """One Alertmanager alert as it arrived: identity, state and what it says.

    `fingerprint` and `starts_at` identify one firing of one alert: Alertmanager
    delivers at least once, so a repeat with both equal is the same alert again.
    Labels and annotations are sorted pairs so an Alert is hashable and compares
    by value.
    """

    fingerprint: str
    status: str  # "firing" or "resolved"
    starts_at: float
    ends_at: float | None
    labels: tuple[tuple[str, str], ...]
    annotations: tuple[tuple[str, str], ...] = ()
    generator_url: str = ""

    def label(self, name: str, default: str = "") -> str:
        return dict(self.labels).get(name, default)

    @property
    def name(self) -> str:
        return self.label("alertname")

    @property
    def firing(self) -> bool:
        return self.status == "firing"


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule's verdict that something is wrong, with the words and numbers why."""

    rule: str
    signal: str
    series: str
    severity: Severity
    scenario: str
    group: str
    subject: str
    since: float
    reason: str
    evidence: tuple[str, ...] = ()
    params: tuple[tuple[str, str], ...] = ()
    supersedes: tuple[str, ...] = ()
    #: The reason in one plain sentence (watchdog.policy.headlines); "" in old journals.
    headline: str = ""
    #: The measured value the rule compared with its threshold when it fired (None: no
    #: value, or a journal older than this field); `watchdog explain` weighs the rules
    #: on the same signal that did not fire against it.
    value: float | None = None

    @property
    def key(self) -> str:
        """The incident this finding belongs to, stable across restarts."""
        return f"{self.group}/{self.subject}" if self.subject else self.group

    def param_map(self) -> dict[str, str]:
        return dict(self.params)

    def said(self) -> str:
        """The headline, or for a finding journaled before headlines, its reason."""
        return self.headline or self.reason


@dataclass(frozen=True, slots=True)
class Authorization:
    """Who must agree before a plan runs, and why."""

    mode: AuthMode
    reason: str
    role: str | None = None
    quorum: int = 0


@dataclass(frozen=True, slots=True)
class Step:
    """One named action of a plan, with everything needed to run it again."""

    name: str
    action: str
    risk: Risk
    params: tuple[tuple[str, Any], ...] = ()
    idempotent: bool = True
    timeout_seconds: float = 30.0
    note: str = ""

    def param_map(self) -> dict[str, Any]:
        return dict(self.params)


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the post-rollback checklist: a signal that must pass."""

    description: str
    signal: str
    op: str
    threshold: float
    measure: str = "value"
    window_seconds: float = 60.0
    series: str = ""


@dataclass(frozen=True, slots=True)
class PreCheck:
    """One item of the runbook's pre-rollback checklist as judged before the plan starts.

    `verdict` is "satisfied", "not_applicable" or "not_satisfied"; `required`
    items that are not satisfied keep the plan from acting (it pages instead).
    """

    item: str
    verdict: str
    reason: str
    required: bool = False

    def line(self) -> str:
        """One line for a page or a terminal: "item: not satisfied: why (required)"."""
        required = " (required)" if self.required else ""
        return f"{self.item}: {self.verdict.replace('_', ' ')}: {self.reason}{required}"


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do about an incident: steps in order, then what proves it worked."""

    scenario: str
    title: str
    steps: tuple[Step, ...]
    checklist: tuple[Check, ...]
    verify_for_seconds: float
    verify_timeout_seconds: float
    authorization: Authorization
    reason: str
    impact: tuple[str, ...] = ()
    #: Give up once the failing checklist has not moved for this long (None: never early).
    give_up_seconds: float | None = None
    #: The pre-rollback checklist as judged when the plan was made (`policy.prechecks`).
    prechecks: tuple[PreCheck, ...] = ()
    #: The runbook section the scenario follows: where a person taking over reads on.
    runbook: str = ""
    #: A by-hand plan prepared with this one (scenario 5's full rollback): the command
    #: that runs it, then its steps, one line each; shown on every page of the incident.
    prepared: tuple[str, ...] = ()
