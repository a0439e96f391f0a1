"""The Alertmanager snippet, merged into a stack's configuration, takes nothing from it.

`deploy/alertmanager/watchdog-receiver.yml` is merged here exactly as
deploy/README.md says (`merged` below is that procedure, step by step) into a
configuration shaped like the stack's own (root receiver, grouping by alertname,
severity and component, a 5 min group_interval, a child route for critical alerts):

- `amtool check-config` accepts the merged file, and `amtool config routes test`
  sends every alert the policy's `alert` signals map (policies/songnodes.yaml, read
  through the daemon's own matcher) to the watchdog and no other alert, while the
  stack's receiver still gets every one of them;
- with the real Prometheus firing the stack's breaker and DLQ rules (their `for`
  shortened) and an alert the policy does not map, both local webhook receivers get
  theirs: the watchdog only the mapped ones, one group per provider, a second
  provider's alert and a resolution without waiting out the stack's 5 min
  group_interval; the stack's receiver everything. The DLQ gauge is exported here
  only to show the route; the stack itself never sets it (deploy/README.md).
- The page about the watchdog itself names every alert of its group, not only the
  annotations they happen to share.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import yaml

from tests import promstack
from watchdog.demo import POLICY
from watchdog.engine.leadership import LEADER_LOST_ALERT
from watchdog.policy.alerts import matches_labels
from watchdog.policy.schema import AlertSignal
from watchdog.policyfile import load_policy

ROOT = Path(__file__).resolve().parents[2]
SNIPPET = ROOT / "deploy" / "alertmanager" / "watchdog-receiver.yml"
#: The receiver the snippet names for "your root receiver": replaced when merging.
PLACEHOLDER = "stack-default"
#: Long enough for any flush of the watchdog's route, far below the stack's 5 min interval.
WAIT = 40.0

RULES = """
groups:
  - name: songnodes-circuit-breakers
    rules:
      - alert: CircuitBreakerOpen
        expr: api_gateway_circuit_breaker_state == 2
        for: 1s
        labels: {severity: warning, component: api_gateway, category: resilience}
        annotations: {summary: "Circuit breaker {{ $labels.provider }} OPEN"}
      - alert: CircuitBreakerOpen
        expr: api_gateway_circuit_breaker_state > 0
        for: 1s
        labels: {severity: critical, component: api_gateway, category: resilience}
        annotations: {summary: "Circuit breaker {{ $labels.provider }} not CLOSED"}
  - name: songnodes-dlq
    rules:
      - alert: DLQDepthCritical
        expr: dlq_messages_total > 500
        for: 1s
        labels: {severity: critical, component: dlq, category: reliability}
        annotations: {summary: "DLQ holds {{ $value }} messages"}
      - alert: ServiceDown
        expr: songnodes_service_up == 0
        for: 1s
        # The stack's own is `up == 0`, whose `job` is the service's scrape job.
        labels: {severity: critical, component: "{{ $labels.service }}", category: reliability,
                 job: "{{ $labels.service }}"}
        annotations: {summary: "{{ $labels.service }} is down"}
"""


def _stack_config(stack_hook: str) -> dict[str, Any]:
    """The stack's own Alertmanager shape (TARGET-STACK.md), its group_wait shortened."""
    return {
        "route": {
            "receiver": "stack",
            "group_by": ["alertname", "severity", "component"],
            "group_wait": "1s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": [{
                "receiver": "stack",
                "matchers": ['severity="critical"'],
                "group_wait": "1s",
                "repeat_interval": "30m",
            }],
        },
        "receivers": [{"name": "stack", "webhook_configs": [
            {"url": f"{stack_hook}/stack", "send_resolved": True},
        ]}],
    }


def merged(stack: dict[str, Any], snippet: dict[str, Any]) -> dict[str, Any]:
    """deploy/README.md's procedure: the snippet's routes go first under the stack's root
    route, the stack's former routes move one level down into a child that keeps its
    root receiver (so what no other child takes still reaches it), the snippet's
    receivers and inhibit rules are added."""
    config: dict[str, Any] = json.loads(json.dumps(stack))
    root = config["route"]
    *ours, former = snippet["route"]["routes"]
    assert former["receiver"] == PLACEHOLDER, "the snippet's last route is the stack's tree"
    assert not former.get("matchers") and not former.get("routes")
    root["routes"] = [*json.loads(json.dumps(ours)),
                      {"receiver": root["receiver"], "routes": root.get("routes", [])}]
    config["receivers"] += [r for r in snippet["receivers"] if r["name"] != PLACEHOLDER]
    config["inhibit_rules"] = [*config.get("inhibit_rules", []),
                               *snippet.get("inhibit_rules", [])]
    return config


def _localised(config: dict[str, Any], folder: Path, hook: str, pager: str) -> dict[str, Any]:
    """The merged file pointed at local receivers and secret files; timings unchanged."""
    config = dict(json.loads(json.dumps(config)))
    config.setdefault("global", {})["pagerduty_url"] = f"{pager}/v2/enqueue"
    token = folder / "watchdog-token"
    token.write_text("merge-test-token\n")
    key = folder / "pagerduty-routing-key"
    key.write_text("0123456789abcdef0123456789abcdef")
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = webhook["url"].replace("http://watchdog:9095", hook)
            if "http_config" in webhook:
                webhook["http_config"]["authorization"]["credentials_file"] = str(token)
        for pagerduty in receiver.get("pagerduty_configs", []):
            pagerduty["routing_key_file"] = str(key)
    return config


def _amtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("amtool")
    if tool is None:
        pytest.fail("amtool not found: apt-get install -y prometheus-alertmanager")
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=30,
                          check=False)


def _write(folder: Path, config: dict[str, Any]) -> Path:
    path = folder / "merged.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _samples() -> list[dict[str, str]]:
    """One alert per `alert` signal of the policy (its name, labels and series label),
    the stack's alerts (TARGET-STACK.md) and one of the watchdog's own."""
    samples: list[dict[str, str]] = []
    for signal in load_policy(POLICY).signals:
        # The watchdog journals its own WatchdogLeaderLost (a take-over): none comes from
        # Alertmanager, so no route is owed for it.
        if isinstance(signal, AlertSignal) and signal.match.get("alertname") != LEADER_LOST_ALERT:
            name = signal.alertname or next(iter(signal.alertnames), f"Some{signal.name}")
            labels = {"alertname": name,
                      "severity": "critical", **signal.match}
            if signal.by:
                labels.setdefault(signal.by, "spotify")
            samples.append(labels)
    for name, severity in [
        ("CircuitBreakerOpen", "warning"), ("CircuitBreakerFlapping", "critical"),
        ("DLQDepthHigh", "warning"), ("EnrichmentAPIHighErrorRate", "warning"),
        ("SpotifyAPIDown", "critical"), ("EnrichmentConfigReloadFailed", "critical"),
        ("ServiceDown", "critical"), ("EnrichmentDLQBacklog", "warning"),
        ("WaterfallProviderFailure", "critical"), ("EnrichmentRateLimitViolations", "critical"),
        ("EnrichmentAPICompleteFail", "critical"), ("HighRetryRate", "warning"),
    ]:
        samples.append({"alertname": name, "severity": severity, "provider": "spotify",
                        "category": "reliability", "component": "enrichment"})
    samples.append({"alertname": "ServiceDown", "severity": "critical", "job": "rest-api",
                    "category": "reliability"})  # as the stack's `up == 0` labels it
    samples.append({"alertname": "WatchdogOutboxBacklog", "severity": "warning",
                    "component": "watchdog"})
    return samples


def _mapped(labels: dict[str, str]) -> bool:
    """Whether any `alert` signal of the policy counts this alert (the daemon's matcher)."""
    return any(isinstance(s, AlertSignal) and matches_labels(s, labels)
               for s in load_policy(POLICY).signals)


def test_the_merged_file_routes_what_the_policy_maps_and_keeps_the_stack_whole(
    tmp_path: Path,
) -> None:
    config = merged(_stack_config("http://stack.invalid"), yaml.safe_load(SNIPPET.read_text()))
    path = _write(tmp_path, config)
    checked = _amtool("check-config", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    mapped = 0
    for labels in _samples():
        pairs = [f"{k}={v}" for k, v in labels.items()]
        done = _amtool("config", "routes", "test", f"--config.file={path}", *pairs)
        assert done.returncode == 0, done.stdout + done.stderr
        receivers = done.stdout.strip().split(",")
        assert "stack" in receivers, f"{labels} no longer reaches the stack: {receivers}"
        wanted = _mapped(labels) and labels.get("component") != "watchdog"
        mapped += wanted
        assert ("watchdog" in receivers) == wanted, (labels, receivers)
        assert receivers.count("watchdog") <= 1, f"{labels} delivered twice: {receivers}"
        own = labels.get("component") == "watchdog"
        assert ("watchdog-itself" in receivers) == own, (labels, receivers)
    assert mapped >= 6, "every alert signal of the policy was sampled"



class _Exporter(BaseHTTPRequestHandler):
    """Serves `values` (series text to value) as Prometheus text; the test changes them."""

    values: ClassVar[dict[str, float]] = {}
    lock: ClassVar[threading.Lock] = threading.Lock()

    def do_GET(self) -> None:
        with self.lock:
            text = "".join(f"{series} {value}\n" for series, value in self.values.items())
        body = text.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def _key(alert: dict[str, Any]) -> tuple[str, str, str, str]:
    labels = alert["labels"]
    return (labels["alertname"], labels["severity"], labels.get("provider", ""), alert["status"])


class _Log:
    """Every alert a receiver got, by path, with each body's group labels."""

    def __init__(self, received: promstack.Received) -> None:
        self.received = received
        self.alerts: dict[str, set[tuple[str, str, str, str]]] = {}
        self.groups: list[dict[str, str]] = []

    def until(self, path: str, check: Callable[[set[tuple[str, str, str, str]]], bool],
              what: str) -> set[tuple[str, str, str, str]]:
        deadline = time.monotonic() + WAIT
        while not check(self.alerts.get(path, set())):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{what}: {path} has only {self.alerts.get(path)}")
            try:
                got, _, body = self.received.get(timeout=left)
            except queue.Empty:
                continue
            self.alerts.setdefault(got, set()).update(_key(a) for a in body["alerts"])
            if got == "/api/alertmanager":
                self.groups.append(body["groupLabels"])
        return self.alerts[path]


@pytest.fixture
def exporter() -> Iterator[str]:
    _Exporter.values = {
        'api_gateway_circuit_breaker_state{provider="spotify"}': 2,
        'api_gateway_circuit_breaker_state{provider="musicbrainz"}': 0,
        "dlq_messages_total": 600,
        'songnodes_service_up{service="rest-api"}': 0,
    }
    with promstack.local_server(_Exporter) as url:
        yield url


def _set(series: str, value: float) -> None:
    with _Exporter.lock:
        _Exporter.values[series] = value


@pytest.mark.slow
def test_real_alerts_reach_both_the_stack_and_the_watchdog(
    tmp_path: Path, exporter: str
) -> None:
    hook_handler, hooked = promstack.webhook_recorder()
    pager_handler, paged = promstack.webhook_recorder()
    with (
        promstack.local_server(hook_handler) as hook,
        promstack.local_server(pager_handler) as pager,
    ):
        config = _localised(
            merged(_stack_config(hook), yaml.safe_load(SNIPPET.read_text())),
            tmp_path, hook, pager,
        )
        checked = _amtool("check-config", str(_write(tmp_path, config)))
        assert checked.returncode == 0, checked.stdout + checked.stderr
        with promstack.alertmanager(tmp_path / "am", config) as am:
            prom_config = {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "alerting": {"alertmanagers": [
                    {"static_configs": [{"targets": [am.url.removeprefix("http://")]}]}
                ]},
                "scrape_configs": [{"job_name": "songnodes", "static_configs": [
                    {"targets": [exporter.removeprefix("http://")]}]}],
            }
            with promstack.prometheus(tmp_path / "prom", prom_config, {"rules.yml": RULES}):
                log = _Log(hooked)
                first = {
                    ("CircuitBreakerOpen", "warning", "spotify", "firing"),
                    ("CircuitBreakerOpen", "critical", "spotify", "firing"),
                    ("DLQDepthCritical", "critical", "", "firing"),
                }
                log.until("/api/alertmanager", first.issubset, "the mapped alerts")
                stack = log.until(
                    "/stack", (first | {("ServiceDown", "critical", "", "firing")}).issubset,
                    "every alert at the stack's receiver",
                )
                # A second provider opens, then the first closes: both reach the watchdog
                # in its own groups, long before the stack's 5 min group_interval.
                _set('api_gateway_circuit_breaker_state{provider="musicbrainz"}', 2)
                log.until("/api/alertmanager",
                          lambda got: ("CircuitBreakerOpen", "critical", "musicbrainz",
                                       "firing") in got, "the second provider's alert")
                _set('api_gateway_circuit_breaker_state{provider="spotify"}', 0)
                watchdog = log.until(
                    "/api/alertmanager",
                    lambda got: ("CircuitBreakerOpen", "critical", "spotify", "resolved") in got,
                    "the first provider's resolution",
                )
                own = [{"labels": {"alertname": "WatchdogOutboxBacklog", "severity": "critical",
                                   "component": "watchdog", "channel": channel},
                        "annotations": {"summary": f"pages to {channel} undelivered"},
                        "startsAt": datetime.now(UTC).isoformat()}
                       for channel in ("slack", "opsgenie")]
                answer = httpx.post(f"{am.url}/api/v2/alerts", json=own, timeout=10)
                assert answer.status_code == 200, answer.text
                _, _, page = paged.get(timeout=WAIT)
    assert {name for name, *_ in watchdog} == {"CircuitBreakerOpen", "DLQDepthCritical",
                                               "ServiceDown"}
    assert {name for name, *_ in stack} >= {"CircuitBreakerOpen", "DLQDepthCritical",
                                            "ServiceDown"}
    assert all("alertname" in group for group in log.groups), log.groups
    breaker_groups = [g for g in log.groups if g["alertname"] == "CircuitBreakerOpen"]
    assert {g["provider"] for g in breaker_groups} == {"spotify", "musicbrainz"}, log.groups
    summary = page["payload"]["summary"]
    assert "pages to slack undelivered" in summary and "pages to opsgenie" in summary, summary
