"""The files in deploy/ and grafana/ are accepted by the tools that will read them.

Checked with the real tools where there is one: `amtool check-config`, `promtool
check config|rules` and `promtool test rules`, and the receiver config run in a real
Alertmanager, which must call the watchdog's webhook with the bearer token (and page
the on-call directly for alerts about the watchdog itself), and `docker-compose
config` (Debian's 1.29; it needs no engine) resolving the Compose file with the
example .env. No image build (no registry is reachable) and no Grafana: the
Dockerfile and the dashboard are read as data and held to what a sidecar and a
provisioned dashboard need; the dashboard's queries run in test_grafana_queries.
"""

from __future__ import annotations

import json
import queue
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
from pydantic import AliasChoices

from tests import promstack
from watchdog.api.alertmanager import ReceiverSettings
from watchdog.demo import POLICY
from watchdog.keys import new_key
from watchdog.metrics import Metrics
from watchdog.policyfile import load_policy
from watchdog.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
GRAFANA = ROOT / "grafana"
RECEIVER = DEPLOY / "alertmanager" / "watchdog-receiver.yml"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
RULES = DEPLOY / "prometheus" / "watchdog-rules.yml"
RULE_TESTS = DEPLOY / "prometheus" / "watchdog-rules.test.yml"
COMPOSE = DEPLOY / "docker-compose.watchdog.yml"
OVERLAY = DEPLOY / "songnodes.override.yml"
GENERIC = ROOT / "policies" / "compose-generic.yaml"
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


Received = queue.Queue[tuple[str, dict[str, str], dict[str, Any]]]


def _recorder() -> tuple[type[BaseHTTPRequestHandler], Received]:
    """A handler that records each POST (path, headers, JSON body) and answers 200."""
    received: Received = queue.Queue()

    class Recorder(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            received.put((self.path, dict(self.headers), json.loads(self.rfile.read(length))))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    return Recorder, received


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
    hook_handler, hooked = _recorder()
    pager_handler, paged = _recorder()
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


# ------------------------------------------------------------- Docker and Compose


def _compose(path: Path = COMPOSE) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def _compose_service(path: Path = COMPOSE) -> dict[str, Any]:
    service: dict[str, Any] = _compose(path)["services"]["watchdog"]
    return service


def _mounted_policy(service: dict[str, Any], folder: Path) -> Path:
    (policy,) = [v for v in service["volumes"] if v.endswith(":/etc/watchdog/policy.yaml:ro")]
    return (folder / str(policy).split(":")[0]).resolve()


def test_the_compose_file_has_what_a_sidecar_needs() -> None:
    compose = _compose()
    service = _compose_service()
    assert service["restart"] == "unless-stopped"
    assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert (COMPOSE.parent / service["build"]["context"] / "pyproject.toml").exists()
    volumes = service["volumes"]
    assert "/var/run/docker.sock:/var/run/docker.sock" in volumes
    assert _mounted_policy(service, COMPOSE.parent) == GENERIC.resolve()
    assert service["command"][-1] == "/etc/watchdog/policy.yaml"
    (state,) = [v for v in volumes if v.endswith(":/state")]
    assert state.split(":")[0] in compose["volumes"], "the journal lives on a named volume"
    environment = service["environment"]
    assert environment["WATCHDOG_LISTEN"] == "0.0.0.0:9095"
    assert environment["WATCHDOG_STATE"].startswith("/state/")
    assert environment["WATCHDOG_PEOPLE"].startswith("/state/"), "on the volume, written by exec"
    assert environment["WATCHDOG_BACKUP_DIR"].startswith("/state/"), "writable by uid 10001"
    assert environment["WATCHDOG_ORCHESTRATOR"] == "docker"
    assert service["healthcheck"]["test"] == [
        "CMD", "python", "/usr/local/lib/watchdog/healthcheck.py"
    ]
    assert service["user"].split(":")[0] not in ("0", "root")
    assert compose["networks"]["stack"]["external"] is True
    assert compose["networks"]["stack"]["name"].startswith("${STACK_NETWORK:?"), (
        "no stack's network is a sensible default: Compose must ask for it"
    )
    assert _with_defaults(service["ports"][0]) == "127.0.0.1:9095:9095", "loopback only"


def test_the_default_is_the_generic_policy_and_no_database() -> None:
    """Beside a stack without PostgreSQL, nothing of songnodes or of a database is asked for."""
    base = _compose_service()
    environment = base["environment"]
    assert "WATCHDOG_CONFIG_STORE" not in environment
    assert "WATCHDOG_COMPOSE_PROJECT" not in environment, (
        "unset, the daemon guards the sidecar's own project (its labels); "
        "an interpolated empty value would hide that"
    )
    assert not [v for v in base["volumes"] if "backups" in v], "no host directory for backups"
    text = COMPOSE.read_text()
    assert "songnodes.yaml" not in text and "DATABASE_URL" not in text
    generic_targets = {
        name: _with_defaults(str(target["url"]))
        for name, target in yaml.safe_load(GENERIC.read_text())["targets"].items()
    }
    for name in generic_targets:
        url = _with_defaults(environment[f"WATCHDOG_URL_{name.upper()}"])
        assert "127.0.0.1" not in url and "localhost" not in url, (
            f"{name}: on the stack's network 127.0.0.1 is the sidecar itself"
        )
        assert url.startswith(f"http://{name}:"), f"{name} by its service name: {url}"


def test_the_songnodes_overlay_adds_its_policy_store_and_backups() -> None:
    overlay = _compose_service(OVERLAY)
    assert _mounted_policy(overlay, OVERLAY.parent) == POLICY.resolve()
    environment = overlay["environment"]
    assert environment["WATCHDOG_CONFIG_STORE"] == "postgres"
    assert _with_defaults(environment["WATCHDOG_COMPOSE_PROJECT"]) == "songnodes"
    (backups,) = [v for v in overlay["volumes"] if v.endswith(":/backups/postgres")]
    assert _with_defaults(backups) == "/backups/postgres:/backups/postgres"
    assert environment["WATCHDOG_BACKUP_DIR"] == "/backups/postgres"
    songnodes_env = {name for name, _ in _variables(POLICY.read_text())}
    missing = {
        name for name in songnodes_env
        if name.startswith(("WATCHDOG_URL_", "WATCHDOG_ADDR_")) and name not in environment
    }
    assert not missing, f"the overlay leaves these services at 127.0.0.1: {sorted(missing)}"


def _variables(text: str) -> list[tuple[str, str | None]]:
    """(name, default or None) of every `${NAME}`, `${NAME:-default}`, `${NAME:?error}`."""
    return [
        (m.group(1), m.group(3) if m.group(2) == ":-" else None)
        for m in re.finditer(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", text)
    ]


ENV_KEY = re.compile(r"^(?:#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")
#: Read by Compose itself, not by a file or the daemon.
COMPOSE_OWN = {"COMPOSE_PROJECT_NAME"}


def _example_keys() -> dict[str, int]:
    """Each setting .env.example names, set or commented out, with its line index."""
    lines = (DEPLOY / ".env.example").read_text().splitlines()
    return {m.group(1): i for i, line in enumerate(lines) if (m := ENV_KEY.match(line))}


def _daemon_settings() -> set[str]:
    """The environment names the daemon's settings classes and the policies read."""
    names: set[str] = set()
    for cls, prefix in ((Settings, "WATCHDOG_"), (ReceiverSettings, "WATCHDOG_ALERTMANAGER_")):
        for name, field in cls.model_fields.items():
            names.add(f"{prefix}{name.upper()}")
            alias = field.validation_alias
            if isinstance(alias, AliasChoices):
                names.update(str(choice) for choice in alias.choices)
    for policy in (ROOT / "policies").glob("*.yaml"):
        names.update(name for name, _ in _variables(policy.read_text()))
    return names


def test_the_compose_files_and_the_env_example_name_the_same_settings() -> None:
    keys = _example_keys()
    read_by_compose = {
        name for path in (COMPOSE, OVERLAY) for name, _ in _variables(path.read_text())
    }
    missing = read_by_compose - keys.keys()
    assert not missing, f"read by the Compose files, not in .env.example: {sorted(missing)}"
    unread = keys.keys() - read_by_compose - _daemon_settings() - COMPOSE_OWN
    assert not unread, f"in .env.example, read by nothing: {sorted(unread)}"
    # The issue's three: the project, the services' URLs, the stack's name.
    assert {"WATCHDOG_COMPOSE_PROJECT", "WATCHDOG_STACK_NAME", "WATCHDOG_URL_WEB",
            "WATCHDOG_URL_METADATA_ENRICHMENT"} <= keys.keys()
    lines = (DEPLOY / ".env.example").read_text().splitlines()
    for name, index in keys.items():
        block = []
        for line in reversed(lines[:index]):
            if not line.strip():
                break
            block.append(line)
        prose = [line for line in block if line.startswith("#") and not ENV_KEY.match(line)]
        assert prose, f"{name} in .env.example has no comment above it"


def test_the_env_example_sets_no_policy_setting_to_empty() -> None:
    """The policy reads a set-but-empty variable as empty (not its default): comment out."""
    policy_names = {
        name for policy in (ROOT / "policies").glob("*.yaml")
        for name, _ in _variables(policy.read_text())
    }
    lines = (DEPLOY / ".env.example").read_text().splitlines()
    empty = {m.group(1) for line in lines if (m := ENV_KEY.match(line)) and
             not line.startswith("#") and not m.group(2)}
    assert not empty & policy_names, sorted(empty & policy_names)


def _compose_config(tool: str, folder: Path, *files: str) -> subprocess.CompletedProcess[str]:
    argv = [tool]
    for name in files:
        argv += ["-f", str(folder / "deploy" / name)]
    return subprocess.run(
        [*argv, "config"], capture_output=True, text=True, timeout=60, check=False,
        cwd=folder, env={"PATH": "/usr/bin:/bin", "HOME": str(folder)},
    )


def test_docker_compose_reads_base_and_overlay_with_the_example_env(tmp_path: Path) -> None:
    """docker-compose (Debian's 1.29, the Compose tool these machines have) resolves both."""
    compose_tool = shutil.which("docker-compose")
    if compose_tool is None:
        pytest.fail(
            "docker-compose not found: it checks deploy/*.yml as users run them. "
            "Install it with `apt-get install -y docker-compose` (scripts/provision.sh does)"
        )
    for folder in ("deploy", "policies"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns(".env"))
    base, overlay = COMPOSE.name, OVERLAY.name
    missing = _compose_config(compose_tool, tmp_path, base)
    assert missing.returncode != 0 and ".env" in missing.stderr, "no .env, no secrets: refuse"
    example = (DEPLOY / ".env.example").read_text()
    key = new_key()
    (tmp_path / "deploy" / ".env").write_text(
        example.replace("WATCHDOG_ALERTMANAGER_TOKEN=\n", f"WATCHDOG_ALERTMANAGER_TOKEN={key}\n")
    )

    generic = _compose_config(compose_tool, tmp_path, base)
    assert generic.returncode == 0, generic.stderr
    resolved = yaml.safe_load(generic.stdout)["services"]["watchdog"]
    assert resolved["environment"]["WATCHDOG_ALERTMANAGER_TOKEN"] == key
    assert resolved["environment"]["WATCHDOG_URL_WEB"] == "http://web:8000"
    assert "WATCHDOG_CONFIG_STORE" not in resolved["environment"]
    assert "WATCHDOG_DATABASE_URL" not in resolved["environment"]
    assert resolved["volumes"] == [
        "/var/run/docker.sock:/var/run/docker.sock:rw",
        f"{tmp_path}/policies/compose-generic.yaml:/etc/watchdog/policy.yaml:ro",
        "watchdog-state:/state:rw",
    ]
    assert resolved["ports"] == ["127.0.0.1:9095:9095/tcp"]
    assert resolved["restart"] == "unless-stopped"
    assert resolved["healthcheck"]["test"][-1] == "/usr/local/lib/watchdog/healthcheck.py"
    assert yaml.safe_load(generic.stdout)["networks"]["stack"]["name"] == "mystack_default"

    songnodes = _compose_config(compose_tool, tmp_path, base, overlay)
    assert songnodes.returncode == 0, songnodes.stderr
    resolved = yaml.safe_load(songnodes.stdout)["services"]["watchdog"]
    environment = resolved["environment"]
    assert environment["WATCHDOG_CONFIG_STORE"] == "postgres"
    assert environment["WATCHDOG_COMPOSE_PROJECT"] == "songnodes"
    assert environment["WATCHDOG_BACKUP_DIR"] == "/backups/postgres"
    assert environment["WATCHDOG_URL_METADATA_ENRICHMENT"] == "http://metadata-enrichment:8020"
    policies = [v for v in resolved["volumes"] if ":/etc/watchdog/policy.yaml" in v]
    assert policies == [f"{tmp_path}/policies/songnodes.yaml:/etc/watchdog/policy.yaml:ro"]
    assert "/backups/postgres:/backups/postgres:rw" in resolved["volumes"]
    assert resolved["ports"] == ["127.0.0.1:9095:9095/tcp"]

    (tmp_path / "deploy" / ".env").write_text(
        re.sub(r"^STACK_NETWORK=.*\n", "", example, flags=re.M)
    )
    unset = _compose_config(compose_tool, tmp_path, base)
    assert unset.returncode != 0 and "STACK_NETWORK" in unset.stderr, unset.stderr


def _with_defaults(text: str) -> str:
    """Compose's `${VAR:-default}` interpolation with nothing set: the defaults."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", lambda m: m.group(1), text)


def test_no_secret_is_written_in_the_compose_files() -> None:
    for path in (COMPOSE, OVERLAY):
        service = _compose_service(path)
        inline = {k: v for k, v in service["environment"].items() if SECRET.search(k)}
        assert not inline, f"{path.name}: secrets belong in deploy/.env: {sorted(inline)}"
    assert _compose_service()["env_file"] == [".env"]
    example = (DEPLOY / ".env.example").read_text()
    for name in ("WATCHDOG_DATABASE_URL", "WATCHDOG_RABBITMQ_PASSWORD", "WATCHDOG_REDIS_PASSWORD"):
        assert re.search(rf"^# {name}=\S*CHANGE-ME", example, re.M), name
    # The keys the daemon accepts hold no usable value: empty, and how to make one.
    for name in ("WATCHDOG_ALERTMANAGER_TOKEN", "WATCHDOG_READ_TOKEN"):
        assert re.search(rf"^{name}=$", example, re.M), name
    assert example.count("watchdog token new") >= 3
    assert ".env" in (DEPLOY / ".gitignore").read_text().split()


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def test_the_dockerfile_is_slim_non_root_and_health_checked() -> None:
    steps = _dockerfile_instructions()
    froms = [args for kind, args in steps if kind == "FROM"]
    assert froms and all(f.startswith("python:3.11-slim") for f in froms)
    runs = " ".join(args for kind, args in steps if kind == "RUN")
    assert "pip install ." in runs
    (user,) = [args for kind, args in steps if kind == "USER"]
    assert user.split(":")[0] not in ("0", "root")
    assert next(i for i, (kind, _) in enumerate(steps) if kind == "USER") > max(
        i for i, (kind, _) in enumerate(steps) if kind == "RUN"
    ), "nothing runs as root after USER"
    (health,) = [args for kind, args in steps if kind == "HEALTHCHECK"]
    assert "/usr/local/lib/watchdog/healthcheck.py" in health
    env = " ".join(args for kind, args in steps if kind == "ENV")
    assert "WATCHDOG_LISTEN=0.0.0.0:9095" in env
    for kind, args in steps:
        if kind == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"


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
