"""How the daemon runs against the stack: guards, last-good snapshots, paging, the stack.

The policy's settings around the runbook rather than in it: how often the
daemon may act (guards), when it keeps a table as last known good, whom it
pages on which channel, and which Compose project and services it guards.
Re-exported by `watchdog.policy.schema`, where other code imports them from.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from watchdog.model import Severity
from watchdog.policy.durations import Duration
from watchdog.policy.identifiers import table_name
from watchdog.policy.specbase import Strict


class GuardSpec(Strict):
    cooldown: Duration = 300.0
    backoff_factor: float = Field(2.0, ge=1.0, description="the cooldown grows by this each time")
    max_cooldown: Duration = 3600.0
    actions_per_hour: int = Field(10, ge=0)
    approval_expires: Duration = 1800.0
    #: After a restart, how long an interrupted plan may wait for fresh evidence
    #: before the guards decide on what they have (stale evidence: a human is paged).
    resume_grace: Duration = 60.0


class LastGoodSpec(Strict):
    """When to snapshot configuration tables as 'last known good'.

    Each table is read while it validates and the rules that guard it (its own
    group's, see `watchdog.policy.lastgood`) are clear, whatever else breaches,
    and kept only if that stays true for `settle` afterwards, so a corruption
    that lands between two probes is never taken for the good version.
    """

    tables: list[str] = Field(default_factory=lambda: ["metadata_enrichment_config"])
    every: Duration = 60.0
    settle: Duration = 15.0
    keep: int = Field(10, ge=1)

    @field_validator("tables")
    @classmethod
    def _tables_are_names(cls, tables: list[str]) -> list[str]:
        return [table_name(t) for t in tables]


Channel = Literal["pagerduty", "opsgenie", "slack", "webhook"]


class Responder(Strict):
    """An Opsgenie responder: a team, user, escalation or schedule, by name."""

    type: Literal["team", "user", "escalation", "schedule"]
    name: str = Field(min_length=1)


def _all_channels() -> dict[Severity, list[Channel]]:
    every: list[Channel] = ["pagerduty", "opsgenie", "slack", "webhook"]
    return {
        Severity.P0: every,
        Severity.P1: every,
        Severity.P2: ["slack", "webhook"],
        Severity.P3: ["slack", "webhook"],
    }


class ContactSpec(Strict):
    """A contact of the runbook's "Emergency Contacts": a role's own route, and when.

    The key in `notify.contacts` is a role of the policy (the people file says who holds
    it), or, with `notice: true`, a channel nobody holds (the status page). A page of an
    incident at one of `severities` or of one of `scenarios` also goes to `channels`,
    and an Opsgenie page names `opsgenie_responders` besides the policy's own.
    """

    channels: list[Channel] = Field(min_length=1)
    opsgenie_responders: list[Responder] = Field(default_factory=list)
    severities: list[Severity] = Field(default_factory=list)
    scenarios: list[str] = Field(default_factory=list)
    notice: bool = Field(False, description="not a role: a notice nobody holds (status page)")


class NotifySpec(Strict):
    """When to page people and where, per severity.

    A page goes out when an incident opens at a severity in `on_open`, when its
    plan starts waiting for approval, and when it escalates to a human; it is
    acknowledged when someone approves, and resolved when the incident closes.
    A channel named here but without credentials in the settings stays silent.
    """

    on_open: list[Severity] = Field(default_factory=lambda: [Severity.P0, Severity.P1])
    on_approval: bool = True
    on_escalation: bool = True
    acknowledge_on_approval: bool = True
    resolve_on_close: bool = True
    routes: dict[Severity, list[Channel]] = Field(default_factory=_all_channels)
    opsgenie_responders: list[Responder] = Field(default_factory=list)
    contacts: dict[str, ContactSpec] = Field(default_factory=dict)


class StackSpec(Strict):
    name: str
    compose_project: str | None = None
    drill: bool = Field(
        False,
        description="a staging stack drills may inject faults into (`watchdog drill`); "
        "a live one (false) is refused",
    )
    protected_services: list[str] = Field(default_factory=list)
    schema_coupled_services: list[str] = Field(
        default_factory=list,
        description="never reverted to an image older than the newest applied migration",
    )
    migrations_dir: str | None = Field(
        None,
        description="the one folder migration files run from (absolute, or relative to the "
        "daemon's working directory); every step's migration_dirs lies inside it",
    )


class FollowupSpec(Strict):
    """One item of the runbook's post-rollback checklist that a person owes later.

    `due_after` counts from the moment the incident became final; `owner` is a role
    (one of the policy's `roles`), shown with the people file's persons who hold it.
    """

    text: str = Field(min_length=1)
    due_after: Duration
    owner: str = Field(min_length=1)


def runbook_followups() -> list[FollowupSpec]:
    """The runbook's "Within 24 hours" and "Within 1 week" lists (Post-Rollback Checklist)."""
    day, week = 86400.0, 7 * 86400.0
    items = (
        ("Post-mortem scheduled", day, "lead"),
        ("Incident report filed (watchdog report ID)", day, "oncall"),
        ("Stakeholders notified", day, "lead"),
        ("Monitoring alerts reviewed", day, "oncall"),
        ("Backup schedule verified", day, "oncall"),
        ("Post-mortem completed", week, "lead"),
        ("Action items assigned", week, "lead"),
        ("Documentation updated", week, "team"),
        ("Runbook updated (if new scenario)", week, "oncall"),
        ("Training conducted (if needed)", week, "lead"),
    )
    return [FollowupSpec(text=text, due_after=due, owner=owner) for text, due, owner in items]
