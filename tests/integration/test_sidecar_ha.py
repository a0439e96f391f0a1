"""Two sidecar containers from deploy/docker-compose.ha.yml on one real PostgreSQL journal.

What deploy/README.md ("Two sidecars") tells an operator to do, done here: a role
`watchdog` with a password and USAGE and CREATE on a schema made for it (no CREATE on
the database), the password only in deploy/.env, `up -d` of the HA file. Then exactly
one sidecar says `"role": "leader"` on /healthz while both are Docker-healthy, and a
`docker stop` of the leader hands over cleanly: the other leads with the next fencing
token, the lease log says clean, and no "leader lost" alert is journaled.

Adapted to this machine as test_sidecar_image.py adapts the single sidecar (and with
its helpers and its cached image): host networking in the copy of the Compose file,
the daemons on free loopback ports, the test engine's socket, a 1 s Docker health
interval, and the session's PostgreSQL server (tests/pgserver.py) as the stack's
database, reached at 127.0.0.1. WATCHDOG_LEASE_SECONDS=2 through .env, as documented.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import docker
import httpx
import psycopg
import pytest
import yaml
from psycopg import sql

from tests.dockerengine import run_service, www_folder
from tests.integration.conftest import JOURNAL_DATABASE
from tests.integration.test_sidecar_image import SERVICES, _env_file, _on_host_network
from tests.pgserver import PgServer
from tests.sidecar_image import ROOT, sidecar_image
from watchdog.demo import free_port, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("sidecar_image")]

SIDECARS = ("watchdog-a", "watchdog-b")
#: The role docker-compose.ha.yml connects as (its WATCHDOG_STATE).
ROLE = "watchdog"
LEASE_SECONDS = 2


@dataclass
class Pair:
    """The two Compose-run sidecars and the journal's schema they share."""

    client: docker.DockerClient
    project: str
    urls: dict[str, str]
    admin_dsn: str
    schema: str

    def container(self, name: str) -> Any:
        (found,) = self.client.containers.list(
            all=True, filters={"label": [f"com.docker.compose.project={self.project}",
                                         f"com.docker.compose.service={name}"]})
        return found

    def healthz(self, name: str) -> dict[str, Any]:
        """/healthz of one sidecar, or {} while it does not answer 200."""
        try:
            answer = httpx.get(self.urls[name] + "/healthz", timeout=2)
        except httpx.HTTPError:
            return {}
        body: dict[str, Any] = answer.json() if answer.status_code == 200 else {}
        return body

    def roles(self, *names: str) -> dict[str, dict[str, Any]]:
        return {name: self.healthz(name) for name in names or SIDECARS}

    def docker_health(self, name: str) -> str:
        state = self.container(name).attrs["State"]
        return str(state.get("Health", {}).get("Status", state["Status"]))

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        """A query on the shared journal's schema, as the superuser."""
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
            return conn.execute(query.encode()).fetchall()


def _grant_schema(admin_dsn: str, schema: str, password: str) -> None:
    """deploy/README.md's grants: the role, and USAGE and CREATE on a schema made for it."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(ROLE), sql.Literal(password)))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA {} TO {}").format(
            sql.Identifier(schema), sql.Identifier(ROLE)))


@pytest.fixture(scope="module")
def pair(
    docker_url: str, postgres: PgServer, journal_database: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Pair]:
    image = sidecar_image(docker_url)
    client = docker.DockerClient(base_url=docker_url, timeout=60)
    stack = f"wdha{uuid.uuid4().hex[:8]}"
    schema = f"ha_{stack}"
    admin_dsn = postgres.admin_dsn_for(JOURNAL_DATABASE)
    password = uuid.uuid4().hex
    _grant_schema(admin_dsn, schema, password)
    folder = tmp_path_factory.mktemp(f"ha-{stack}")
    ports = {service: free_port() for service in SERVICES}
    for service in SERVICES:
        run_service(client, project=stack, service=service, port=ports[service],
                    www=www_folder(folder, f"www-{service}"))
    shutil.copytree(ROOT / "policies", folder / "policies")
    deploy = folder / "deploy"
    deploy.mkdir()
    (deploy / "docker-compose.ha.yml").write_text(_on_host_network(
        (ROOT / "deploy" / "docker-compose.ha.yml").read_text()))
    socket = docker_url.removeprefix("unix://")
    (deploy / ".env").write_text(_env_file((ROOT / "deploy" / ".env.example").read_text(), {
        "STACK_NETWORK": "host",
        "DOCKER_GID": str(os.stat(socket).st_gid),
        "WATCHDOG_COMPOSE_PROJECT": stack,
        "WATCHDOG_HEALTH_PATH": "/healthy",
        **{f"WATCHDOG_URL_{s.upper()}": f"http://127.0.0.1:{ports[s]}" for s in SERVICES},
        "WATCHDOG_DB_PASSWORD": password,
        "WATCHDOG_DB_HOST": postgres.host,
        "WATCHDOG_DB_PORT": str(postgres.port),
        "WATCHDOG_DB_NAME": JOURNAL_DATABASE,
        "WATCHDOG_DB_SCHEMA": schema,
        "WATCHDOG_LEASE_SECONDS": str(LEASE_SECONDS),
    }))
    listen = {name: f"127.0.0.1:{free_port()}" for name in SIDECARS}
    override = {"services": {name: {
        "image": image.tag,
        "environment": {"WATCHDOG_LISTEN": listen[name]},
        "volumes": [f"{socket}:/var/run/docker.sock"],
        "healthcheck": {"interval": "1s", "start_period": "30s"},
    } for name in SIDECARS}}
    (deploy / "test.override.yml").write_text(yaml.safe_dump(override))
    project = folder.name
    compose = ["docker-compose", "-p", project, "-f", "deploy/docker-compose.ha.yml",
               "-f", "deploy/test.override.yml"]
    env = {**os.environ, "DOCKER_HOST": docker_url}
    made = Pair(client, project, {n: f"http://{listen[n]}" for n in SIDECARS}, admin_dsn, schema)
    try:
        done = subprocess.run([*compose, "up", "-d", "--no-build"], cwd=folder, env=env,
                              capture_output=True, text=True, timeout=180, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        yield made
    finally:
        subprocess.run([*compose, "down", "-v", "-t", "10"], cwd=folder, env=env,
                       capture_output=True, timeout=120, check=False)
        for service in SERVICES:
            with contextlib.suppress(docker.errors.NotFound):
                client.containers.get(f"{stack}-{service}-1").remove(force=True)
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(schema)))
        client.close()


def _one_leader(pair: Pair, *names: str) -> dict[str, dict[str, Any]]:
    """/healthz of each sidecar named, once every one answers and exactly one leads."""
    seen: dict[str, dict[str, Any]] = {}

    def settled() -> bool:
        seen.clear()
        seen.update(pair.roles(*names))
        roles = sorted(str(h.get("role")) for h in seen.values())
        return roles == sorted(["leader"] + ["follower"] * (len(seen) - 1))

    try:
        wait_for(settled, 90, f"exactly one leader among {names or SIDECARS}")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}: {seen}") from None
    return seen


def test_two_sidecars_one_leader_and_a_clean_hand_over_on_docker_stop(pair: Pair) -> None:
    _one_leader(pair)
    wait_for(lambda: all(pair.docker_health(n) == "healthy" for n in SIDECARS), 90,
             "both sidecars' Docker health (the follower's too)")
    first = _one_leader(pair)
    (leader,) = [n for n, h in first.items() if h["role"] == "leader"]
    (follower,) = [n for n in SIDECARS if n != leader]
    for name, healthz in first.items():
        assert healthz["instance"] == name, healthz
        assert healthz["leader"] == leader, f"{name} names the same leader: {healthz}"
    token = first[leader]["token"]
    assert isinstance(token, int) and first[leader]["since"] is not None, first[leader]

    pair.container(leader).stop(timeout=10)  # `docker stop`: SIGTERM, the lease released
    assert pair.container(leader).attrs["State"]["ExitCode"] == 0
    after = _one_leader(pair, follower)[follower]
    assert after["leader"] == follower and after["token"] == token + 1, after
    ((instance, previous, clean, logged),) = pair.rows(
        "SELECT instance, previous_instance, clean, token FROM leadership_log "
        "ORDER BY id DESC LIMIT 1")
    assert (instance, previous, clean, logged) == (follower, leader, True, token + 1)
    lost = pair.rows("SELECT count(*) FROM alerts WHERE labels LIKE '%WatchdogLeaderLost%'")
    assert lost == [(0,)], "a clean hand-over pages no one"
