"""A daemon guarding a real PostgreSQL and the enrichment stub that reads it.

The policy is songnodes.yaml narrowed to what this stage has: the enrichment
service (the stub), the configuration tables and the database itself. Steps on
services that do not exist here (the workers, the application services) are
taken out of the plans, and so are checklist lines on signals this stage does
not probe; everything else (rules, thresholds, the plan's database and
configuration steps, the authority matrix) is the production file's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.enrichment_stub import EnrichmentStub
from tests.integration.daemon_stage import DaemonView
from tests.pgserver import PgServer
from watchdog.demo import POLICY, DaemonProcess, wait_for

KEPT_SIGNALS = {
    "enrichment_health",
    "config_invalid_rows",
    "config_invalid_rows_sql",
    "database_accepts_queries",
    "database_reachable",
    "track_count",
    "orphaned_enrichment_status",
    "tracks_without_title",
}
ABSENT_ACTIONS = frozenset({"service.stop", "service.start", "service.restart", "smoke_test"})


def narrowed_policy(
    folder: Path,
    extra_rules: list[dict[str, Any]] | None = None,
    absent_actions: frozenset[str] = ABSENT_ACTIONS,
) -> Path:
    data = yaml.safe_load(POLICY.read_text())
    data["signals"] = [s for s in data["signals"] if s["name"] in KEPT_SIGNALS]
    for signal in data["signals"]:
        if signal["kind"] == "derived":
            signal["of"] = [m for m in signal["of"] if m in KEPT_SIGNALS]
    data["rules"] = [r for r in data["rules"] if r["signal"] in KEPT_SIGNALS]
    for rule in data["rules"]:  # scenario 1's route reads a Docker signal this stage has not
        if rule.get("after_change", {}).get("signal") not in KEPT_SIGNALS:
            rule.pop("after_change", None)
    data["rules"] += extra_rules or []
    used = {r["scenario"] for r in data["rules"]}
    data["scenarios"] = {n: s for n, s in data["scenarios"].items() if n in used}
    for scenario in data["scenarios"].values():
        scenario["steps"] = [s for s in scenario["steps"] if s["action"] not in absent_actions]
        scenario["checklist"] = [c for c in scenario["checklist"] if c["signal"] in KEPT_SIGNALS]
        scenario["prechecks"] = [
            p for p in scenario.get("prechecks", []) if p.get("signal", "") in ("", *KEPT_SIGNALS)
        ]
        scenario.pop("skip_post_rollback", None)
        scenario.pop("next", None)
    contacts = data.get("notify", {}).get("contacts", {})
    for contact in contacts.values():  # the contacts of the scenarios this stage keeps
        contact["scenarios"] = [s for s in contact.get("scenarios", []) if s in data["scenarios"]]
    data.get("notify", {})["contacts"] = {
        n: c for n, c in contacts.items() if c["scenarios"] or c.get("severities")
    }
    shared = data.get("post_rollback", [])
    data["post_rollback"] = [c for c in shared if c["signal"] in KEPT_SIGNALS]
    path = folder / "policy.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class PgStage(DaemonView):
    def wait_for_snapshot(self, table: str = "metadata_enrichment_config") -> None:
        def taken() -> bool:
            journal = self.journal()
            try:
                return journal.latest_snapshot(table) is not None
            finally:
                journal.close()

        wait_for(taken, 30, f"a last known good snapshot of {table}")


@contextmanager
def pg_stage(
    folder: Path,
    server: PgServer,
    stub: EnrichmentStub,
    *,
    database_url: str | None = None,
    extra_rules: list[dict[str, Any]] | None = None,
    environment: dict[str, str] | None = None,
    absent_actions: frozenset[str] = ABSENT_ACTIONS,
) -> Iterator[PgStage]:
    policy = narrowed_policy(folder, extra_rules, absent_actions)
    daemon = DaemonProcess(
        None,
        folder,
        policy=policy,
        environment={
            "WATCHDOG_CONFIG_STORE": "postgres",
            "WATCHDOG_DATABASE_URL": database_url or server.dsn,
            "WATCHDOG_URL_METADATA_ENRICHMENT": stub.url,
            "WATCHDOG_BACKUP_DIR": str(folder / "backups"),
            **(environment or {}),
        },
    )
    daemon.start()
    try:
        yield PgStage(folder, daemon)
    finally:
        daemon.stop()
