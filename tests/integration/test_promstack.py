"""The Prometheus/Alertmanager launchers work: a scrape is queryable, an alert is routed.

Other tests build on tests/promstack.py, so these pin its contract with the real
Debian binaries: Prometheus scrapes a tiny local exporter and answers PromQL with the
value it served; Alertmanager accepts an alert on /api/v2/alerts and delivers it to a
local webhook receiver.
"""

from __future__ import annotations

import json
import queue
import socket
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import promstack

pytestmark = pytest.mark.slow

EXPORTED = "promstack_probe_value 42\n"


class _Exporter(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = EXPORTED.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test output is not the place for access logs."""


def _wait_for(check: Any, what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_prometheus_scrapes_and_answers_queries(tmp_path: Path) -> None:
    with promstack.local_server(_Exporter) as exporter:
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{
                "job_name": "probe",
                "static_configs": [{"targets": [exporter.removeprefix("http://")]}],
            }],
        }
        rules = {"probe.yml": (
            "groups:\n- name: probe\n  rules:\n"
            "  - alert: ProbeValueHigh\n    expr: promstack_probe_value > 10\n"
        )}
        with promstack.prometheus(tmp_path / "prom", config, rules) as prom:
            promstack.wait_scraped(prom.url, "probe")
            result = promstack.query(prom.url, "promstack_probe_value")
            assert result[0]["metric"]["job"] == "probe"
            assert float(result[0]["value"][1]) == 42.0
            firing = _wait_for(lambda: promstack.alerts(prom.url), "the rule to fire")
            assert firing[0]["labels"]["alertname"] == "ProbeValueHigh"
            with pytest.raises(promstack.PromStackError, match="parse error"):
                promstack.query(prom.url, "sum(rate(")


def test_alertmanager_routes_an_alert_to_a_webhook(tmp_path: Path) -> None:
    received: queue.Queue[dict[str, Any]] = queue.Queue()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            received.put(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    with promstack.local_server(Receiver) as hook:
        config = {
            "route": {
                "receiver": "hook", "group_by": ["alertname"],
                "group_wait": "100ms", "group_interval": "1s", "repeat_interval": "1h",
            },
            "receivers": [{"name": "hook", "webhook_configs": [{"url": f"{hook}/alerts"}]}],
        }
        with promstack.alertmanager(tmp_path / "am", config) as am:
            alert = {
                "labels": {"alertname": "PromstackTest", "severity": "critical"},
                "annotations": {"summary": "routed"},
                "startsAt": datetime.now(UTC).isoformat(),
            }
            with httpx.Client(trust_env=False) as client:
                answer = client.post(f"{am.url}/api/v2/alerts", json=[alert])
            assert answer.status_code == 200, answer.text
            body = received.get(timeout=20)
    assert body["version"] == "4"
    assert body["receiver"] == "hook"
    assert body["status"] == "firing"
    assert body["alerts"][0]["labels"]["alertname"] == "PromstackTest"
    assert body["alerts"][0]["annotations"]["summary"] == "routed"


def test_missing_binary_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(promstack, "_PACKAGES", {"no-such-tool": "the-debian-package"})
    with pytest.raises(promstack.PromStackError, match="apt-get install -y the-debian-package"):
        promstack.find_binary("no-such-tool")


def test_an_unscrapable_target_fails_with_its_error(tmp_path: Path) -> None:
    config = {
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [{
            "job_name": "nothing",
            "static_configs": [{"targets": [f"{promstack.HOST}:{promstack.free_port()}"]}],
        }],
    }
    with (
        promstack.prometheus(tmp_path / "prom", config) as prom,
        pytest.raises(promstack.PromStackError, match="connection refused"),
    ):
        promstack.wait_scraped(prom.url, "nothing", timeout=8)


def test_a_process_that_dies_shows_its_output(tmp_path: Path) -> None:
    bad = {"global": {"scrape_interval": "not-a-duration"}}
    with (
        pytest.raises(promstack.PromStackError, match="not-a-duration"),
        promstack.prometheus(tmp_path / "prom", bad),
    ):
        pass


def test_a_port_taken_before_the_bind_is_retried_on_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as squatter:
        squatter.bind((promstack.HOST, 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken, promstack.free_port()])
        monkeypatch.setattr(promstack, "free_port", lambda: next(ports))
        config = {"route": {"receiver": "none"}, "receivers": [{"name": "none"}]}
        with promstack.alertmanager(tmp_path / "am", config) as am:
            assert am.port != taken
            assert httpx.get(f"{am.url}/-/ready", timeout=5).status_code == 200
