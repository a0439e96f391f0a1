"""Last known good on a real PostgreSQL: scoped to the table, and honest about disables.

The daemon's `LastGood` reads `metadata_enrichment_config` from the throwaway
server of tests/pgserver.py with the songnodes policy's own guards. An open
incident about something else (a disk warning) no longer holds a snapshot back;
the table's own rule does. A real provider disable, journaled as the executor
journals it, makes the snapshot taken meanwhile carry a caveat, and a real
`config.restore` from that snapshot says so first in its output (the page shows it).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import psycopg

from tests.lastgood_facts import View, seen_everything, snapshotting, view_of
from tests.pgserver import PgServer
from watchdog.actions.config import ConfigActions
from watchdog.actions.http import HttpActions
from watchdog.actions.pgstore import PostgresConfigStore
from watchdog.engine.lastgood import LastGood
from watchdog.model import Finding, Risk, Severity, Step
from watchdog.policy.reenable import Disabled
from watchdog.store.journal import Journal
from watchdog.store.records import SnapshotRecord

CONFIG = "metadata_enrichment_config"
BPM = "metadata_field = 'bpm'"


def sql(server: PgServer, query: str) -> None:
    with psycopg.connect(server.dsn, autocommit=True) as db:
        db.execute(query.encode())


def finding(rule: str, group: str, scenario: str, subject: str = "") -> Finding:
    return Finding(rule, "s", subject, Severity.P2, scenario, group, subject, 0.0, f"{rule} fired")


DISK = finding("disk-filling", "host", "fix_forward", "disk")
INVALID = finding("configuration-invalid", "configuration", "configuration_corruption")
BREAKER = finding("provider-breaker-open", "provider", "provider_failure", "spotify")


class Driver:
    """A LastGood over the real table, ticked as the daemon ticks it, clock in hand."""

    def __init__(self, musicdb: PgServer, journal: Journal) -> None:
        self.store = PostgresConfigStore(musicdb.dsn)
        self.journal = journal
        self.now = 1000.0
        policy = snapshotting(CONFIG, every=1.0, settle=1.0)
        self.last_good = LastGood(
            policy, self.store, journal, lambda: self.now, seen_everything(policy)
        )

    async def settled(
        self,
        active: list[Finding],
        views: list[View],
        disabled: list[Disabled] | None = None,
    ) -> SnapshotRecord | None:
        """Read a candidate, let it settle, keep it (or not): the newest snapshot after."""
        for _ in range(2):
            await self.last_good.tick(active, {}, views, disabled or [])
            self.now += 1.5
        return self.journal.latest_snapshot(CONFIG)

    def settle(
        self,
        active: list[Finding],
        views: list[View],
        disabled: list[Disabled] | None = None,
    ) -> SnapshotRecord | None:
        return asyncio.run(self.settled(active, views, disabled))

    def rows(self) -> list[dict[str, Any]]:
        return asyncio.run(self.store.read_rows(CONFIG))


def open_incident(journal: Journal, found: Finding) -> View:
    incident = journal.open_incident(
        key=found.key, severity=found.severity, scenario=found.scenario, subject=found.subject,
        state="notified", reason=found.reason, at=1000.0, findings=[found],
    )
    return view_of(incident, found)


def test_a_new_version_is_snapshotted_while_an_unrelated_incident_is_open(
    musicdb: PgServer, journal: Journal
) -> None:
    """Defect: any open incident held every snapshot back for as long as it stayed open."""
    driver = Driver(musicdb, journal)
    disk = open_incident(journal, DISK)

    first = driver.settle([DISK], [disk])
    assert first is not None and first.rows == driver.rows() and first.caveat == ""

    sql(musicdb, f"UPDATE {CONFIG} SET field_description = 'version 2' WHERE {BPM}")
    second = driver.settle([DISK], [disk])
    assert second is not None and second.id != first.id
    assert second.rows == driver.rows()
    assert {r["metadata_field"]: r["field_description"] for r in second.rows}["bpm"] == "version 2"

    # The table's own rule does hold it back, and so does an open incident of its group.
    sql(musicdb, f"UPDATE {CONFIG} SET field_description = 'version 3' WHERE {BPM}")
    assert driver.settle([DISK, INVALID], [disk]) == second
    restoring = open_incident(journal, INVALID)
    assert driver.settle([DISK], [disk, restoring]) == second
    third = driver.settle([DISK], [disk])
    assert third is not None and third.id != second.id and third.rows == driver.rows()


def test_a_snapshot_during_a_provider_disable_is_marked_and_its_restore_says_so(
    musicdb: PgServer, journal: Journal, tmp_path: Path
) -> None:
    driver = Driver(musicdb, journal)
    original = driver.settle([], [])
    assert original is not None and original.caveat == ""

    async def disable_and_restore(incident: int) -> tuple[str, str]:
        async with httpx.AsyncClient() as client:
            http = HttpActions(snapshotting(CONFIG), client)
            config = ConfigActions(driver.store, journal, http, tmp_path)
            disabled = await config.disable(
                Step("take spotify out", "provider.disable", Risk.SAFE,
                     (("provider", "spotify"), ("table", CONFIG), ("mode", "surgical")))
            )
            journal.add_event(incident, at=driver.now, kind="step_evidence",
                              summary=disabled.output, data=disabled.data)
            # The breaker rule still breaches: not this table's rule.
            taken = await driver.settled([BREAKER], [provider])
            assert taken is not None and taken.id != original.id
            sql(musicdb, f"UPDATE {CONFIG} SET priority_1_provider = NULL "
                "WHERE metadata_field = 'bpm'")  # a corruption, restored from that snapshot
            restored = await config.restore(
                Step("restore", "config.restore", Risk.SAFE,
                     (("table", CONFIG), ("source", "last_good")))
            )
            return taken.caveat, restored.output

    provider = open_incident(journal, BREAKER)
    caveat, output = asyncio.run(disable_and_restore(provider.id))

    words = f"taken while the watchdog had spotify disabled (incident {provider.id}; still open)"
    assert caveat == words
    snapshot = journal.latest_snapshot(CONFIG)
    assert snapshot is not None and driver.rows() == snapshot.rows
    assert output.startswith(
        f"CAVEAT: this snapshot was {words}. restored {CONFIG} from last known good snapshot "
        f"{snapshot.id} (checksum {snapshot.checksum[:12]}"
    ), output

    # Resolved, the disable still standing (the Reenabler's list): the same rows, and the
    # caveat without "still open"; nothing new is stored for a caveat that only changed
    # its words, and the same rows seen clean later replace the caveated version.
    standing = Disabled(provider.id, Severity.P2, "provider_failure", "spotify", 1000.0, BREAKER)
    assert driver.settle([], [], [standing]) == snapshot
    clean = driver.settle([], [])
    assert clean is not None and clean.id != snapshot.id
    assert clean.caveat == "" and clean.checksum == snapshot.checksum
