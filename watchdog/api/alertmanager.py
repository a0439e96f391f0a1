"""`POST /api/alertmanager`: Alertmanager's webhook (payload version 4), received safely.

Alertmanager delivers at least once and retries on 5xx, so this endpoint is
strict at the door and durable before it answers: the caller must authenticate
(the bearer token or basic auth of Alertmanager's `http_config`), the body must
be under the size limit (413) and exactly the documented shape (400 naming the
first bad field, e.g. `alerts[0].fingerprint`), and the 200 is sent only after
the alerts are in the journal. Nothing malformed reaches the engine. The
credentials are compared in constant time and never logged.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import time
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal, Protocol

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from watchdog.api.bodies import read_limited
from watchdog.metrics import Metrics
from watchdog.model import Alert
from watchdog.store.alerts import AlertReceipt

log = structlog.get_logger("watchdog.alertmanager")

ZERO_DATE = "0001-01-01"  # Go's zero time: a firing alert's endsAt
HEX16 = r"^[0-9a-f]{16}$"


class ReceiverSettings(BaseSettings):
    """How Alertmanager proves who it is, and how big a webhook may be."""

    model_config = SettingsConfigDict(env_prefix="WATCHDOG_ALERTMANAGER_", extra="ignore")

    token: SecretStr | None = Field(None, description="the bearer credentials Alertmanager sends")
    username: str | None = Field(None, description="basic auth, instead of a token")
    password: SecretStr | None = None
    max_bytes: int = Field(1 << 20, gt=0, description="larger bodies get 413")

    @field_validator("token", "username", "password", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """An empty credential is no credential: `TOKEN=""` turns the receiver off, never
        opens it to `Authorization: Bearer ` with nothing after it."""
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        return None if isinstance(raw, str) and not raw.strip() else value

    def configured(self) -> bool:
        return self.token is not None or (self.username is not None and self.password is not None)

    def keys(self) -> dict[str, str | None]:
        """The secrets this receiver accepts as keys, by setting (for `keys.weak_keys`)."""
        return {
            "WATCHDOG_ALERTMANAGER_TOKEN": _secret(self.token),
            "WATCHDOG_ALERTMANAGER_PASSWORD": _secret(self.password),
        }


OFF_DETAIL = (
    "the Alertmanager receiver is off: no credentials are configured. Set "
    "WATCHDOG_ALERTMANAGER_TOKEN (make one with `watchdog token new`), or "
    "WATCHDOG_ALERTMANAGER_USERNAME and WATCHDOG_ALERTMANAGER_PASSWORD, and restart"
)


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


class _Payload(BaseModel):
    """A part of the webhook: the documented fields are required, unknown ones are ignored
    (a newer Alertmanager may add some)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


Labels = dict[str, str]


class WebhookAlert(_Payload):
    status: Literal["firing", "resolved"]
    labels: Labels
    annotations: Labels
    startsAt: str
    endsAt: str
    generatorURL: str
    fingerprint: Annotated[str, Field(pattern=HEX16)]

    @field_validator("startsAt", "endsAt")
    @classmethod
    def _rfc3339(cls, value: str) -> str:
        parse_time(value)
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
    return Alert(
        fingerprint=raw.fingerprint,
        status=raw.status,
        starts_at=starts if starts is not None else 0.0,
        ends_at=parse_time(raw.endsAt),
        labels=tuple(sorted(raw.labels.items())),
        annotations=tuple(sorted(raw.annotations.items())),
        generator_url=raw.generatorURL,
    )


class AlertSink(Protocol):
    """Where received alerts go: journaled (durably) before `receive` returns."""

    async def receive(
        self, alerts: list[Alert], *, group_key: str, receiver: str, truncated: int
    ) -> AlertReceipt: ...


def alertmanager_router(
    sink: AlertSink,
    settings: ReceiverSettings,
    metrics: Metrics,
    clock: Callable[[], float] = time.monotonic,
) -> APIRouter:
    router = APIRouter()

    @router.post("/api/alertmanager")
    async def receive(request: Request) -> JSONResponse:
        started = clock()
        if not settings.configured():
            metrics.alerts_received.labels("unauthorized").inc()
            return JSONResponse({"detail": OFF_DETAIL}, status_code=503)
        if not _authorized(request.headers.get("authorization", ""), settings):
            metrics.alerts_received.labels("unauthorized").inc()
            return JSONResponse(
                {
                    "detail": "authentication required: the bearer token or basic auth of "
                    "Alertmanager's http_config"
                },
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="watchdog"'},
            )
        body = await read_limited(request, settings.max_bytes)
        if body is None:
            metrics.alerts_received.labels("too_large").inc()
            return JSONResponse(
                {"detail": f"body larger than {settings.max_bytes} bytes"}, status_code=413
            )
        try:
            # Parsed and validated in one pass (pydantic-core reads the bytes itself).
            payload = WebhookV4.model_validate_json(body)
        except ValidationError as error:
            return _malformed(metrics, first_problem(error))
        alerts = [to_alert(a) for a in payload.alerts]
        if payload.truncatedAlerts:
            log.warning(
                "alertmanager_truncated",
                group=payload.groupKey,
                kept=len(alerts),
                dropped=payload.truncatedAlerts,
                note="absent alerts are not taken as resolved",
            )
        receipt = await sink.receive(
            alerts,
            group_key=payload.groupKey,
            receiver=payload.receiver,
            truncated=payload.truncatedAlerts,
        )
        metrics.alerts_received.labels("accepted").inc(receipt.accepted)
        metrics.alerts_received.labels("duplicate").inc(receipt.duplicates)
        metrics.alert_intake.observe(clock() - started)
        return JSONResponse(
            {
                "status": "journaled",
                "accepted": receipt.accepted,
                "duplicates": receipt.duplicates,
                "truncated": payload.truncatedAlerts,
            }
        )

    return router


def _malformed(metrics: Metrics, detail: str) -> JSONResponse:
    metrics.alerts_received.labels("malformed").inc()
    return JSONResponse({"detail": detail}, status_code=400)


def first_problem(error: ValidationError) -> str:
    """The first bad field as `path: found X; expected Y` (paths like alerts[0].labels)."""
    problem = error.errors()[0]
    if problem["type"] == "json_invalid":
        return f"body: not JSON ({problem['msg']}); expected Alertmanager's webhook payload"
    path = ""
    for part in problem["loc"]:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    found: Any = problem.get("input")
    shown = "nothing" if problem["type"] == "missing" else _clip(repr(found))
    return f"{path or 'body'}: found {shown}; expected {_expected(problem)}"


def _expected(problem: Any) -> str:
    if problem["type"] == "missing":
        return "this field (Alertmanager webhook version 4)"
    if problem["type"] == "string_pattern_mismatch":
        return "16 lower-case hexadecimal characters"
    return str(problem["msg"]).removeprefix("Value error, ")


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _authorized(header: str, settings: ReceiverSettings) -> bool:
    """Constant-time; an empty credential never matches (nor does an empty setting)."""
    scheme, _, credentials = header.partition(" ")
    scheme, credentials = scheme.lower(), credentials.strip()
    if not credentials:
        return False
    token = _secret(settings.token)
    if token and scheme == "bearer":
        return hmac.compare_digest(
            credentials.encode("utf-8", "surrogatepass"), token.encode("utf-8", "surrogatepass")
        )
    password = _secret(settings.password)
    if settings.username and password and scheme == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True)
        except binascii.Error:
            return False
        expected = f"{settings.username}:{password}"
        return hmac.compare_digest(decoded, expected.encode("utf-8", "surrogatepass"))
    return False

