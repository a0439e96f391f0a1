"""What the policy and the live stack know, gathered for the unknown-subject check.

The pure core (`watchdog.policy.subjects`) decides whether a plan made from an
alert's finding names only known providers and services; this module gathers
the facts it needs. Services: the policy's, and the containers the Docker probe
sees (its series in the signal windows). Providers: the ones the configuration
tables name, read through the daemon's configuration store, the same reads the
table probe and the last-known-good snapshots make. The tables are read only
when an alert's finding is about to open an incident (at most every
`max_age` seconds), so a quiet daemon reads nothing more than before; if they
cannot be read, no provider is known and an alert's plan acts on nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import structlog

from watchdog.actions.base import ConfigStore
from watchdog.model import Finding
from watchdog.policy.schema import Policy
from watchdog.policy.subjects import (
    KnownSubjects,
    docker_signals,
    policy_services,
    provider_tables,
    providers_in,
    steered_by_labels,
)
from watchdog.policy.windows import Windows

log = structlog.get_logger("watchdog.subjects")


class Subjects:
    def __init__(
        self,
        policy: Policy,
        store: ConfigStore | None,
        windows: Windows,
        clock: Callable[[], float],
        *,
        max_age: float = 2.0,
    ) -> None:
        self.policy = policy
        self._store = store
        self._windows = windows
        self._clock = clock
        self._max_age = max_age
        self._services = policy_services(policy)
        self._docker = docker_signals(policy)
        self._tables = provider_tables(policy)
        self._providers: frozenset[str] = frozenset()
        self._providers_from = "the configuration tables (not read yet)"
        self._read_at: float | None = None

    def known(self) -> KnownSubjects:
        live = {series for name in self._docker for series, _ in self._windows.latest_all(name)}
        return KnownSubjects(
            services=self._services | {s for s in live if s},
            providers=self._providers,
            providers_from=self._providers_from,
        )

    async def before_triage(
        self, active: Iterable[Finding], open_keys: Mapping[str, object]
    ) -> None:
        """Read the provider tables if an alert's finding is about to open an incident."""
        opening = any(
            f.key not in open_keys and steered_by_labels(self.policy, f) for f in active
        )
        now = self._clock()
        if not opening or (self._read_at is not None and now - self._read_at < self._max_age):
            return
        await self.refresh()

    async def refresh(self) -> None:
        """Read every provider table; what could not be read is said in `providers_from`."""
        self._read_at = self._clock()
        if self._store is None:
            self._providers = frozenset()
            self._providers_from = "the configuration tables (no configuration store)"
            return
        found: set[str] = set()
        failed: list[str] = []
        for table in self._tables:
            try:
                found |= providers_in(await self._store.read_rows(table))
            except Exception as error:  # a table that cannot be read vouches for nothing
                failed.append(f"{table}: {type(error).__name__}")
                log.warning("subjects_table_unreadable", table=table, error=type(error).__name__)
        self._providers = frozenset(found)
        tables = ", ".join(self._tables) or "none in the policy"
        self._providers_from = f"the configuration tables ({tables})" + (
            f"; unreadable: {'; '.join(failed)}" if failed else ""
        )
