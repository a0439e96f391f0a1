"""A sidecar's first start on a fresh volume: no people file yet, and it runs anyway.

`deploy/docker-compose.watchdog.yml` sets `WATCHDOG_PEOPLE=/state/people.yaml`; a fresh
volume has no such file. The daemon used to exit 2 on it, so Docker restarted it
forever (7 times a minute) and `docker compose exec ... watchdog people add`, the way
deploy/README.md gives to add a person, failed on the restarting container (issue 14).

Now it runs, acts within its automatic authority, and says how to add the first
approver in its log, in `/healthz` and on the web page; the person added while it runs
is read without a restart.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from watchdog.demo import POLICY, DaemonProcess
from watchdog.sandbox.stack import SandboxStack


def test_no_people_file_yet_runs_says_how_to_add_one_and_reads_it_once_added(
    sandbox_stack: SandboxStack, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    people = state / "people.yaml"  # what the Compose file names, on a fresh volume
    daemon = DaemonProcess(sandbox_stack, state, environment={"WATCHDOG_PEOPLE": str(people)})
    daemon.start()
    try:
        health = httpx.get(daemon.url + "/healthz", timeout=5).json()
        assert health["approvers"]["people"] == 0
        hint = health["approvers"]["hint"]
        assert f"watchdog people add NAME --role oncall --people {people}" in hint, hint
        page = httpx.get(daemon.url + "/ui/", timeout=5)
        assert page.status_code == 401 and "watchdog people add" in page.text
        assert "no_approvers" in (state / "daemon.log").read_text()

        added = subprocess.run(
            [sys.executable, "-m", "watchdog.cli", "people", "add", "olga", "--role", "oncall",
             "--people", str(people), "--policy", str(POLICY)],
            capture_output=True, text=True, check=False, timeout=60,
        )
        assert added.returncode == 0, added.stderr
        token = added.stdout.strip().splitlines()[-1].split()[-1]
        answer = httpx.get(daemon.url + "/incidents", timeout=10,
                           headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, answer.text
        health = httpx.get(daemon.url + "/healthz", timeout=5).json()
        assert health["approvers"] == {"people": 1, "hint": None}
    finally:
        assert daemon.stop() == 0
