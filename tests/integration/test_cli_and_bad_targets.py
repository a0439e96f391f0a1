"""The one-shot commands on the sandbox, and a daemon whose targets misbehave.

`watchdog check` is the runbook's health_check.sh: exit 0 on a healthy sandbox,
1 once a service is down, with the reason in the table. A daemon pointed at a
refused port, a hanging server and a non-JSON answer keeps running, says so in
its observations and opens incidents whose evidence names the error.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from watchdog.demo import (
    DaemonProcess,
    daemon_environment,
    free_port,
    has_last_good,
    read_incidents,
    wait_for,
)
from watchdog.keys import new_key
from watchdog.sandbox.stack import SandboxStack

pytestmark = pytest.mark.slow

POLICY = Path(__file__).resolve().parents[2] / "policies" / "songnodes.yaml"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "watchdog.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_check_is_the_health_check_script(tmp_path: Path) -> None:
    with SandboxStack(tmp_path / "sandbox") as stack:
        env = daemon_environment(stack, tmp_path, "127.0.0.1:1", 1.0)
        healthy = run_cli("check", "--policy", str(POLICY), env=env)
        assert healthy.returncode == 0, healthy.stdout + healthy.stderr
        assert healthy.stdout.splitlines()[0].split() == [
            "SIGNAL",
            "SERIES",
            "VALUE",
            "STATUS",
            "DETAIL",
        ]
        assert "0 failing" in healthy.stdout
        stack.inject("database_down")
        sick = run_cli("check", "--policy", str(POLICY), env=env)
    assert sick.returncode == 1
    lines = {line.split()[0]: line for line in sick.stdout.splitlines()[1:-1]}
    assert "FAIL" in lines["database_reachable"]
    # The trap: enrichment answers 200 "healthy", but its connections say otherwise.
    assert "FAIL" in lines["enrichment_health"]
    assert "connections.database" in lines["enrichment_health"]
    assert "rest_api_health" in lines and "FAIL" in lines["rest_api_health"]


def test_incidents_table_and_timeline_from_the_journal(tmp_path: Path) -> None:
    with SandboxStack(tmp_path / "sandbox") as stack:
        daemon = DaemonProcess(stack, tmp_path).start()
        try:
            wait_for(lambda: has_last_good(tmp_path), 30, "a healthy baseline")
            stack.inject("crash", service="dlq-manager")
            wait_for(
                lambda: any(
                    i["state"] == "resolved"
                    for i in daemon.incidents()
                ),
                45,
                "the incident to resolve",
            )
        finally:
            daemon.stop()
    state = str(tmp_path / "journal.db")
    table = run_cli("incidents", "--state", state)
    assert table.returncode == 0
    strip, _, rows = table.stdout.partition("\n\n")  # the status strip, then the table
    assert "daemon stopped" in strip, strip
    assert rows.split()[:8] == [
        "ID", "SEVERITY", "SCENARIO", "SUBJECT", "STATE", "OPENED", "AGE", "SEEN"
    ]
    assert "service_failure" in rows and "dlq-manager" in rows
    assert "dlq-manager has not answered /health as healthy for" in rows
    show = run_cli("incidents", "show", "1", "--state", state)
    assert show.returncode == 0
    for words in (
        "  next:     nothing: resolved at",
        "dlq-manager health 0 < 1",
        "restart the failed service",
        "runs now, no approval needed: its one step is safe",
        "verifying → resolved",
        "Timeline",
    ):
        assert words in show.stdout, words
    missing = run_cli("incidents", "show", "99", "--state", state)
    assert missing.returncode == 2 and "99" in missing.stderr


class _Misbehaving(http.server.BaseHTTPRequestHandler):
    release = threading.Event()

    def do_GET(self) -> None:
        if self.path == "/hang":
            self.release.wait(30)  # hangs until the test is over
        body = b"<html>definitely not json</html>"
        with contextlib.suppress(OSError):  # the probe gave up long ago
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def misbehaving() -> Iterator[str]:
    _Misbehaving.release.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Misbehaving)
    server.daemon_threads = False  # server_close() joins every handler thread
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    _Misbehaving.release.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_daemon_survives_refused_hanging_and_non_json_targets(
    tmp_path: Path, misbehaving: str
) -> None:
    closed = free_port()
    policy = {
        "version": 1,
        "stack": {"name": "bad-targets"},
        "targets": {
            "refused": {"url": f"http://127.0.0.1:{closed}", "service": "refused"},
            "hanging": {"url": misbehaving, "service": "hanging"},
            "garbage": {"url": misbehaving, "service": "garbage"},
        },
        "signals": [
            {
                "name": "refused_health",
                "kind": "http",
                "target": "refused",
                "unit": "bool",
                "interval": "0.5s",
                "timeout": "0.5s",
            },
            {
                "name": "hanging_health",
                "kind": "http",
                "target": "hanging",
                "path": "/hang",
                "unit": "bool",
                "interval": "1s",
                "timeout": "0.5s",
            },
            {
                "name": "garbage_health",
                "kind": "http",
                "target": "garbage",
                "unit": "bool",
                "healthy_when": ["status == 'healthy'"],
                "interval": "0.5s",
                "timeout": "0.5s",
            },
        ],
        "rules": [
            {
                "name": f"{n}-down",
                "signal": f"{n}_health",
                "op": "<",
                "threshold": 1,
                "for": "1s",
                "severity": "P3",
                "scenario": "notify",
                "group": n,
            }
            for n in ("refused", "hanging", "garbage")
        ],
        "scenarios": {"notify": {"title": "notify only"}},
        "authority": {
            p: {"safe": "never", "risky": "never", "destructive": "never"}
            for p in ("P0", "P1", "P2", "P3")
        },
        "last_good": {"tables": []},
    }
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(policy))
    listen = f"127.0.0.1:{free_port()}"
    log = (tmp_path / "daemon.log").open("wb")
    read_token = new_key()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "watchdog.cli",
            "run",
            "--policy",
            str(path),
            "--state",
            str(tmp_path / "journal.db"),
            "--listen",
            listen,
        ],
        stdout=log,
        stderr=log,
        env={**os.environ, "WATCHDOG_READ_TOKEN": read_token},
    )
    url = f"http://{listen}"
    try:

        def three_incidents() -> bool:
            try:
                incidents = read_incidents(url, read_token)
            except httpx.HTTPError:
                return False
            return len(incidents) == 3

        wait_for(three_incidents, 30, "an incident per misbehaving target")
        incidents = {i["key"]: i for i in read_incidents(url, read_token)}
        assert {i["state"] for i in incidents.values()} == {"notified"}
        health = httpx.get(url + "/healthz").json()
        assert health["status"] == "ok" and process.poll() is None
        metrics = httpx.get(url + "/metrics").text
        for signal in ("refused_health", "hanging_health", "garbage_health"):
            assert f'watchdog_probe_errors_total{{signal="{signal}"}}' in metrics
    finally:
        process.terminate()
        code = process.wait(30)
        log.close()
    assert code == 0
    assert "Traceback" not in (tmp_path / "daemon.log").read_text()
    # Each incident says what the probe saw, in words.
    assert "cannot connect" in incidents["refused"]["reason"]
    assert "no answer within 0.5 s" in incidents["hanging"]["reason"]
    assert "not JSON" in incidents["garbage"]["reason"]
