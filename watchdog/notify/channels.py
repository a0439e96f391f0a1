"""The four channels: each turns a page into its vendor's body, and a journaled body into
a request, adding its secret only then.

A channel exists only when its credential is set (settings, from the
environment); its `secrets()` are what `retry.redact` removes from any text
that could reach a log line, an error or the journal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from pydantic import SecretStr

from watchdog.notify.page import Page
from watchdog.notify.vendors import opsgenie_body, pagerduty_body, slack_body, webhook_body
from watchdog.policy.schema import NotifySpec, Responder
from watchdog.settings import Settings
from watchdog.store.records import DeliveryRecord


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request as it is sent, secrets included: never logged, never stored."""

    url: str
    json: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # a stray repr in a traceback must not carry the secret
        return "Request(<redacted>)"


class Channel(Protocol):
    @property
    def name(self) -> str: ...

    def body(self, page: Page) -> dict[str, Any] | None:
        """The journaled payload for this page, or None if the channel has nothing to send."""
        ...

    def request(self, delivery: DeliveryRecord) -> Request: ...

    def secrets(self) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class PagerDuty:
    routing_key: SecretStr
    base_url: str
    name: str = "pagerduty"

    def body(self, page: Page) -> dict[str, Any]:
        return pagerduty_body(page)

    def request(self, delivery: DeliveryRecord) -> Request:
        body = {**delivery.body, "routing_key": self.routing_key.get_secret_value()}
        return Request(f"{self.base_url.rstrip('/')}/v2/enqueue", body)

    def secrets(self) -> list[str]:
        return [self.routing_key.get_secret_value()]


@dataclass(frozen=True, slots=True)
class Opsgenie:
    api_key: SecretStr
    base_url: str
    responders: tuple[Responder, ...] = ()
    name: str = "opsgenie"

    def body(self, page: Page) -> dict[str, Any] | None:
        return opsgenie_body(page, list(self.responders))

    def request(self, delivery: DeliveryRecord) -> Request:
        alerts = f"{self.base_url.rstrip('/')}/v2/alerts"
        url = (
            alerts
            if delivery.event == "trigger"
            else f"{alerts}/{quote(delivery.dedup_key, safe='')}/close?identifierType=alias"
        )
        auth = {"Authorization": f"GenieKey {self.api_key.get_secret_value()}"}
        return Request(url, delivery.body, auth)

    def secrets(self) -> list[str]:
        return [self.api_key.get_secret_value()]


@dataclass(frozen=True, slots=True)
class Slack:
    webhook_url: SecretStr
    name: str = "slack"

    def body(self, page: Page) -> dict[str, Any]:
        return slack_body(page)

    def request(self, delivery: DeliveryRecord) -> Request:
        return Request(self.webhook_url.get_secret_value(), delivery.body)

    def secrets(self) -> list[str]:
        return [self.webhook_url.get_secret_value()]


@dataclass(frozen=True, slots=True)
class Webhook:
    url: SecretStr
    token: SecretStr | None = None
    name: str = "webhook"

    def body(self, page: Page) -> dict[str, Any]:
        return webhook_body(page)

    def request(self, delivery: DeliveryRecord) -> Request:
        headers = {"Authorization": f"Bearer {self.token.get_secret_value()}"} if self.token else {}
        return Request(self.url.get_secret_value(), delivery.body, headers)

    def secrets(self) -> list[str]:
        token = [self.token.get_secret_value()] if self.token is not None else []
        return [self.url.get_secret_value(), *token]


def build_channels(settings: Settings, spec: NotifySpec) -> dict[str, Channel]:
    """The channels whose credentials are set, by name.

    A URL that cannot work is refused here, at start, naming the setting but never
    its value (a webhook URL is itself the secret).
    """
    for variable, url in (
        ("WATCHDOG_PAGERDUTY_URL", settings.pagerduty_url),
        ("WATCHDOG_OPSGENIE_URL", settings.opsgenie_url),
        ("WATCHDOG_SLACK_WEBHOOK_URL", _revealed(settings.slack_webhook_url)),
        ("WATCHDOG_WEBHOOK_URL", _revealed(settings.webhook_url)),
    ):
        if url is not None and urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"{variable} must be an http:// or https:// URL (value not shown)")
    channels: list[Channel] = []
    if settings.pagerduty_routing_key is not None:
        channels.append(PagerDuty(settings.pagerduty_routing_key, settings.pagerduty_url))
    if settings.opsgenie_api_key is not None:
        channels.append(
            Opsgenie(
                settings.opsgenie_api_key, settings.opsgenie_url, tuple(spec.opsgenie_responders)
            )
        )
    if settings.slack_webhook_url is not None:
        channels.append(Slack(settings.slack_webhook_url))
    if settings.webhook_url is not None:
        channels.append(Webhook(settings.webhook_url, settings.webhook_token))
    return {channel.name: channel for channel in channels}


def _revealed(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None
