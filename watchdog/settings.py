"""Process settings: where the journal lives, what to listen on, which backends act.

From the environment (WATCHDOG_*) with command-line flags taking precedence.
Policy is what to do; settings are where this particular daemon runs.

The journal's default is an absolute path under the state directory
(WATCHDOG_STATE_DIR, else $XDG_STATE_HOME/watchdog or ~/.local/state/watchdog), never
relative to the current folder: `watchdog incidents` run from another folder must read
the journal the daemon writes, not a new empty one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: When neither HOME nor the password database names a home folder (a container's uid).
SYSTEM_STATE_DIR = Path("/var/lib/watchdog")
JOURNAL_NAME = "journal.db"


def default_state_dir() -> Path:
    """$XDG_STATE_HOME/watchdog, else ~/.local/state/watchdog: absolute, per user."""
    xdg = os.environ.get("XDG_STATE_HOME", "")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "watchdog"
    try:
        return Path.home() / ".local" / "state" / "watchdog"
    except RuntimeError:
        return SYSTEM_STATE_DIR


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WATCHDOG_", extra="ignore")

    state_dir: Path = Field(
        default_factory=default_state_dir,
        description="where the journal and backups go unless WATCHDOG_STATE or "
        "WATCHDOG_BACKUP_DIR say otherwise (default ~/.local/state/watchdog)",
    )
    state: str = Field("", description="journal: a path, sqlite:/// or postgresql:// URL (default: "
                       "journal.db in the state directory)")
    listen: str = Field("127.0.0.1:9095", description="host:port of the HTTP API")
    status_heartbeat: float = Field(
        5.0, gt=0, description="seconds between the daemon's status heartbeats in the journal "
        "(`watchdog status` calls one older than three of them stale)",
    )
    observations_retention: float = Field(
        172800.0, ge=0, description="seconds of observations kept in the journal for "
        "`watchdog replay` (default two days: yesterday stays replayable all of today; "
        "0: record none)",
    )
    instance: str | None = Field(
        None, min_length=1, max_length=100,
        description="this sidecar's name among those sharing a PostgreSQL journal "
        "(default: the host name); /healthz and the web page say which one leads",
    )
    lease_seconds: float = Field(
        4.0, ge=1.0, le=60.0,
        description="the leadership lease on a PostgreSQL journal: renewed every quarter of "
        "it; a follower takes over within it after the leader dies, freezes or loses the "
        "database",
    )
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
    backup_dir: Path = Field(Path(""), description="CSV backups of tables (default: backups "
                             "in the state directory)")
    time_scale: float = Field(1.0, gt=0, description="divide policy durations by this (drills)")
    scheduled_drills: bool = Field(
        True, description="run the policy's scheduled drills (false: `watchdog drill` by hand "
        "only; the demo and the test suite's daemons set it, so no quarterly drill lands in "
        "their faults)",
    )
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

    def model_post_init(self, context: Any, /) -> None:
        """Fill the journal and backup paths from the state directory, made absolute."""
        self.state_dir = self.state_dir.expanduser().absolute()
        if not self.state:
            self.state = str(self.state_dir / JOURNAL_NAME)
        if self.backup_dir == Path(""):
            self.backup_dir = self.state_dir / "backups"

    @property
    def default_journal(self) -> str:
        """Where the journal is when WATCHDOG_STATE and --state are not given."""
        return str(self.state_dir / JOURNAL_NAME)

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
            raise ValueError("host:port such as 127.0.0.1:9095")
        return value

    @property
    def listen_host(self) -> str:
        return self.listen.rpartition(":")[0]

    @property
    def listen_port(self) -> int:
        return int(self.listen.rpartition(":")[2])


#: The command-line flag that overrides a setting, where there is one.
FLAGS = {"state": "--state", "listen": "--listen", "time_scale": "--time-scale"}


def settings_problem(error: ValidationError) -> str:
    """A bad setting in one line: which setting (its variable and flag), what was found and
    what was expected; never pydantic's dump with its documentation URL."""
    problems = []
    for item in error.errors():
        name = str(item["loc"][0]) if item["loc"] else "?"
        variable = f"WATCHDOG_{name.upper()}"
        where = f"{FLAGS[name]} / {variable}" if name in FLAGS else variable
        expected = str(item["msg"])
        for prefix in ("Value error, ", "Input should be "):
            expected = expected.removeprefix(prefix)
        problems.append(f"{where}: found {item.get('input')!r}; expected {expected}")
    return "; ".join(problems)
