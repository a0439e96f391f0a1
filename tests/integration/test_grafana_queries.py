"""Every Grafana panel's query, evaluated by a real Prometheus scraping a real daemon.

The module runs a shortened demo: the sandbox, `watchdog run` with the songnodes
policy (clock compressed tenfold), and a real Prometheus scraping the daemon's
/metrics every second with the shipped rules loaded. One fault (a crashed service)
is injected and rolled back, so the rollback, recovery and incident series hold
real observations. Then each panel query, with Grafana's variables replaced by
concrete durations, must parse and return data.
"""

from __future__ import annotations

import http.client
import math
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests import promstack
from tests.integration.daemon_stage import Stage
from tests.integration.test_deploy_configs import HEALTHCHECK, RULES, dashboard_targets
from watchdog.demo import DaemonProcess, wait_for
from watchdog.sandbox.stack import SandboxStack

pytestmark = pytest.mark.slow

#: Grafana's variables, as concrete durations for a run of well under two minutes.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "5s", "$__range": "10m"}


@dataclass(frozen=True)
class Run:
    """What the module's demo left behind: the Prometheus to ask and the incident."""

    prometheus: str
    incident: dict[str, Any]
    daemon_listen: str


def concrete(expr: str) -> str:
    """A panel query with Grafana's variables replaced; any other `$` is a mistake."""
    for variable in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(variable, GRAFANA_VARIABLES[variable])
    assert "$" not in expr, f"an unreplaced Grafana variable in {expr!r}"
    return expr


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    folder = tmp_path_factory.mktemp("grafana")
    with SandboxStack(folder / "sandbox") as stack:
        daemon = DaemonProcess(stack, folder).start()
        try:
            config = {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [{
                    "job_name": "watchdog",
                    "static_configs": [{"targets": [daemon.listen]}],
                }],
            }
            rules = {"watchdog-rules.yml": RULES.read_text()}
            with promstack.prometheus(folder / "prometheus", config, rules) as prom:
                stage = Stage(folder, stack, daemon)
                stage.wait_for_baseline()
                # Samples from before the fault, so increase() and rate() see it happen.
                promstack.wait_scraped(prom.url, "watchdog")
                time.sleep(2)
                incident = stage.inject_and_follow("crash", service="dlq-manager")
                # The rollback must have reached Prometheus before the panels are asked.
                wait_for(
                    lambda: bool(promstack.query(
                        prom.url,
                        'watchdog_rollback_duration_seconds_count{outcome="succeeded"} >= 1',
                    )),
                    15,
                    "the rollback in Prometheus",
                )
                time.sleep(2)  # two more scrapes: every rate() has its last samples
                yield Run(prom.url, incident, daemon.listen)
        finally:
            daemon.stop()


def test_the_demo_handled_a_rollback(run: Run) -> None:
    assert run.incident["state"] == "resolved", run.incident["timeline"]
    assert run.incident["scenario"] == "service_failure"
    assert [s["status"] for s in run.incident["steps"]] == ["succeeded"]


@pytest.mark.parametrize(
    ("title", "target"),
    dashboard_targets(),
    ids=[f"{title}/{target['refId']}" for title, target in dashboard_targets()],
)
def test_panel_query_parses_and_returns_data(run: Run, title: str, target: dict[str, Any]) -> None:
    result = promstack.query(run.prometheus, concrete(target["expr"]))
    assert result, f"{title}: no data for {concrete(target['expr'])}"
    values = [float(sample["value"][1]) for sample in result]
    assert any(math.isfinite(v) for v in values), f"{title}: only NaN/Inf, a blank panel"


def _values(expr: str, run: Run) -> dict[str, float]:
    """The panel query's result as {legend-ish label text: value}."""
    return {
        ",".join(f"{k}={v}" for k, v in sorted(sample["metric"].items())): float(
            sample["value"][1]
        )
        for sample in promstack.query(run.prometheus, concrete(expr))
    }


def _panel(title: str) -> str:
    """The one query of the panel titled `title`."""
    (expr,) = [str(t["expr"]) for t_title, t in dashboard_targets() if t_title == title]
    return expr


def test_the_rollback_panels_show_the_rollback(run: Run) -> None:
    rollbacks = _values(_panel("Rollbacks in range"), run)
    assert rollbacks["outcome=succeeded"] >= 1
    assert rollbacks["outcome=failed"] == 0
    mean = _values(_panel("Mean time to recover"), run)
    (recovered,) = mean.values()
    assert math.isfinite(recovered) and recovered > 0
    steps = _values(_panel("Plan steps by outcome"), run)
    assert steps["outcome=succeeded"] > 0
    opened = _values(_panel("Incidents opened by severity"), run)
    assert opened["severity=P2"] > 0
    open_now = _values(_panel("Open incidents by severity"), run)
    assert set(open_now) == {"severity=P0", "severity=P1", "severity=P2", "severity=P3"}


def test_the_observed_signal_panels_carry_the_sandbox_values(run: Run) -> None:
    dlq = _values(_panel("DLQ depth"), run)
    assert list(dlq) == [""] and dlq[""] >= 0, "one series: Prometheus drops empty labels"
    breakers = _values(_panel("Circuit breaker state by provider"), run)
    assert "series=spotify" in breakers and set(breakers.values()) <= {0.0, 1.0, 2.0}
    services_down = _values(_panel("Services down"), run)
    assert list(services_down) == [""] and 0 <= services_down[""] <= 9


def test_the_shipped_rules_evaluate_cleanly_against_the_daemon(run: Run) -> None:
    groups = promstack.rule_groups(run.prometheus)
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) == len(re.findall(r"^\s+- alert:", RULES.read_text(), re.M))
    for rule in rules:
        assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
    firing = {a["labels"]["alertname"] for a in promstack.alerts(run.prometheus)}
    assert "WatchdogDown" not in firing and "WatchdogRollbackFailed" not in firing


def test_the_container_healthcheck_passes_against_the_real_daemon(run: Run) -> None:
    done = subprocess.run(
        [sys.executable, str(HEALTHCHECK)],
        env={"WATCHDOG_LISTEN": run.daemon_listen, "PATH": "/usr/bin"},
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert done.returncode == 0, done.stderr


def test_a_bad_query_fails_with_prometheus_text(run: Run) -> None:
    with pytest.raises(promstack.PromStackError, match="parse error"):
        promstack.query(run.prometheus, concrete("sum by (le (watchdog_paused)"))



def test_a_scrape_connection_idle_past_uvicorns_default_keep_alive_is_still_served(
    run: Run,
) -> None:
    """A client reusing a keep-alive connection the server has just closed gets an error
    for a request never read (Go's transport, Alertmanager's and Prometheus's, does not
    resend a POST). The daemon keeps idle connections longer than its clients do
    (KEEP_ALIVE_SECONDS), so one idle for 6 s (uvicorn's default closes at 5) still works."""
    host, port = run.daemon_listen.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        answers = []
        for pause in (0.0, 6.0):
            time.sleep(pause)
            conn.request("GET", "/healthz")  # on the same socket: nothing closed it
            reply = conn.getresponse()
            reply.read()
            answers.append(reply.status)
        assert conn.sock is not None  # still the first connection, never reopened
    finally:
        conn.close()
    assert answers == [200, 200], answers
