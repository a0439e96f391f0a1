"""The sidecar's Compose files and deploy/.env.example, read as data and by docker-compose.

The base file is the generic sidecar (policies/compose-generic.yaml, no database);
songnodes.override.yml adds the songnodes policy, its PostgreSQL store and backups;
docker-compose.ha.yml is two of the base's sidecar on one PostgreSQL journal.
`.env.example` names exactly the settings the Compose files interpolate and the
daemon reads (its settings classes and the policies' `${...}`), each with a comment.
Debian's docker-compose 1.29 (it needs no engine) resolves the base alone and
base+overlay with a copy of the example as .env, and the HA file
(test_sidecar_ha.py runs it).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices

from tests.integration.test_deploy_configs import (
    COMPOSE,
    COMPOSE_HA,
    DEPLOY,
    ROOT,
    SECRET,
    ha_addresses,
)
from watchdog.api.alertmanager import ReceiverSettings
from watchdog.demo import POLICY
from watchdog.keys import new_key
from watchdog.settings import Settings

OVERLAY = DEPLOY / "songnodes.override.yml"
GENERIC = ROOT / "policies" / "compose-generic.yaml"
#: The only password in docker-compose.ha.yml: a reference to deploy/.env.
HA_PASSWORD = "${WATCHDOG_DB_PASSWORD:?set WATCHDOG_DB_PASSWORD in deploy/.env}"
#: What each HA sidecar sets for itself; everything else is the single sidecar's.
HA_OWN = {"WATCHDOG_STATE", "WATCHDOG_LISTEN", "WATCHDOG_INSTANCE", "WATCHDOG_LEASE_SECONDS"}


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
    assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile",
                                "target": "runtime"}
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
    # The generic policy names no targets (services are found by their labels), so the
    # sidecar is given no URLs to guess at.
    assert "targets" not in yaml.safe_load(GENERIC.read_text())
    assert not [name for name in environment if name.startswith("WATCHDOG_URL_")]


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
        name for path in (COMPOSE, OVERLAY, COMPOSE_HA)
        for name, _ in _variables(path.read_text())
    }
    missing = read_by_compose - keys.keys()
    assert not missing, f"read by the Compose files, not in .env.example: {sorted(missing)}"
    unread = keys.keys() - read_by_compose - _daemon_settings() - COMPOSE_OWN
    assert not unread, f"in .env.example, read by nothing: {sorted(unread)}"
    # The three: the project, the services' URLs (songnodes': the generic policy
    # finds its services by their labels), the stack's name.
    assert {"WATCHDOG_COMPOSE_PROJECT", "WATCHDOG_STACK_NAME",
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
    assert not [k for k in resolved["environment"] if k.startswith("WATCHDOG_URL_")]
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
    assert resolved["build"]["target"] == "runtime", "the lean image: no database client"

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
    assert resolved["build"]["target"] == "postgres", "pg_dump and psql for the backups"
    assert resolved["image"].endswith("-postgres"), resolved["image"]
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
    services = [(path, _compose_service(path)) for path in (COMPOSE, OVERLAY)]
    services += [(COMPOSE_HA, service) for service in _compose(COMPOSE_HA)["services"].values()]
    for path, service in services:
        inline = {k: v for k, v in service["environment"].items() if SECRET.search(k)}
        assert not inline, f"{path.name}: secrets belong in deploy/.env: {sorted(inline)}"
        assert "@" not in service["environment"].get("WATCHDOG_STATE", "").replace(
            f"{HA_PASSWORD}@", ""), f"{path.name}: the journal's password from deploy/.env"
    assert _compose_service()["env_file"] == [".env"]
    example = (DEPLOY / ".env.example").read_text()
    for name in ("WATCHDOG_DATABASE_URL", "WATCHDOG_RABBITMQ_PASSWORD", "WATCHDOG_REDIS_PASSWORD",
                 "WATCHDOG_DB_PASSWORD"):
        assert re.search(rf"^# {name}=\S*CHANGE-ME", example, re.M), name
    # The keys the daemon accepts hold no usable value: empty, and how to make one.
    for name in ("WATCHDOG_ALERTMANAGER_TOKEN", "WATCHDOG_READ_TOKEN"):
        assert re.search(rf"^{name}=$", example, re.M), name
    assert example.count("watchdog token new") >= 3
    assert ".env" in (DEPLOY / ".gitignore").read_text().split()



def test_the_ha_file_is_two_single_sidecars_on_one_postgresql_journal(tmp_path: Path) -> None:
    """Each its own instance name, port, published port and state volume; the same journal
    (password from .env only) and lease; the rest exactly the single sidecar's (hardening,
    healthcheck, policy, socket), so the two files cannot drift apart unseen."""
    single, ha = _compose_service(), _compose(COMPOSE_HA)
    assert list(ha["services"]) == ["watchdog-a", "watchdog-b"]
    same = {k: v for k, v in single.items() if k not in ("environment", "volumes", "ports")}
    journals, instances, ports = set(), set(), set()
    for name, service in ha["services"].items():
        assert {k: v for k, v in service.items()
                if k not in ("environment", "volumes", "ports")} == same, name
        environment = service["environment"]
        assert {k: v for k, v in environment.items() if k not in HA_OWN} == {
            k: v for k, v in single["environment"].items() if k not in HA_OWN}, name
        journals.add((environment["WATCHDOG_STATE"], environment["WATCHDOG_LEASE_SECONDS"]))
        instances.add(environment["WATCHDOG_INSTANCE"])
        port = environment["WATCHDOG_LISTEN"].removeprefix("0.0.0.0:")
        ports.add(port)
        assert [_with_defaults(p) for p in service["ports"]] == [f"127.0.0.1:{port}:{port}"]
        assert service["volumes"][:2] == single["volumes"][:2], "the socket and the policy"
        (state,) = service["volumes"][2:]
        assert state == f"{name}-state:/state" and f"{name}-state" in ha["volumes"]
    ((journal, _),) = journals
    assert journal.startswith(f"postgresql://watchdog:{HA_PASSWORD}@"), journal
    assert _with_defaults(journal.replace(HA_PASSWORD, "pw")) == (
        "postgresql://watchdog:pw@db:5432/watchdog?schema=watchdog")
    assert len(instances) == len(ports) == 2
    assert ha_addresses() == ["watchdog-a:9095", "watchdog-b:9096"]
    assert ha["networks"] == _compose()["networks"]

    # docker-compose 1.29 resolves it with the example's .env, and refuses no password.
    compose_tool = shutil.which("docker-compose")
    assert compose_tool, "apt-get install -y docker-compose (scripts/provision.sh does)"
    for folder in ("deploy", "policies"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns(".env"))
    example = (DEPLOY / ".env.example").read_text()
    (tmp_path / "deploy" / ".env").write_text(example)
    refused = _compose_config(compose_tool, tmp_path, COMPOSE_HA.name)
    assert refused.returncode != 0 and "WATCHDOG_DB_PASSWORD" in refused.stderr
    (tmp_path / "deploy" / ".env").write_text(example.replace(
        "# WATCHDOG_DB_PASSWORD=CHANGE-ME\n", "WATCHDOG_DB_PASSWORD=s3cret\n"))
    resolved = _compose_config(compose_tool, tmp_path, COMPOSE_HA.name)
    assert resolved.returncode == 0, resolved.stderr
    services = yaml.safe_load(resolved.stdout)["services"]
    for name, port in (("watchdog-a", "9095"), ("watchdog-b", "9096")):
        environment = services[name]["environment"]
        assert environment["WATCHDOG_STATE"] == (
            "postgresql://watchdog:s3cret@db:5432/watchdog?schema=watchdog")
        assert environment["WATCHDOG_INSTANCE"] == name
        assert services[name]["ports"] == [f"127.0.0.1:{port}:{port}/tcp"]
