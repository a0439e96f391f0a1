"""Scenario 5 by hand on a real engine: `watchdog emergency-stop` and `watchdog rollback --full`.

A labelled busybox stack (two input services, an API with a named volume, a front
end and a protected `postgres`) is guarded by policies/compose-generic.yaml and its
prepared plan `full_system_rollback`. The commands run as subprocesses fed on stdin,
as an operator at a terminal would answer them; every assertion reads the engine
(container IDs, stop times, what runs), the snapshot folder, the volume's file or
the real PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import psycopg
import pytest
import yaml

from tests.dockerengine import Projects, run_service, www_folder
from tests.pgserver import PgServer
from watchdog.actions.database import DatabaseActions
from watchdog.actions.docker import DockerOrchestrator
from watchdog.commands.runner import docker_factory
from watchdog.demo import free_port
from watchdog.model import Risk, Step
from watchdog.store.journal import open_journal

pytestmark = pytest.mark.slow

GENERIC = Path(__file__).resolve().parents[2] / "policies" / "compose-generic.yaml"
#: Stop tiers of the generic policy: input first, then the APIs, the front end last.
TIERS = (("scraper-a", "worker"), ("api",), ("web",))
SECRET = "hunter2secret"


@dataclass
class Stack:
    name: str
    folder: Path
    client: docker.DockerClient
    env: dict[str, str]
    volume: str

    def containers(self) -> dict[str, Any]:
        found = self.client.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={self.name}"}
        )
        return {c.labels["com.docker.compose.service"]: c for c in found}

    def running(self) -> set[str]:
        return {s for s, c in self.containers().items() if c.status == "running"}

    def run(self, *args: str, answers: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "watchdog.cli", *args, "--policy",
             str(self.folder / "policy.yaml")],
            env=self.env, input=answers, capture_output=True, text=True, timeout=180,
            check=False,
        )


@contextlib.contextmanager
def labelled_stack(
    client: docker.DockerClient, docker_url: str, folder: Path, extra_env: dict[str, str]
) -> Iterator[Stack]:
    with Projects(client, prefix="wdfull") as projects:
        name = projects.new()
        volume = f"{name}_data"
        client.volumes.create(volume, labels={"com.docker.compose.project": name})
        ports = {s: free_port() for s in ("scraper-a", "worker", "api", "web", "postgres")}
        try:
            for service, port in ports.items():
                run_service(
                    client, project=name, service=service, port=port,
                    www=www_folder(folder, f"www-{service}"),
                    volumes={volume: {"bind": "/data", "mode": "rw"}} if service == "api" else None,
                )
            policy = yaml.safe_load(GENERIC.read_text())
            policy["stack"]["name"] = name
            policy["stack"]["protected_services"] = ["postgres"]
            policy["targets"] = {
                s: {"url": f"http://127.0.0.1:{p}", "service": s} for s, p in ports.items()
            }
            policy["scenarios"]["full_system_rollback"]["verify_for"] = "10s"  # 1 s here
            (folder / "policy.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("WATCHDOG_")},
                "DOCKER_HOST": docker_url, "WATCHDOG_COMPOSE_PROJECT": name,
                "WATCHDOG_ORCHESTRATOR": f"docker+{docker_url}",
                "WATCHDOG_HEALTH_PATH": "/healthy", "WATCHDOG_TIME_SCALE": "10",
                "WATCHDOG_STATE": str(folder / "journal.db"), **extra_env,
            }
            stack = Stack(name, folder, client, env, volume)
            record_last_good(stack, docker_url, ("scraper-a", "worker", "api", "web"))
            yield stack
        finally:
            projects.remove_all()
            with contextlib.suppress(docker.errors.NotFound):
                client.volumes.get(volume).remove(force=True)


def record_last_good(stack: Stack, docker_url: str, services: tuple[str, ...]) -> None:
    """What the daemon journals once each service is verified healthy."""
    journal = open_journal(stack.env["WATCHDOG_STATE"])
    try:
        orchestrator = DockerOrchestrator(
            docker_factory(docker_url), stack.name, snapshots=journal
        )
        for service in services:
            assert asyncio.run(orchestrator.record_last_good(service))
    finally:
        journal.close()


def stopped_at(container: Any) -> datetime:
    container.reload()
    stamp = container.attrs["State"]["FinishedAt"]  # RFC 3339, nanoseconds
    whole, _, rest = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{whole}.{(rest + '000000')[:6]}")


def test_emergency_stop_asks_for_the_stack_name_stops_tier_by_tier_and_keeps_the_evidence(
    tmp_path: Path, docker_client: docker.DockerClient, docker_url: str
) -> None:
    with labelled_stack(docker_client, docker_url, tmp_path, {}) as stack:
        everything = stack.running()
        assert everything == {"scraper-a", "worker", "api", "web", "postgres"}
        said = stack.containers()["scraper-a"].exec_run(
            ["/bin/sh", "-c", f"echo 'db at postgresql://app:{SECRET}@db/music' > /proc/1/fd/1"]
        )
        assert said.exit_code == 0

        refused = stack.run("emergency-stop", "--yes")
        assert refused.returncode == 2 and "REFUSED: --yes cannot confirm step 2" in refused.stdout
        wrong = stack.run("emergency-stop", answers="production\n")
        assert wrong.returncode == 1 and "nothing was done" in wrong.stdout
        silent = stack.run("emergency-stop")  # stdin at its end: no TTY, no answer
        assert silent.returncode == 1 and "nothing was done" in silent.stdout
        declined = stack.run("emergency-stop", answers=f"{stack.name}\nno\n")
        assert declined.returncode == 1 and "not confirmed by the operator" in declined.stdout
        assert stack.running() == everything

        done = stack.run("emergency-stop", answers=f"{stack.name}\n2\n")
        assert done.returncode == 0, done.stdout + done.stderr
        assert stack.running() == {"postgres"}  # stateful, no --force
        containers = stack.containers()
        times = [[stopped_at(containers[s]) for s in tier] for tier in TIERS]
        for earlier, later in itertools.pairwise(times):
            assert max(earlier) <= min(later), times
        assert "left running (stateful, no --force): postgres" in done.stdout

        folder = max((tmp_path / "forensics").iterdir(), key=lambda p: p.stat().st_mtime)
        assert f"snapshot in {folder}:" in done.stdout
        ps = json.loads((folder / "ps.json").read_text())
        assert {row["service"] for row in ps} == everything
        assert all(row["state"] == "running" for row in ps)  # as it was before the stop
        log = (folder / "logs" / f"{stack.name}-scraper-a-1.log").read_text()
        assert "postgresql://app:" in log and SECRET not in log
        assert json.loads((folder / "df.json").read_text())["state"]["total_bytes"] > 0
        assert "MemTotal" in (folder / "meminfo.txt").read_text()
        volumes = json.loads((folder / "volumes.json").read_text())
        assert [v["name"] for v in volumes] == [stack.volume]
        events = [json.loads(line) for line in (folder / "journal.jsonl").read_text().splitlines()]
        assert len({e["incident"] for e in events}) == 2  # the declined run's and this one's
        assert "ps.json" in (folder / "README.txt").read_text()

        for container in stack.containers().values():  # up again, to stop with --force
            container.start()
        forced = stack.run("emergency-stop", "--force", answers=f"{stack.name}\n2\n")
        assert forced.returncode == 0, forced.stdout + forced.stderr
        assert stack.running() == set()
        containers = stack.containers()
        last = max(stopped_at(containers[s]) for tier in TIERS for s in tier)
        assert stopped_at(containers["postgres"]) >= last
        assert "tier 4 (stateful (--force)): postgres stopped" in forced.stdout


def sql(server: PgServer, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        cursor = conn.execute(query)
        return cursor.fetchall() if cursor.description else []


def test_full_rollback_needs_the_name_then_rebuilds_from_last_good_and_restores_the_database(
    tmp_path: Path, docker_client: docker.DockerClient, docker_url: str, musicdb: PgServer
) -> None:
    backups = tmp_path / "backups"
    step = Step("backup", "database.backup", Risk.SAFE, (("backup_dir", str(backups)),))
    asyncio.run(DatabaseActions(musicdb.dsn).backup(step))
    sql(musicdb, "DELETE FROM enrichment_status; DELETE FROM tracks")
    env = {"WATCHDOG_DATABASE_URL": musicdb.dsn, "WATCHDOG_BACKUP_DIR": str(backups)}
    with labelled_stack(docker_client, docker_url, tmp_path, env) as stack:
        before = {s: c.id for s, c in stack.containers().items()}
        wrote = stack.containers()["api"].exec_run(["/bin/sh", "-c", "echo kept > /data/file"])
        assert wrote.exit_code == 0

        wrong = stack.run("rollback", "--full", answers="songnodes\n")
        assert wrong.returncode == 1 and "nothing was done" in wrong.stdout
        refused = stack.run("rollback", "--full", "--yes")
        assert refused.returncode == 2
        assert refused.stdout.splitlines()[-1].startswith("REFUSED: --yes cannot confirm step 2")
        assert {s: c.id for s, c in stack.containers().items()} == before
        assert stack.running() == set(before)

        dry = stack.run("rollback", "--full", "--dry-run")
        assert dry.returncode == 0 and "dry run: would call system.rebuild" in dry.stdout
        assert {s: c.id for s, c in stack.containers().items()} == before
        assert stack.running() == set(before)

        answers = f"{stack.name}\n2\n4\n5\n"  # the name; stop, rebuild, restore (risky)
        done = stack.run("rollback", "--full", answers=answers)
        assert done.returncode == 0, done.stdout + done.stderr
        for name in ("keep a forensic snapshot", "emergency stop in dependency order",
                     "check disk and memory", "rebuild from the last known good records",
                     "restore the newest database backup"):
            assert f"succeeded {name}" in done.stdout, done.stdout
        assert "verified: " in done.stdout
        after = stack.containers()
        assert stack.running() == set(before)
        for service in ("scraper-a", "worker", "api", "web"):
            assert after[service].id != before[service], service  # recreated
        assert after["postgres"].id == before["postgres"]  # stateful: never recreated
        read = after["api"].exec_run(["/bin/cat", "/data/file"])
        assert read.exit_code == 0 and read.output.decode().strip() == "kept"  # volume kept
        assert sql(musicdb, "SELECT count(*) FROM tracks")[0][0] == 50  # the backup's rows

    journal = open_journal(str(tmp_path / "journal.db"))
    try:
        manual = [r for r in journal.list_incidents() if r.key.startswith("manual/")]
        dry_run, incident = sorted(manual, key=lambda r: r.id)  # the refusals opened none
        assert {s.status for s in journal.steps(dry_run.id)} == {"skipped"}
    finally:
        journal.close()
    assert incident.scenario == "full_system_rollback" and incident.severity.value == "P0"
    assert incident.state == "resolved"

