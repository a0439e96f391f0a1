"""Session-wide fixtures: one real Docker engine (started if none answers) and its images."""

from __future__ import annotations

from collections.abc import Iterator

import docker
import pytest

from tests.dockerengine import build_images, docker_engine
from tests.pgserver import PgServer, postgres_server


@pytest.fixture(scope="session")
def docker_url() -> Iterator[str]:
    """DOCKER_HOST of a working engine with the test images imported."""
    with docker_engine() as url:
        client = docker.DockerClient(base_url=url, timeout=30)
        try:
            build_images(client)
        finally:
            client.close()
        yield url


@pytest.fixture
def docker_client(docker_url: str) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=docker_url, timeout=30)
    yield client
    client.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PgServer]:
    """A real PostgreSQL server (started once, on 127.0.0.1) with an empty musicdb."""
    with postgres_server() as server:
        yield server


@pytest.fixture
def musicdb(postgres: PgServer) -> PgServer:
    """The server with musicdb freshly seeded by tests/pg_schema.py (about 30 ms)."""
    postgres.reset_musicdb()
    return postgres
