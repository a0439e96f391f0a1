"""What every action backend looks like to the executor.

An action takes a planned `Step` and returns an `ActionOutcome`: whether it
worked and, in words, what it did — the output that goes to the journal and the
timeline. Backends translate their own library's exceptions into `ActionFailed`
once, at their edge, so the executor never sees an `httpx` or `docker` error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from watchdog.model import Step


class ActionFailed(Exception):
    """An action that did not do what it promised; the message says what and why."""


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    ok: bool
    output: str
    data: dict[str, Any] = field(default_factory=dict)


class Orchestrator(Protocol):
    """Starts and stops a stack's services (the sandbox now; Docker behind the same face)."""

    async def restart(self, services: Sequence[str], *, stop_timeout: float) -> str: ...

    async def stop(self, services: Sequence[str], *, stop_timeout: float) -> str: ...

    async def start(self, services: Sequence[str]) -> str: ...


class Reverter(Protocol):
    """An orchestrator that can also put a service back on its last known good image."""

    async def revert(self, service: str) -> str: ...

    async def record_last_good(self, service: str) -> bool: ...


class ConfigStore(Protocol):
    """Reads and writes a configuration table (the sandbox's, or PostgreSQL's).

    `replace_rows` makes the table hold exactly the rows given (a restore);
    `update_rows` writes only the rows given, by primary key, and leaves every
    other row alone (a provider disable, and its undo). Both return a summary of
    what they did, for the journal.
    """

    async def read_rows(self, table: str) -> list[dict[str, Any]]: ...

    async def replace_rows(self, table: str, rows: Sequence[Mapping[str, Any]]) -> str: ...

    async def update_rows(self, table: str, rows: Sequence[Mapping[str, Any]]) -> str: ...

    async def primary_key(self, table: str) -> tuple[str, ...]: ...


Handler = Callable[[Step], Awaitable[ActionOutcome]]


def services_param(step: Step) -> list[str]:
    services = step.param_map().get("services", [])
    if isinstance(services, str):
        return [services]
    return [str(s) for s in services]
