"""A daemon loads only the SDKs its settings use.

docker (6 MB), psycopg (9 MB) and sentry-sdk (4 MB) together were a fifth of the
daemon's resident memory on the sandbox, where none of them is used. Each is now
imported where it is first needed; this builds the whole daemon for the sandbox
in a fresh interpreter and checks that none of them was loaded on the way.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

BUILD_A_SANDBOX_DAEMON = """
import asyncio, json, sys, tempfile
import httpx
from watchdog.api.app import create_app
from watchdog.commands.runner import build_daemon
from watchdog.policyfile import load_policy
from watchdog.settings import Settings
from watchdog.store.journal import open_journal

async def main():
    folder = tempfile.mkdtemp()
    settings = Settings(
        state=folder + "/journal.db",
        orchestrator="sandbox+http://127.0.0.1:9",
        config_store="sandbox+http://127.0.0.1:9",
        backup_dir=folder,
        _env_file=None,
    )
    policy = load_policy("policies/songnodes.yaml", environ={})
    journal = open_journal(settings.state)
    async with httpx.AsyncClient() as client:
        daemon = build_daemon(policy, settings, journal, client, dry_run=False)
        create_app(journal, daemon.metrics, daemon.health, lambda: 0.0, alerts=daemon.alerts)
    journal.close()

asyncio.run(main())
print(json.dumps(sorted(m for m in ("docker", "psycopg", "sentry_sdk") if m in sys.modules)))
"""


def test_a_sandbox_daemon_loads_neither_docker_psycopg_nor_sentry() -> None:
    done = subprocess.run(
        [sys.executable, "-c", BUILD_A_SANDBOX_DAEMON],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
