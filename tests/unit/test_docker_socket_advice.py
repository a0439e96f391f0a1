"""A Docker socket that refuses us says which group to run with (issue 14: a wrong
DOCKER_GID read as "Docker engine unreachable", a P0 with no hint at the cause).

A real unix socket, owned by a group this process is not in; the advice reads its
metadata, as the sidecar does at the moment the engine refuses it."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from watchdog.dockersocket import permission_advice, socket_path
from watchdog.policy.schema import DockerSignal
from watchdog.probes.docker import DockerProbe

FOREIGN_GID = 4242


@pytest.fixture
def foreign_socket(tmp_path: Path) -> Iterator[Path]:
    """A listening unix socket in group FOREIGN_GID, mode 660 (as dockerd makes it)."""
    path = tmp_path / "docker.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    try:
        os.chmod(path, 0o660)
        if FOREIGN_GID not in os.getgroups():
            os.chown(path, -1, FOREIGN_GID)  # root in CI; a user may only pick its own groups
        yield path
    finally:
        server.close()


def test_a_refusal_names_the_socket_group_and_the_setting(foreign_socket: Path) -> None:
    gid = os.stat(foreign_socket).st_gid
    refused = PermissionError(13, "Permission denied")
    advice = permission_advice(refused, str(foreign_socket))
    assert advice.startswith(f"; set DOCKER_GID={gid} in deploy/.env"), advice
    assert f"{foreign_socket} belongs to group {gid} (srw-rw----)" in advice, advice


def test_other_errors_get_no_advice(foreign_socket: Path) -> None:
    assert permission_advice(ConnectionRefusedError(111, "Connection refused"),
                             str(foreign_socket)) == ""


def test_docker_host_names_the_socket() -> None:
    assert socket_path({}) == "/var/run/docker.sock"
    assert socket_path({"DOCKER_HOST": "unix:///run/user/1000/docker.sock"}) == (
        "/run/user/1000/docker.sock")
    assert socket_path({"DOCKER_HOST": "tcp://127.0.0.1:2375"}) is None


def test_the_probe_reports_the_group_when_the_socket_refuses_it(
    foreign_socket: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{foreign_socket}")

    def refused() -> object:  # what docker.DockerClient does on a socket it may not open
        raise PermissionError(13, "Permission denied")

    signal = DockerSignal(name="docker_running", kind="docker", metric="running",
                          project="wd", services=["web"], timeout=5.0)
    (observation,) = asyncio.run(DockerProbe(signal, refused).observe())
    gid = os.stat(foreign_socket).st_gid
    assert observation.error is not None
    assert observation.error.startswith("Docker engine unreachable: PermissionError")
    assert f"DOCKER_GID={gid}" in observation.error, observation.error
