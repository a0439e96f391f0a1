"""The files in deploy/ and grafana/ are accepted by the tools that will read them.

Checked with the real tools where there is one: `amtool check-config`, `promtool
check config|rules` and `promtool test rules`, and the receiver config run in a real
Alertmanager, which must call the watchdog's webhook with the bearer token (and page
the on-call directly for alerts about the watchdog itself); their `.ha.yml` variants
for two sidecars (docker-compose.ha.yml) differ from them only in naming both. The
Compose files and .env.example are tested in test_deploy_compose.py. No image build (no registry is
reachable) and no Grafana: the Dockerfile and the dashboard are read as data and held
to what a sidecar and a provisioned dashboard need; the dashboard's queries run in
test_grafana_queries.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests import promstack
from tests.sidecar_image import context_files
from watchdog.demo import POLICY
from watchdog.metrics import Metrics
from watchdog.policyfile import load_policy

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
GRAFANA = ROOT / "grafana"
RECEIVER = DEPLOY / "alertmanager" / "watchdog-receiver.yml"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
#: Two sidecars on one PostgreSQL journal: the Compose file and what reaches both.
COMPOSE_HA = DEPLOY / "docker-compose.ha.yml"
RECEIVER_HA = DEPLOY / "alertmanager" / "watchdog-receiver.ha.yml"
PROMETHEUS_HA = DEPLOY / "prometheus" / "prometheus.ha.yml"
RULES = DEPLOY / "prometheus" / "watchdog-rules.yml"
RULE_TESTS = DEPLOY / "prometheus" / "watchdog-rules.test.yml"
COMPOSE = DEPLOY / "docker-compose.watchdog.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
HEALTHCHECK = DEPLOY / "healthcheck.py"
DASHBOARD = GRAFANA / "dashboards" / "watchdog.json"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "watchdog.yml"
#: Settings whose values are secrets: they may come only from env_file / the environment.
SECRET = re.compile(r"PASSWORD|TOKEN|_KEY|DATABASE_URL|DSN|WEBHOOK_URL", re.IGNORECASE)


def _tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found: apt-get install -y {package} (scripts/provision.sh)")
    return found


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


# ------------------------------------------------------------------ Alertmanager


def test_amtool_accepts_the_receiver_config() -> None:
    done = _run(_tool("amtool", "prometheus-alertmanager"), "check-config", str(RECEIVER))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_the_receiver_sends_a_bearer_token_and_keeps_it_out_of_the_url() -> None:
    config = yaml.safe_load(RECEIVER.read_text())
    (hook,) = next(r for r in config["receivers"] if r["name"] == "watchdog")["webhook_configs"]
    assert hook["url"] == "http://watchdog:9095/api/alertmanager"
    auth = hook["http_config"]["authorization"]
    assert auth["type"] == "Bearer"
    assert "credentials_file" in auth and "credentials" not in auth, "token only from a file"
    assert "basic_auth" not in hook["http_config"], "Alertmanager allows only one of them"
    assert hook.get("send_resolved", True) is True, "resolved alerts clear findings"
    assert config["route"]["receiver"] != "watchdog", "a sub-route: see test_alertmanager_merge"



def _localised(config: dict[str, Any], folder: Path, hook: str, pager: str) -> dict[str, Any]:
    """The shipped config pointed at local receivers, with its secret files and short timings.

    Only addresses, file paths and timings change; routes, matchers, auth types and
    the receivers' shape are the shipped ones.
    """
    config = json.loads(json.dumps(config))
    config.setdefault("global", {})["pagerduty_url"] = f"{pager}/v2/enqueue"
    for route in [config["route"], *config["route"].get("routes", [])]:
        route.update(group_wait="100ms", group_interval="1s")
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = webhook["url"].replace("http://watchdog:9095", hook)
            auth = webhook["http_config"]["authorization"]
            token_file = folder / "watchdog-token"
            token_file.write_text("sekret-bearer-token\n")
            auth["credentials_file"] = str(token_file)
        for pagerduty in receiver.get("pagerduty_configs", []):
            pagerduty["url"] = f"{pager}/v2/enqueue"
            key_file = folder / "pagerduty-routing-key"
            key_file.write_text("0123456789abcdef0123456789abcdef")
            pagerduty["routing_key_file"] = str(key_file)
    return config


def test_a_real_alertmanager_routes_with_the_shipped_receiver(tmp_path: Path) -> None:
    shipped = yaml.safe_load(RECEIVER.read_text())
    hook_handler, hooked = promstack.webhook_recorder()
    pager_handler, paged = promstack.webhook_recorder()
    with (
        promstack.local_server(hook_handler) as hook_url,
        promstack.local_server(pager_handler) as pager_url,
    ):
        config = _localised(shipped, tmp_path, hook_url, pager_url)
        with promstack.alertmanager(tmp_path / "am", config) as am:
            now = datetime.now(UTC).isoformat()
            stack_alert = {
                "labels": {"alertname": "DLQDepthCritical", "severity": "critical",
                           "component": "dlq", "category": "queue"},
                "annotations": {"summary": "DLQ above 500"},
                "startsAt": now,
            }
            own_alert = {
                "labels": {"alertname": "WatchdogOutboxBacklog", "severity": "critical",
                           "component": "watchdog", "channel": "pagerduty"},
                "annotations": {"summary": "pages undelivered"},
                "startsAt": now,
            }
            with httpx.Client(trust_env=False) as client:
                answer = client.post(f"{am.url}/api/v2/alerts", json=[stack_alert, own_alert])
            assert answer.status_code == 200, answer.text
            path, headers, body = hooked.get(timeout=20)
            pager_path, _, page = paged.get(timeout=20)
    assert path == "/api/alertmanager"
    assert headers["Authorization"] == "Bearer sekret-bearer-token"
    assert "sekret" not in path
    assert body["version"] == "4" and body["receiver"] == "watchdog"
    assert [a["labels"]["alertname"] for a in body["alerts"]] == ["DLQDepthCritical"]
    assert pager_path == "/v2/enqueue"
    assert page["routing_key"] == "0123456789abcdef0123456789abcdef"
    assert page["event_action"] == "trigger"
    assert page["payload"]["severity"] == "critical"
    assert "WatchdogOutboxBacklog" in page["payload"]["summary"]
    assert hooked.empty(), "the watchdog's own alert must not go to the watchdog"


def ha_addresses() -> list[str]:
    """name:port of each sidecar of docker-compose.ha.yml on the stack's network."""
    services = yaml.safe_load(COMPOSE_HA.read_text())["services"]
    return [f"{name}:{service['environment']['WATCHDOG_LISTEN'].rpartition(':')[2]}"
            for name, service in services.items()]


def test_the_ha_receiver_sends_to_both_sidecars_and_is_otherwise_the_single_one() -> None:
    """Both webhooks, each as the single one (token from the file); nothing else differs,
    so the routes test_alertmanager_merge checks against the policy hold for it too."""
    done = _run(_tool("amtool", "prometheus-alertmanager"), "check-config", str(RECEIVER_HA))
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr
    single, ha = yaml.safe_load(RECEIVER.read_text()), yaml.safe_load(RECEIVER_HA.read_text())
    ours = next(r for r in ha["receivers"] if r["name"] == "watchdog")
    (one,) = next(r for r in single["receivers"] if r["name"] == "watchdog")["webhook_configs"]
    hooks = ours["webhook_configs"]
    assert [h["url"] for h in hooks] == [f"http://{a}/api/alertmanager" for a in ha_addresses()]
    assert len(hooks) == 2
    for hook in hooks:
        assert {**hook, "url": one["url"]} == one, "the same token file and settings"
    ours["webhook_configs"] = [one]
    assert ha == single
    assert "credentials:" not in RECEIVER_HA.read_text(), "the token only from a file"


# -------------------------------------------------------------------- Prometheus


def test_promtool_accepts_the_scrape_config_and_the_rules() -> None:
    promtool = _tool("promtool", "prometheus")
    config = _run(promtool, "check", "config", str(PROMETHEUS))
    assert config.returncode == 0, config.stdout + config.stderr
    assert "1 rule files found" in config.stdout
    rules = _run(promtool, "check", "rules", str(RULES))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    scrape = yaml.safe_load(PROMETHEUS.read_text())["scrape_configs"]
    (job,) = [j for j in scrape if j["job_name"] == "watchdog"]
    assert job["static_configs"][0]["targets"] == ["watchdog:9095"]
    assert job.get("metrics_path", "/metrics") == "/metrics"


def test_prometheus_scrapes_both_ha_sidecars() -> None:
    done = _run(_tool("promtool", "prometheus"), "check", "config", str(PROMETHEUS_HA))
    assert done.returncode == 0, done.stdout + done.stderr
    single, ha = yaml.safe_load(PROMETHEUS.read_text()), yaml.safe_load(PROMETHEUS_HA.read_text())
    (job,) = [j for j in ha["scrape_configs"] if j["job_name"] == "watchdog"]
    (static,) = job["static_configs"]
    assert static["targets"] == ha_addresses()
    static["targets"] = ["watchdog:9095"]
    assert ha == single, "one job, two targets: each rule judges each instance"


def test_the_rules_pass_their_unit_tests() -> None:
    done = _run(_tool("promtool", "prometheus"), "test", "rules", str(RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_rule_is_about_the_watchdog_and_routed_away_from_it() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    names = {rule["alert"] for rule in rules}
    assert {"WatchdogDown", "WatchdogPaused", "WatchdogOutboxBacklog",
            "WatchdogApprovalsPending", "WatchdogRollbackFailed"} <= names
    for rule in rules:
        assert rule["labels"]["component"] == "watchdog", rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        unknown = _watchdog_metrics(rule["expr"]) - _defined_metric_names()
        assert not unknown, f"{rule['alert']} uses metrics not in watchdog/metrics.py: {unknown}"


# ------------------------------------------------------------- Docker
# The Compose files and .env.example: test_deploy_compose.py.


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def test_the_dockerfile_is_pinned_locked_non_root_and_health_checked() -> None:
    """Read as data; test_sidecar_image.py builds and runs it."""
    steps = _dockerfile_instructions()
    sent = set(context_files())
    (base,) = [args for kind, args in steps if kind == "ARG" and args.startswith("BASE_IMAGE=")]
    assert re.fullmatch(r"BASE_IMAGE=python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", base)
    froms = [args for kind, args in steps if kind == "FROM"]
    assert [f.split()[0] for f in froms if "${BASE_IMAGE}" in f] == ["${BASE_IMAGE}"] * 2
    runs = " ".join(args for kind, args in steps if kind == "RUN")
    assert "--require-hashes --no-deps -r requirements/runtime.lock" in runs
    assert "postgresql-client" in runs
    stages: dict[str, list[tuple[str, str]]] = {}
    for kind, args in steps:
        if kind == "FROM":
            stages[args.split()[-1]] = []
        elif stages:
            stages[list(stages)[-1]].append((kind, args))
    assert list(stages)[-1] == "default" and stages["default"] == [], "the lean image last"
    assert "postgresql-client" not in str(stages["runtime"])
    for name in ("runtime", "postgres"):
        users = [args for kind, args in stages[name] if kind == "USER"]
        assert users[-1].split(":")[0] not in ("0", "root"), name
        assert max(i for i, (kind, _) in enumerate(stages[name]) if kind == "USER") > max(
            i for i, (kind, _) in enumerate(stages[name]) if kind == "RUN"
        ), f"{name}: nothing runs as root after the last USER"
    (health,) = [args for kind, args in steps if kind == "HEALTHCHECK"]
    assert "/usr/local/lib/watchdog/healthcheck.py" in health
    env = " ".join(args for kind, args in steps if kind == "ENV")
    assert "WATCHDOG_LISTEN=0.0.0.0:9095" in env
    for kind, args in steps:
        if kind == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                folder = source.rstrip("/") + "/"
                assert source in sent or any(f.startswith(folder) for f in sent), (
                    f"COPY {source}: left out of the build context by .dockerignore")


def test_the_healthcheck_script_judges_healthz(tmp_path: Path) -> None:
    answers = {"/healthz": (200, {"status": "ok"})}

    class Healthz(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code, body = answers[self.path]
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    with promstack.local_server(Healthz) as url:
        port = url.rpartition(":")[2]
        assert _healthcheck(f"0.0.0.0:{port}").returncode == 0
        answers["/healthz"] = (503, {"status": "stalled"})
        stalled = _healthcheck(f"127.0.0.1:{port}")
        assert stalled.returncode == 1 and "HTTP 503" in stalled.stderr
    refused = _healthcheck(f"127.0.0.1:{promstack.free_port()}")
    assert refused.returncode == 1 and "refused" in refused.stderr.lower()
    bad = _healthcheck("9095")
    assert bad.returncode == 1 and "host:port" in bad.stderr


def _healthcheck(listen: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK)], env={"WATCHDOG_LISTEN": listen, "PATH": "/usr/bin"},
        capture_output=True, text=True, timeout=30, check=False,
    )


# ------------------------------------------------------------------------ Grafana


def _defined_metric_names() -> set[str]:
    """Every sample name watchdog/metrics.py defines (with _total, _bucket, _sum, _count)."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    return {
        family.name + suffix
        for family in Metrics().registry.collect()
        for suffix in suffixes.get(family.type, ("",))
    }


def _watchdog_metrics(expr: str) -> set[str]:
    return set(re.findall(r"\bwatchdog_[a-z0-9_]+\b", expr))


def dashboard_targets() -> list[tuple[str, dict[str, Any]]]:
    """(panel title, target) for every query of every panel of the dashboard."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target)
        for panel in dashboard["panels"]
        if panel["type"] != "row"
        for target in panel.get("targets", [])
    ]


def test_the_dashboard_is_well_formed_and_on_the_provisioned_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard["uid"] and dashboard["title"]
    (datasource,) = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    assert datasource["type"] == "prometheus"
    uid = datasource["uid"]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in panels:
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid, panel["title"]
            assert target["expr"].strip() and target["refId"], panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
    titles = " | ".join(p["title"].lower() for p in panels)
    for subject in ("rollbacks by outcome", "time to recover", "open incidents by severity",
                    "pending approvals", "pages by outcome", "probe errors", "probe duration",
                    "dlq depth", "error rate", "open circuit breakers"):
        assert subject in titles, f"no panel for {subject!r}"
    (provider,) = yaml.safe_load(DASHBOARD_PROVIDERS.read_text())["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]


def test_the_dashboard_uses_only_defined_metrics_and_policy_signals() -> None:
    defined = _defined_metric_names()
    signals = {signal.name for signal in load_policy(POLICY).signals}
    for title, target in dashboard_targets():
        used = _watchdog_metrics(target["expr"])
        assert used, f"{title}: no watchdog metric in {target['expr']!r}"
        assert used <= defined, f"{title}: not in watchdog/metrics.py: {used - defined}"
        for signal in re.findall(r'signal="([^"]+)"', target["expr"]):
            assert signal in signals, f"{title}: no signal {signal!r} in songnodes.yaml"
