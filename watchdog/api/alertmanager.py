"""`POST /api/alertmanager`: Alertmanager's webhook (payload version 4), received safely.

Alertmanager delivers at least once and retries on 5xx, so this endpoint is
strict at the door and durable before it answers: the caller must authenticate
(the bearer token or basic auth of Alertmanager's `http_config`), the body must
be under the size limit (413) and exactly the documented shape (400 naming the
first bad field, e.g. `alerts[0].fingerprint`), and the 200 is sent only after
the alerts are in the journal. Nothing malformed reaches the engine. The
credentials are compared in constant time and never logged.

Labels are the sender's to choose, and the engine turns them into series,
findings and incidents, so what one body and the alerts held at once may carry
is capped (`ReceiverSettings`): alerts per body (413), labels per alert and the
length of a label's name or value (400), distinct series per alert signal held
firing at once (429: room frees as series resolve); a `startsAt` that is a zero
time or in the future is refused (400). Each refusal names the field and is
counted by reason in `watchdog_alert_webhooks_refused_total`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from collections.abc import Callable
from typing import Protocol

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from watchdog.api.bodies import read_limited
from watchdog.api.webhook import (
    ENV,
    REFUSALS,
    Caps,
    WebhookAlert,
    WebhookV4,
    clip,
    first_problem,
    parse_time,
    to_alert,
)
from watchdog.metrics import Metrics
from watchdog.model import Alert
from watchdog.policy.alerts import TooManySeries
from watchdog.store.alerts import AlertReceipt

__all__ = [
    "AlertSink",
    "ReceiverSettings",
    "WebhookAlert",
    "WebhookV4",
    "alertmanager_router",
    "first_problem",
    "parse_time",
    "to_alert",
]

log = structlog.get_logger("watchdog.alertmanager")


class ReceiverSettings(BaseSettings):
    """How Alertmanager proves who it is, and how big a webhook may be (WATCHDOG_ALERTMANAGER_*)."""

    model_config = SettingsConfigDict(env_prefix="WATCHDOG_ALERTMANAGER_", extra="ignore")

    token: SecretStr | None = Field(None, description="the bearer credentials Alertmanager sends")
    username: str | None = Field(None, description="basic auth, instead of a token")
    password: SecretStr | None = None
    max_bytes: int = Field(1 << 20, gt=0, description="larger bodies get 413")
    max_alerts: int = Field(
        1000, gt=0, description="more alerts in one body get 413 (Alertmanager's max_alerts)"
    )
    max_labels: int = Field(64, gt=0, description="an alert with more labels gets 400")
    max_label_length: int = Field(
        1024, gt=0, description="a longer label name or value (in characters) gets 400"
    )
    max_series: int = Field(
        200, gt=0, description="distinct series one alert signal may hold firing; more get 429"
    )
    clock_skew_seconds: float = Field(
        300.0, ge=0, description="how far ahead of this clock a startsAt may be"
    )

    @field_validator("token", "username", "password", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """An empty credential is no credential: `TOKEN=""` turns the receiver off, never
        opens it to `Authorization: Bearer ` with nothing after it."""
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        return None if isinstance(raw, str) and not raw.strip() else value

    def configured(self) -> bool:
        return self.token is not None or (self.username is not None and self.password is not None)

    def caps(self, now: float) -> Caps:
        """The body caps, with wall-clock `now` for the startsAt check."""
        return Caps(
            self.max_alerts, self.max_labels, self.max_label_length, self.clock_skew_seconds, now
        )

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




class AlertSink(Protocol):
    """Where received alerts go: journaled (durably) before `receive` returns."""

    async def receive(
        self,
        alerts: list[Alert],
        *,
        group_key: str,
        receiver: str,
        truncated: int,
        max_series: int | None = None,
    ) -> AlertReceipt: ...


def alertmanager_router(
    sink: AlertSink,
    settings: ReceiverSettings,
    metrics: Metrics,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
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
            payload = WebhookV4.model_validate_json(body, context=settings.caps(wall()))
        except ValidationError as error:
            kind = str(error.errors()[0]["type"])
            if kind in REFUSALS:
                return _refused(metrics, kind, first_problem(error))
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
        try:
            receipt = await sink.receive(
                alerts,
                group_key=payload.groupKey,
                receiver=payload.receiver,
                truncated=payload.truncatedAlerts,
                max_series=settings.max_series,
            )
        except TooManySeries as refusal:
            where = f"alerts[{refusal.verdict.index}].labels.{refusal.verdict.label}"
            detail = f"{where}: {refusal.verdict.reason} ({ENV}MAX_SERIES)"
            return _refused(metrics, "too_many_series", detail)
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


def _refused(metrics: Metrics, reason: str, detail: str) -> JSONResponse:
    """Over a cap: nothing stored, the field named, counted by reason."""
    metrics.alert_webhooks_refused.labels(reason).inc()
    log.warning("alertmanager_refused", reason=reason, detail=clip(detail, 300))
    return JSONResponse({"detail": detail}, status_code=REFUSALS[reason])


def _malformed(metrics: Metrics, detail: str) -> JSONResponse:
    metrics.alerts_received.labels("malformed").inc()
    return JSONResponse({"detail": detail}, status_code=400)


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

