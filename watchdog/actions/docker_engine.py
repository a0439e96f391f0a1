"""The one edge between the Docker orchestrator and the Docker SDK.

Every SDK call goes through `Engine.call`: it runs the blocking call in a
worker thread (the daemon's loop keeps ticking while Docker stops a container)
and turns whatever the SDK raises into one `ActionFailed` that says what was
being done to what, and what the engine answered. Nothing above this module
sees a `docker.errors` or `requests` exception.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from watchdog.actions.base import ActionFailed
from watchdog.actions.docker_spec import PROJECT_LABEL
from watchdog.actions.threads import run_blocking
from watchdog.dockersocket import permission_advice

if TYPE_CHECKING:
    import docker

T = TypeVar("T")


def sdk_errors() -> tuple[type[Exception], ...]:
    """What the SDK raises: its own errors, and requests' (connection refused, read
    timeout), which are OSErrors. Imported when first needed, as the SDK itself is:
    a daemon that never acts on Docker does not load it (6 MB)."""
    import docker.errors

    return (docker.errors.DockerException, OSError)


def engine_said(error: BaseException) -> str:
    """The engine's own words when it answered (APIError.explanation), else the error."""
    explanation = getattr(error, "explanation", None)
    if explanation:
        status = getattr(error, "status_code", None)
        return f"{status} {explanation}" if status else str(explanation)
    return f"{type(error).__name__}: {error}"


def unreachable(error: BaseException) -> str:
    """Why the engine did not answer, and which group to run with when the socket refused."""
    return engine_said(error) + permission_advice(error)


class Engine:
    """One DockerClient for the length of one orchestrator call."""

    def __init__(self, client: docker.DockerClient, project: str) -> None:
        self.client = client
        self.project = project

    async def call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one blocking SDK call in a thread; `what` names the call and its subject.

        The thread is tracked (`run_blocking`): if the step times out, the
        executor knows the call is still going on and waits for it before
        anything else touches the same service."""
        try:
            return await run_blocking(what, fn)
        except sdk_errors() as error:
            raise ActionFailed(f"docker {what}: {engine_said(error)}") from error

    async def project_containers(self) -> list[Any]:
        """Every container labelled with the project (running or not), inspected."""
        return await self.call(
            f"list containers of Compose project {self.project!r}",
            lambda: list(
                self.client.containers.list(
                    all=True,
                    filters={"label": f"{PROJECT_LABEL}={self.project}"},
                    ignore_removed=True,
                )
            ),
        )


@asynccontextmanager
async def connect(
    factory: Callable[[], docker.DockerClient], project: str
) -> AsyncIterator[Engine]:
    """A client from `factory`, pinged before anything else is asked of it, closed after.

    An engine that does not answer fails the whole call here, before a single
    container is touched, so no action is ever left half done for that reason.
    """
    try:
        client = await asyncio.to_thread(factory)
    except sdk_errors() as error:
        raise ActionFailed(f"Docker engine unreachable: {unreachable(error)}") from error
    try:
        try:
            await asyncio.to_thread(client.ping)
        except sdk_errors() as error:
            raise ActionFailed(f"Docker engine unreachable: {unreachable(error)}") from error
        yield Engine(client, project)
    finally:
        client.close()
