"""Process settings: where the journal lives, what to listen on, which backends act.

From the environment (WATCHDOG_*) with command-line flags taking precedence.
Policy is what to do; settings are where this particular daemon runs.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
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
