"""The shape of a policy file, validated by pydantic.

A policy is the runbook as data: where the stack lives (targets), what to read
(signals), when something is wrong (rules), how bad it is (severity on each rule),
what to do (scenarios of steps) and who must agree (authority). Field-level
checks live here; checks across fields (a rule naming an unknown signal) live in
`watchdog.policy.checks` so each error can name its own path in the file.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from watchdog.model import Risk, Severity
from watchdog.policy.durations import Duration
from watchdog.policy.identifiers import table_name

Op = Literal[">", ">=", "<", "<=", "==", "!="]


class Strict(BaseModel):
    """Unknown keys are errors: a misspelt `clear_for` must not silently vanish."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Condition(Strict):
    op: Op
    threshold: float


class TargetSpec(Strict):
    url: str = Field(description="base URL, or host:port for TCP targets")
    service: str | None = Field(None, description="the Compose service behind this target")
    username: str | None = None
    password: str | None = None

    @field_validator("url")
    @classmethod
    def _url_has_scheme_or_port(cls, value: str) -> str:
        if "://" not in value and ":" not in value:
            raise ValueError(
                "a URL such as 'http://127.0.0.1:8022' or an address such as '127.0.0.1:5433'"
            )
        return value


class SignalBase(Strict):
    name: str
    description: str = ""
    enabled: bool = Field(
        True, description="false: not probed, its rules never fire (e.g. no Docker here)"
    )
    unit: Literal["bool", "ratio", "count", "state", "seconds", "per_second"] = "count"
    interval: Duration = 5.0
    timeout: Duration = 2.0
    stale_after: Duration | None = Field(
        None, description="observations older than this are not acted on; default 3 intervals"
    )

    def staleness_limit(self) -> float:
        return (
            self.stale_after if self.stale_after is not None else 3 * self.interval + self.timeout
        )

    def value_range(self) -> tuple[float, float]:
        """The values this signal can take, to catch thresholds that can never matter."""
        return {
            "bool": (0.0, 1.0),
            "ratio": (0.0, 1.0),
            "state": (0.0, 2.0),
        }.get(self.unit, (0.0, float("inf")))


class HttpSignal(SignalBase):
    """An HTTP endpoint read as health (1/0), as a number, or as named series.

    Health mode (neither `value` nor `series`): 1 when the status is expected AND
    every `healthy_when` JMESPath expression is truthy — the status code alone
    lies on this stack (TARGET-STACK.md's traps).
    """

    kind: Literal["http"]
    target: str
    path: str = "/health"
    method: Literal["GET", "POST"] = "GET"
    expect_status: list[int] = Field(default_factory=lambda: [200])
    healthy_when: list[str] = Field(default_factory=list)
    value: str | None = Field(None, description="JMESPath to a number or a boolean")
    series: str | None = Field(None, description="JMESPath to an object of name -> value")
    states: dict[str, float] = Field(
        default_factory=dict, description="words to numbers, e.g. OPEN: 2"
    )


class PrometheusSignal(SignalBase):
    """A metric read straight from a /metrics page in the text exposition format."""

    kind: Literal["prometheus"]
    target: str
    path: str = "/metrics"
    metric: str
    match: dict[str, str] = Field(default_factory=dict)
    mode: Literal["gauge", "rate", "ratio"] = "gauge"
    numerator: dict[str, str] = Field(
        default_factory=dict, description="for ratio: the share of matched series counted"
    )
    window: Duration = 60.0
    by: str | None = Field(None, description="a label whose values become series")


class TcpSignal(SignalBase):
    """Reachability of a TCP port (1/0); with a password, a Redis AUTH + PING."""

    kind: Literal["tcp"]
    target: str
    redis_password: str | None = None


class HostSignal(SignalBase):
    kind: Literal["host"]
    metric: Literal["disk_used_ratio", "memory_used_ratio"]
    path: str = "/"


class TableSignal(SignalBase):
    """Problems in a configuration table, read through the daemon's configuration store.

    `invalid_rows` counts what the runbook's scenario 4 calls corruption: an
    enabled row with no first provider, a provider twice in one waterfall, a
    confidence outside 0..1. The check runs on the rows themselves, so it works
    on any store the daemon is given.
    """

    kind: Literal["table"]
    table: str
    check: Literal["invalid_rows"] = "invalid_rows"

    _table_is_a_name = field_validator("table")(table_name)


class PostgresSignal(SignalBase):
    """The guarded database itself, over psycopg with the daemon's WATCHDOG_DATABASE_URL.

    `reachable`: 1 when a connection opens and answers `SELECT 1` within the
    timeout, 0 otherwise (the P0 "database unavailable" signal). `query`: the
    first column of the first row of a read-only query, run in a READ ONLY
    transaction with a statement timeout of the signal's `timeout`; a NULL or no
    row reads as 0. Queries are policy data, because the runbook's own integrity
    queries name tables and columns that do not exist (TARGET-STACK.md).
    """

    kind: Literal["postgres"]
    check: Literal["reachable", "query"] = "reachable"
    query: str | None = None

    def value_range(self) -> tuple[float, float]:
        return (0.0, 1.0) if self.check == "reachable" else (float("-inf"), float("inf"))


class DockerSignal(SignalBase):
    """Containers of the Compose project, found by their labels, one series per service.

    `running` and `healthy` are 1/0 (all replicas must be; a container without a
    healthcheck counts as healthy while running), `restarts` the restart count,
    `crash_loop` the number of restarts and deaths within `window`, `oom_killed`
    1 if a replica was OOM-killed, `engine_up` 1 while the engine answers (the
    P0 "orchestrator down" signal; one series, "").
    """

    kind: Literal["docker"]
    metric: Literal["running", "healthy", "restarts", "crash_loop", "oom_killed", "engine_up"]
    project: str
    services: list[str] = Field(default_factory=list, description="empty: every service")
    window: Duration = 60.0


class DerivedSignal(SignalBase):
    """Computed in the core from the latest values of other signals."""

    kind: Literal["derived"]
    op: Literal["count", "fraction", "sum", "max", "min"]
    of: list[str] = Field(min_length=1)
    where: Condition | None = Field(None, description="for count and fraction")


class AlertSignal(SignalBase):
    """1 while an Alertmanager alert matching the labels fires, per `by` label value."""

    kind: Literal["alert"]
    alertname: str | None = Field(None, description="any alert name when absent")
    match: dict[str, str] = Field(default_factory=dict)
    except_alertnames: list[str] = Field(
        default_factory=list, description="alerts another signal maps, so one fault is one finding"
    )
    by: str | None = Field(
        None, description="the label whose value is the series; alerts without it do not count"
    )


AnySignal = (
    HttpSignal
    | PrometheusSignal
    | TcpSignal
    | HostSignal
    | TableSignal
    | PostgresSignal
    | DockerSignal
    | DerivedSignal
    | AlertSignal
)
Signal = Annotated[AnySignal, Field(discriminator="kind")]


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
    impact: list[str] = Field(default_factory=list)
    next: str | None = Field(
        None, description="the next rung of the remediation ladder when this one fails"
    )
    reenable: ReenableSpec | None = Field(
        None, description="undo this scenario's change automatically once healthy again"
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


class StackSpec(Strict):
    name: str
    compose_project: str | None = None
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
