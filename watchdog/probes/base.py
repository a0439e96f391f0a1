"""What every probe is, and which probe reads which kind of signal.

A probe asks one source one question and answers with Observations. Whatever
the target does (refuse, hang, answer garbage, answer 503) the answer is an
Observation whose `error` says what went wrong and what was expected: at this
edge errors are data, and rules decide later whether they matter. Exceptions
are reserved for our own mistakes (a policy naming an unknown target, a
malformed JMESPath), which surface in `build_probe`, before the daemon starts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import httpx

from watchdog.model import Observation
from watchdog.policy.schema import (
    AnySignal,
    DockerSignal,
    HostSignal,
    HttpSignal,
    Policy,
    PostgresSignal,
    PrometheusSignal,
    TableSignal,
    TargetSpec,
    TcpSignal,
)
from watchdog.probes.docker import DockerProbe, env_client_factory
from watchdog.probes.docker_changes import ChangeProbe, LastGoodRows
from watchdog.probes.docker_labels import LabelledProbe
from watchdog.probes.host import HostProbe
from watchdog.probes.http import HttpProbe
from watchdog.probes.postgres import PostgresProbe
from watchdog.probes.prometheus import PrometheusProbe
from watchdog.probes.table import RowReader, TableProbe
from watchdog.probes.tcp import TcpProbe

if TYPE_CHECKING:
    import docker

ProbedSignal = (
    HttpSignal
    | PrometheusSignal
    | TcpSignal
    | HostSignal
    | TableSignal
    | PostgresSignal
    | DockerSignal
)


class Probe(Protocol):
    """One signal's source. `observe` never raises for anything the target does."""

    @property
    def signal(self) -> ProbedSignal: ...

    async def observe(self) -> list[Observation]: ...


def build_probe(
    signal: AnySignal,
    policy: Policy,
    client: httpx.AsyncClient,
    *,
    read_rows: RowReader | None = None,
    docker_client_factory: Callable[[], docker.DockerClient] | None = None,
    database_url: str | None = None,
    last_good: LastGoodRows | None = None,
) -> Probe | None:
    """The probe for one signal; None for kinds computed elsewhere (derived, alert).

    `client` is the one connection pool shared by every HTTP probe. Docker probes
    make their clients with `docker_client_factory`; without one they use
    `docker.DockerClient.from_env`, which reads DOCKER_HOST (DOCKER_TLS_VERIFY,
    DOCKER_CERT_PATH) and otherwise the local socket, with the signal's timeout. Raises
    ValueError when the policy is inconsistent (a signal naming an unknown target,
    a malformed JMESPath or address): a mistake of ours, not the target's.
    PostgreSQL probes connect with `database_url` (WATCHDOG_DATABASE_URL). A Docker
    `changed` signal reads the last known good registry through `last_good`.
    """
    if isinstance(signal, HostSignal):
        return HostProbe(signal)
    if isinstance(signal, HttpSignal):
        return HttpProbe(signal, signal.target, _target(signal.target, policy), client)
    if isinstance(signal, PrometheusSignal):
        return PrometheusProbe(signal, signal.target, _target(signal.target, policy), client)
    if isinstance(signal, TcpSignal):
        return TcpProbe(signal, signal.target, _target(signal.target, policy))
    if isinstance(signal, TableSignal):
        return TableProbe(signal, read_rows)
    if isinstance(signal, PostgresSignal):
        return PostgresProbe(signal, database_url)
    if isinstance(signal, DockerSignal):
        factory = docker_client_factory or env_client_factory(signal.timeout)
        if signal.metric == "changed":
            return ChangeProbe(signal, factory, last_good)
        if policy.discovery is not None and signal.metric != "engine_up":
            return LabelledProbe(signal, factory, policy.discovery)  # services by their labels
        return DockerProbe(signal, factory)
    return None


def build_probes(
    policy: Policy,
    client: httpx.AsyncClient,
    *,
    names: set[str] | None = None,
    read_rows: RowReader | None = None,
    docker_client_factory: Callable[[], docker.DockerClient] | None = None,
    database_url: str | None = None,
    last_good: LastGoodRows | None = None,
) -> list[Probe]:
    """A probe for every enabled signal that has one (only those in `names`, if given)."""
    return [
        probe
        for signal in policy.probed_signals()
        if (names is None or signal.name in names)
        and (
            probe := build_probe(
                signal,
                policy,
                client,
                read_rows=read_rows,
                docker_client_factory=docker_client_factory,
                database_url=database_url,
                last_good=last_good,
            )
        )
    ]


def _target(name: str, policy: Policy) -> TargetSpec:
    try:
        return policy.targets[name]
    except KeyError:
        known = ", ".join(sorted(policy.targets)) or "none"
        raise ValueError(f"target {name!r} is not defined (known targets: {known})") from None
