"""Alertmanager's webhook body (payload version 4): its shape, its caps, its times.

Validated in one pass by pydantic-core, with the receiver's caps as the
validation context (`Caps`): a body over a cap or with a zero or future
`startsAt` fails like a malformed one, with its own error type (`REFUSALS`), so
the answer names the field (`alerts[3].labels`) and the refusal is counted by
reason. Go's zero time is a firing alert's `endsAt` (VENDOR-FACTS.md) and is
allowed there, never as a `startsAt`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from watchdog.model import Alert

ZERO_DATE = "0001-01-01"  # Go's zero time: a firing alert's endsAt
HEX16 = r"^[0-9a-f]{16}$"
#: A startsAt before 2000-01-01 is a zero or unset time (Unix 0, Go's zero), never a start.
EARLIEST_START = 946684800.0
ENV = "WATCHDOG_ALERTMANAGER_"


class _Payload(BaseModel):
    """A part of the webhook: the documented fields are required, unknown ones are ignored
    (a newer Alertmanager may add some)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


Labels = dict[str, str]


@dataclass(frozen=True, slots=True)
class Caps:
    """The caps a body is validated against (passed as the validation context)."""

    max_alerts: int = 1000
    max_labels: int = 64
    max_label_length: int = 1024
    clock_skew_seconds: float = 300.0
    #: Wall-clock now, Unix seconds; None: the future check is skipped (no clock at hand).
    now: float | None = None


#: The refusals counted by reason in watchdog_alert_webhooks_refused_total (pydantic error
#: types raised here, and the series cap), with their status codes.
REFUSALS: dict[str, int] = {
    "too_many_alerts": 413,
    "too_many_labels": 400,
    "label_too_long": 400,
    "starts_at_zero": 400,
    "starts_at_future": 400,
    "too_many_series": 429,
}


def _caps(info: ValidationInfo) -> Caps:
    return info.context if isinstance(info.context, Caps) else Caps()


def _label_value(value: str, info: ValidationInfo) -> str:
    cap = _caps(info).max_label_length
    if len(value) > cap:
        raise PydanticCustomError(
            "label_too_long",
            "found a value of {length} characters; expected at most {cap} "
            "(" + ENV + "MAX_LABEL_LENGTH)",
            {"length": len(value), "cap": cap},
        )
    return value


class WebhookAlert(_Payload):
    status: Literal["firing", "resolved"]
    labels: dict[str, Annotated[str, AfterValidator(_label_value)]]
    annotations: Labels
    startsAt: str
    endsAt: str
    generatorURL: str
    fingerprint: Annotated[str, Field(pattern=HEX16)]

    @field_validator("labels")
    @classmethod
    def _few_short_names(cls, labels: Labels, info: ValidationInfo) -> Labels:
        caps = _caps(info)
        if len(labels) > caps.max_labels:
            raise PydanticCustomError(
                "too_many_labels",
                "found {count} labels; expected at most {cap} (" + ENV + "MAX_LABELS)",
                {"count": len(labels), "cap": caps.max_labels},
            )
        longest = max(labels, key=len, default="")
        if len(longest) > caps.max_label_length:
            raise PydanticCustomError(
                "label_too_long",
                "found a label name of {length} characters; expected at most {cap} "
                "(" + ENV + "MAX_LABEL_LENGTH)",
                {"length": len(longest), "cap": caps.max_label_length},
            )
        return labels

    @field_validator("startsAt")
    @classmethod
    def _started(cls, value: str, info: ValidationInfo) -> str:
        """A real start: not a zero time (Go's, or Unix 0), not ahead of this clock."""
        starts = parse_time(value)
        if starts is None or starts < EARLIEST_START:
            raise PydanticCustomError(
                "starts_at_zero",
                "found {value}, a zero time; expected when the alert started (RFC 3339)",
                {"value": repr(value)},
            )
        caps = _caps(info)
        if caps.now is not None and starts > caps.now + caps.clock_skew_seconds:
            raise PydanticCustomError(
                "starts_at_future",
                "found {value}, {ahead} s ahead of this clock; expected at most "
                "{skew} s ahead (" + ENV + "CLOCK_SKEW_SECONDS)",
                {
                    "value": repr(value),
                    "ahead": f"{starts - caps.now:.0f}",
                    "skew": f"{caps.clock_skew_seconds:.0f}",
                },
            )
        return value

    @field_validator("endsAt")
    @classmethod
    def _rfc3339(cls, value: str) -> str:
        parse_time(value)  # Go's zero time is a firing alert's endsAt: allowed
        return value


class WebhookV4(_Payload):
    version: Literal["4"]
    groupKey: str
    truncatedAlerts: int = Field(ge=0)
    status: Literal["firing", "resolved"]
    receiver: str
    groupLabels: Labels
    commonLabels: Labels
    commonAnnotations: Labels
    externalURL: str
    alerts: list[WebhookAlert]

    @field_validator("alerts", mode="before")
    @classmethod
    def _not_too_many(cls, value: Any, info: ValidationInfo) -> Any:
        """Counted before any alert is validated: a flood costs one len()."""
        cap = _caps(info).max_alerts
        if isinstance(value, list) and len(value) > cap:
            raise PydanticCustomError(
                "too_many_alerts",
                "found {count} alerts in one body; expected at most {cap} (" + ENV
                + "MAX_ALERTS; Alertmanager's webhook_configs max_alerts keeps a group under "
                "it)",
                {"count": len(value), "cap": cap},
            )
        return value


@functools.lru_cache(maxsize=4096)  # one group's alerts share their times; each is read twice
def parse_time(value: str) -> float | None:
    """RFC 3339 (Alertmanager sends nanoseconds) to Unix seconds; the zero time is None."""
    if value.startswith(ZERO_DATE):
        return None
    text = value.strip().replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:
        digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
        zone = rest[len(digits) :]
        text = f"{head}.{(digits + '000000')[:6]}{zone}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("an RFC 3339 time such as 2026-11-25T18:00:00.123Z") from None
    if moment.tzinfo is None:
        raise ValueError("an RFC 3339 time with a zone, such as 2026-11-25T18:00:00Z")
    return moment.timestamp()


def to_alert(raw: WebhookAlert) -> Alert:
    starts = parse_time(raw.startsAt)
    if starts is None:  # refused by the validator: never stored as 1970
        raise ValueError(f"startsAt {raw.startsAt!r} is a zero time")
    return Alert(
        fingerprint=raw.fingerprint,
        status=raw.status,
        starts_at=starts,
        ends_at=parse_time(raw.endsAt),
        labels=tuple(sorted(raw.labels.items())),
        annotations=tuple(sorted(raw.annotations.items())),
        generator_url=raw.generatorURL,
    )


def first_problem(error: ValidationError) -> str:
    """The first bad field as `path: found X; expected Y` (paths like alerts[0].labels)."""
    problem = error.errors()[0]
    if problem["type"] == "json_invalid":
        return f"body: not JSON ({problem['msg']}); expected Alertmanager's webhook payload"
    path = ""
    for part in problem["loc"]:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    if problem["type"] in REFUSALS:  # the message says what was found and what is allowed
        return f"{path or 'body'}: {problem['msg']}"
    found: Any = problem.get("input")
    shown = "nothing" if problem["type"] == "missing" else clip(repr(found))
    return f"{path or 'body'}: found {shown}; expected {_expected(problem)}"


def _expected(problem: Any) -> str:
    if problem["type"] == "missing":
        return "this field (Alertmanager webhook version 4)"
    if problem["type"] == "string_pattern_mismatch":
        return "16 lower-case hexadecimal characters"
    return str(problem["msg"]).removeprefix("Value error, ")


def clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
