"""Process settings: where the journal lives, what to listen on, which backends act.

From the environment (WATCHDOG_*) with command-line flags taking precedence.
Policy is what to do; settings are where this particular daemon runs.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WATCHDOG_", extra="ignore")

    state: str = Field("state/journal.db", description="journal: a path or sqlite:/// URL")
    listen: str = Field("127.0.0.1:9095", description="host:port of the HTTP API")
    orchestrator: str | None = Field(
        None,
        description="docker, docker+unix:///PATH, or sandbox+http://127.0.0.1:PORT (the sandbox)",
    )
    config_store: str | None = Field(
        None,
        description="postgres (the database_url), a postgresql:// URL, or sandbox+http://…",
    )
    database_url: str | None = Field(
        None,
        description="the guarded PostgreSQL, postgresql://user[:password]@host:port/db; "
        "libpq's PGPASSWORD also works. Never logged.",
        repr=False,
    )
    backup_dir: Path = Field(Path("state/backups"), description="CSV backups of tables")
    time_scale: float = Field(1.0, gt=0, description="divide policy durations by this (drills)")
    log_format: str = Field("auto", description="json, console, or auto (console on a terminal)")
    log_level: str = "info"
    people: Path | None = Field(
        None, description="YAML file of people, roles and hashed tokens (`watchdog people add`)"
    )
    read_token: SecretStr | None = Field(
        None,
        description="a bearer key that reads /incidents and the web page (decides nothing), "
        "for dashboards and scripts; `watchdog token new` makes one. Unset: people only",
    )

    # Notifiers: where pages go. Every credential is a SecretStr, added to a request
    # only at send time and never journaled or logged; a channel without one is off.
    public_url: str = Field(
        "http://127.0.0.1:9095",
        description="this daemon as people reach it; pages link to {public_url}/ui/incidents/ID",
    )
    pagerduty_routing_key: SecretStr | None = Field(None, description="Events API v2 key")
    pagerduty_url: str = "https://events.pagerduty.com"
    opsgenie_api_key: SecretStr | None = Field(None, description="sent as GenieKey")
    opsgenie_url: str = "https://api.opsgenie.com"
    slack_webhook_url: SecretStr | None = Field(None, description="an incoming webhook URL")
    webhook_url: SecretStr | None = Field(None, description="a generic JSON webhook")
    webhook_token: SecretStr | None = Field(None, description="sent as a bearer token")
    notify_timeout: float = Field(10.0, gt=0, description="seconds per delivery attempt")
    notify_backoff: float = Field(2.0, gt=0, description="seconds before the first retry")
    notify_backoff_max: float = Field(300.0, gt=0, description="the longest wait between tries")
    notify_max_attempts: int = Field(50, ge=1, description="then the page is given up, loudly")
    notify_retry_after_max: float = Field(
        300.0, gt=0, description="the longest a vendor's Retry-After may hold a page (seconds)"
    )
    sentry_dsn: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("SENTRY_DSN", "WATCHDOG_SENTRY_DSN"),
        description="report the daemon's own errors and failed rollbacks to Sentry",
    )

    @field_validator("read_token", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """An empty key is no key: `WATCHDOG_READ_TOKEN=""` is off, never a match for ''."""
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        return None if isinstance(raw, str) and not raw.strip() else value

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"expected host:port such as 127.0.0.1:9095, found {value!r}")
        return value

    @property
    def listen_host(self) -> str:
        return self.listen.rpartition(":")[0]

    @property
    def listen_port(self) -> int:
        return int(self.listen.rpartition(":")[2])
