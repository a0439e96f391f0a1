"""The migration guard on a real Docker engine and a real PostgreSQL.

A schema-coupled service whose last good image was recorded before a migration
ran is not reverted automatically: the step refuses, names the migration and
both ways out, and the container is left as it is. Without a migration since,
the same revert goes ahead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import psycopg
import pytest

from tests.dockerengine import BROKEN, Projects, run_service, www_folder
from tests.pgserver import PgServer
from watchdog.actions.base import ActionFailed
from watchdog.actions.docker import DockerOrchestrator
from watchdog.actions.http import HttpActions
from watchdog.actions.registry import build_handlers
from watchdog.actions.schemaguard import SchemaGuard
from watchdog.demo import free_port
from watchdog.model import Risk, Step
from watchdog.policyfile import load_policy
from watchdog.store.journal import Journal

POLICY = Path(__file__).resolve().parents[2] / "policies" / "compose-generic.yaml"
REVERT = Step("revert web", "service.revert", Risk.SAFE, (("service", "web"),), False, 60)


@pytest.fixture
def projects(docker_client: docker.DockerClient) -> Iterator[Projects]:
    with Projects(docker_client, "wdguard") as made:
        yield made


def deploy_bad_version(
    client: docker.DockerClient, project: str, folder: Path, port: int, good: Any
) -> Any:
    good.remove(force=True)
    return run_service(
        client, project=project, service="web", port=port, www=folder, image=BROKEN,
        restart="always",
    )


def migrate(server: PgServer, version: str) -> None:
    with psycopg.connect(server.dsn, autocommit=True) as db:
        db.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (%s, clock_timestamp())",
            (version,),
        )


@pytest.mark.asyncio
async def test_a_migration_since_the_last_good_image_blocks_the_automatic_revert(
    docker_client: docker.DockerClient,
    docker_url: str,
    projects: Projects,
    journal: Journal,
    musicdb: PgServer,
    tmp_path: Path,
) -> None:
    project = projects.new()
    folder = www_folder(tmp_path, "web")
    port = free_port()
    good = run_service(docker_client, project=project, service="web", port=port, www=folder)
    factory: Callable[[], docker.DockerClient] = lambda: docker.DockerClient(  # noqa: E731
        base_url=docker_url, timeout=20
    )
    orchestrator = DockerOrchestrator(factory, project, snapshots=journal, health_timeout=20)
    deadline = time.monotonic() + 15
    while not await orchestrator.record_last_good("web"):
        assert time.monotonic() < deadline, "the good container never became recordable"
        time.sleep(0.2)
    time.sleep(0.05)
    migrate(musicdb, "009_split_artist_names")
    bad = deploy_bad_version(docker_client, project, folder, port, good)

    policy = load_policy(str(POLICY), environ={})
    async with httpx.AsyncClient() as client:
        handlers = build_handlers(
            http=HttpActions(policy, client),
            orchestrator=orchestrator,
            reverter=orchestrator,
            config=None,
            protected=[],
            schema_guard=SchemaGuard(musicdb.dsn, journal, {"web"}),
        )
        with pytest.raises(ActionFailed) as refused:
            await handlers["service.revert"](REVERT)
        words = str(refused.value)
        assert "not reverting web automatically" in words
        assert "009_split_artist_names" in words
        assert "(1) revert web together with the database rollback" in words
        assert "(2) keep the schema and fix forward" in words
        left = docker_client.api.inspect_container(bad.id)
        assert left["Image"] == bad.attrs["Image"], "the container is left as it is"

        # Not coupled, or no migration since: the revert goes ahead.
        handlers = build_handlers(
            http=HttpActions(policy, client),
            orchestrator=orchestrator,
            reverter=orchestrator,
            config=None,
            protected=[],
            schema_guard=SchemaGuard(musicdb.dsn, journal, {"another-service"}),
        )
        done = await handlers["service.revert"](REVERT)
        assert done.ok and done.output.startswith("reverted web"), done.output


@pytest.mark.asyncio
async def test_the_guard_passes_when_nothing_ran_since_and_refuses_when_it_cannot_tell(
    journal: Journal, musicdb: PgServer
) -> None:
    migrate(musicdb, "001_old")
    time.sleep(0.05)
    journal.save_snapshot("docker:last_good:web", [{"image": "sha256:good"}], at=time.time())
    guard = SchemaGuard(musicdb.dsn, journal, {"web"})
    assert "no migration applied since web's image was recorded" in await guard.check("web")
    assert await guard.check("other") == ""
    blind = SchemaGuard(musicdb.dsn.replace(f":{musicdb.port}/", f":{free_port()}/"), journal,
                        {"web"})
    with pytest.raises(ActionFailed, match="cannot tell whether a migration ran"):
        await blind.check("web")
    with pytest.raises(ActionFailed, match="no WATCHDOG_DATABASE_URL"):
        await SchemaGuard(None, journal, {"web"}).check("web")
