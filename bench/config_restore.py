"""Configuration corruption to verified restore, on a real PostgreSQL.

A throwaway PostgreSQL (tests/pgserver.py) holds metadata_enrichment_config;
the enrichment stub (tests/enrichment_stub.py) loads it on reload and serves
/admin/config; the real daemon (`watchdog run`, songnodes.yaml narrowed to
those parts by tests/integration/pg_stage.py) probes the table every 1 s. Each
run corrupts one row with SQL (a NULL first provider) and measures, from the
UPDATE's commit:

- restored: the `config.verify` step succeeded: the table equals the last known
  good snapshot again AND the service has reloaded and serves it;
- resolved: the incident closed after its checklist held (`verify_for` 1 s here).

Policy for the bench: `for: 0s` on the corruption rules, cooldown 0 (every run is
a fresh fault, not a loop), last known good every 1 s. The runbook allows 2
minutes by hand; the goal is under 3 s for the real 14-row table.

Run: .venv/bin/python bench/config_restore.py [--runs 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.enrichment_stub import enrichment_stub
from tests.integration.pg_stage import narrowed_policy
from tests.pgserver import postgres_server
from watchdog.demo import DaemonProcess, wait_for
from watchdog.store.journal import open_journal

CONFIG = "metadata_enrichment_config"


def bench_policy(folder: Path) -> Path:
    path = narrowed_policy(folder)
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    for signal in data["signals"]:
        signal["interval"] = "1s"
        signal["timeout"] = "1s"
    for rule in data["rules"]:
        if rule["scenario"] == "configuration_corruption":
            rule["for"] = "0s"
            rule["clear_for"] = "1s"
    data["scenarios"]["configuration_corruption"]["verify_for"] = "1s"
    data["guards"].update(cooldown="0s", actions_per_hour=1000)
    data["last_good"].update(every="1s", settle="1s")
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def measure(extra_rows: int, runs: int) -> tuple[list[float], list[float]]:
    restored: list[float] = []
    resolved: list[float] = []
    folder = Path(tempfile.mkdtemp(prefix="watchdog-bench-pg-"))
    with postgres_server() as server:
        server.reset_musicdb(extra_config_rows=extra_rows)
        with enrichment_stub(server.dsn) as stub:
            daemon = DaemonProcess(
                None,
                folder,
                time_scale=1.0,
                policy=bench_policy(folder),
                environment={
                    "WATCHDOG_CONFIG_STORE": "postgres",
                    "WATCHDOG_DATABASE_URL": server.dsn,
                    "WATCHDOG_URL_METADATA_ENRICHMENT": stub.url,
                    "WATCHDOG_BACKUP_DIR": str(folder / "backups"),
                },
            ).start()
            journal = open_journal(str(folder / "journal.db"))
            try:
                wait_for(lambda: journal.latest_snapshot(CONFIG) is not None, 60, "a snapshot")
                for run in range(runs):
                    wait_for(lambda: not journal.open_incidents(), 60, "no open incident")
                    time.sleep(1.5)  # rules clear, the next fault is a fresh one
                    known = {i.id for i in journal.list_incidents(limit=1000)}
                    with psycopg.connect(server.dsn, autocommit=True) as db:
                        db.execute(
                            f"UPDATE {CONFIG} SET priority_1_provider = NULL "
                            "WHERE metadata_field = 'bpm'"
                        )
                        corrupted_at = time.time()
                    wait_for(
                        lambda before=known: any(
                            i.id not in before and i.closed_at is not None
                            for i in journal.list_incidents(limit=1000)
                        ),
                        60,
                        f"run {run + 1}: the incident resolved",
                    )
                    (incident,) = [
                        i for i in journal.list_incidents(limit=1000) if i.id not in known
                    ]
                    verify = next(
                        s for s in journal.steps(incident.id) if s.action == "config.verify"
                    )
                    assert verify.status == "succeeded" and verify.finished_at is not None
                    restored.append(verify.finished_at - corrupted_at)
                    assert incident.closed_at is not None
                    resolved.append(incident.closed_at - corrupted_at)
            finally:
                journal.close()
                daemon.stop()
    return restored, resolved


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    print(f"configuration corruption → restore, 1 s probes, {args.runs} runs each")
    print(f"{'table rows':>10}  {'restored median':>15}  {'p95':>6}  {'resolved median':>15}  "
          f"{'p95':>6}")
    for extra in (0, 10_000):
        restored, resolved = measure(extra, args.runs)
        print(
            f"{14 + extra:>10}  {statistics.median(restored):>13.2f} s  "
            f"{percentile(restored, 0.95):>4.2f} s  {statistics.median(resolved):>13.2f} s  "
            f"{percentile(resolved, 0.95):>4.2f} s"
        )
    print("goal: restored under 3 s for the real 14-row table (the runbook: 2 min by hand)")


if __name__ == "__main__":
    main()
