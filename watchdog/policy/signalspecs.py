"""What to read: the targets and the signals of a policy, one model per probe kind.

`Signal` is the discriminated union a policy's `signals:` list is validated
against (its `kind` picks the model). Re-exported by `watchdog.policy.schema`,
where other code imports them from.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from watchdog.policy.durations import Duration
from watchdog.policy.identifiers import table_name
from watchdog.policy.specbase import Op, Strict


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
    round_trip: bool = Field(
        False,
        description="the value is the seconds the answer took (any HTTP status), not the body: "
        "the only latency the stack shows (its services export no latency histogram)",
    )

    @model_validator(mode="after")
    def _round_trip_reads_no_body(self) -> HttpSignal:
        if self.round_trip:
            mixed = [k for k in ("value", "series", "healthy_when") if getattr(self, k)]
            if mixed or self.unit != "seconds":
                raise ValueError(
                    f"round_trip: true with unit {self.unit}{''.join(', ' + k for k in mixed)}: "
                    "expected unit: seconds and no value, series or healthy_when (the time "
                    "the answer took is the value; its body is not read)"
                )
        return self


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
    P0 "orchestrator down" signal; one series, "") and `changed` the seconds since a
    replica stopped matching the service's last known good record (its image or
    configuration; no value while it matches), which routes a failure right after a
    deploy to scenario 1 (a rule's `after_change`).
    """

    kind: Literal["docker"]
    metric: Literal[
        "running", "healthy", "restarts", "crash_loop", "oom_killed", "engine_up", "changed"
    ]
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
    alertnames: list[str] = Field(
        default_factory=list, description="any one of these names (several alerts, one meaning)"
    )
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
