"""Session-wide fixtures: one real Docker engine (started if none answers) and its images."""

from __future__ import annotations

from collections.abc import Iterator

import docker
import pytest

from tests.dockerengine import build_images, docker_engine


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
