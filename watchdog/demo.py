"""`watchdog demo`: the real daemon, the real songnodes policy, the sandbox stack, six faults.

It starts the sandbox (stub services as separate processes on 127.0.0.1), runs
`watchdog run` against it as a separate process with an SQLite journal in a
temporary folder and the policy's clock compressed tenfold, waits for a healthy
baseline (a last known good configuration in the journal), then injects one
fault at a time and follows the daemon's own API, printing the timeline as it
happens. It exits 0 only if every scenario recovered. The API's incidents are
read with a read token (WATCHDOG_READ_TOKEN) made fresh for each daemon.

The sandbox plays the Docker engine too (its Docker signals on), so the sixth
fault, a new version that fails right after its deploy, is the runbook's
scenario 1. Its 15-minute watch would be 90 s even at 10x, so the demo runs a
copy of the policy with that one `verify_for` shortened, and says so.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from watchdog.demosetup import demo_policy, has_service_last_good, seed_backup
from watchdog.keys import new_key
from watchdog.sandbox.stack import SandboxStack
from watchdog.store.journal import open_journal

POLICY = Path(__file__).resolve().parents[1] / "policies" / "songnodes.yaml"
TIME_SCALE = 10.0
SCENARIO_TIMEOUT = 45.0
#: Sandbox service → the environment variable songnodes.yaml reads its address from.
ADDRESSES = {
    "metadata-enrichment": "WATCHDOG_URL_METADATA_ENRICHMENT",
    "audio-analysis": "WATCHDOG_URL_AUDIO_ANALYSIS",
    "dlq-manager": "WATCHDOG_URL_DLQ_MANAGER",
    "api-gateway-internal": "WATCHDOG_URL_API_GATEWAY_INTERNAL",
    "rest-api": "WATCHDOG_URL_REST_API",
    "api-gateway": "WATCHDOG_URL_API_GATEWAY",
    "graph-visualization-api": "WATCHDOG_URL_GRAPH_VISUALIZATION_API",
    "scraper-mixesdb": "WATCHDOG_URL_SCRAPER_MIXESDB",
    "scraper-1001tracklists": "WATCHDOG_URL_SCRAPER_1001TRACKLISTS",
    "rabbitmq": "WATCHDOG_URL_RABBITMQ_MANAGEMENT",
    "postgres": "WATCHDOG_ADDR_POSTGRES",
    "redis": "WATCHDOG_ADDR_REDIS",
}


@dataclass(frozen=True, slots=True)
class Fault:
    title: str
    kind: str
    body: dict[str, Any] = field(default_factory=dict)
    #: A service whose last known good record must exist first (what a revert goes back to).
    needs_last_good: str | None = None


FAULTS = (
    Fault("crashed service (dlq-manager killed)", "crash", {"service": "dlq-manager"}),
    Fault("corrupted enrichment configuration", "corrupt_config"),
    Fault(
        "failing provider (spotify down, breaker OPEN)", "provider_outage", {"provider": "spotify"}
    ),
    Fault(
        "provider back (spotify restored): its rows put back", "provider_restore",
        {"provider": "spotify"},
    ),
    Fault("DLQ overflow (workers dead-lettering)", "dlq_overflow"),
    Fault(
        "new version of dlq-manager fails right after its deploy", "deploy",
        {"service": "dlq-manager", "version": "1.5.0"}, needs_last_good="dlq-manager",
    ),
)


@dataclass(slots=True)
class Outcome:
    fault: Fault
    incident: dict[str, Any] | None = None
    detected_after: float | None = None
    recovered_after: float | None = None

    @property
    def recovered(self) -> bool:
        return self.incident is not None and self.incident["state"] == "resolved"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def sandbox_settings(
    control_url: str, urls: Mapping[str, str], state: Path, time_scale: float
) -> dict[str, str]:
    """The settings `watchdog run --policy policies/songnodes.yaml` needs to guard the
    sandbox at `control_url` (its services at `urls`), journaling in `state`."""
    settings = {}
    for service, variable in ADDRESSES.items():
        address = urls.get(service)
        if address is None:
            raise RuntimeError(f"the sandbox has no {service!r}; it has {sorted(urls)}")
        settings[variable] = address.removeprefix("tcp://")
    settings.update(
        WATCHDOG_STATE=str(state / "journal.db"),
        WATCHDOG_ORCHESTRATOR=f"sandbox+{control_url}",
        WATCHDOG_CONFIG_STORE=f"sandbox+{control_url}",
        WATCHDOG_BACKUP_DIR=str(state / "backups"),
        WATCHDOG_TIME_SCALE=f"{time_scale:g}",
        WATCHDOG_REDIS_PASSWORD="sandbox-redis",
        WATCHDOG_DOCKER_SIGNALS="false",  # the sandbox plays Docker through its own API
        # ... and PostgreSQL as a bare port: the TCP signal instead of SQL ones.
        WATCHDOG_POSTGRES_SIGNALS="false",
        WATCHDOG_DATABASE_PORT_SIGNAL="true",
    )
    return settings


def daemon_environment(
    stack: SandboxStack, state: Path, listen: str, time_scale: float
) -> dict[str, str]:
    """What `watchdog run` needs to guard the sandbox with the songnodes policy."""
    return {
        **os.environ,
        **sandbox_settings(stack.control_url, stack.urls, state, time_scale),
        "WATCHDOG_LISTEN": listen,
        "WATCHDOG_LOG_FORMAT": "json",
        # The demo's faults, and each test's, are the only ones: no quarterly drill lands
        # in them when a run crosses 10:00 UTC on the 15th of a quarter's first month.
        "WATCHDOG_SCHEDULED_DRILLS": "false",
    }


class DaemonProcess:
    """`watchdog run` as its own process against the sandbox, restartable on the same port."""

    def __init__(
        self,
        stack: SandboxStack | None,
        state: Path,
        *,
        time_scale: float = TIME_SCALE,
        policy: Path = POLICY,
        extra_args: Sequence[str] = (),
        environment: Mapping[str, str] | None = None,
    ) -> None:
        """Against `stack`, or with no stack; `environment` adds or overrides settings.

        The daemon gets a fresh read token (`read_token`) unless `environment` names one."""
        self.listen = f"127.0.0.1:{free_port()}"
        self.read_token = (environment or {}).get("WATCHDOG_READ_TOKEN") or new_key()
        self.url = f"http://{self.listen}"
        self._command = [
            sys.executable,
            "-m",
            "watchdog.cli",
            "run",
            "--policy",
            str(policy),
            *extra_args,
        ]
        if stack is not None:
            self._env = {
                **daemon_environment(stack, state, self.listen, time_scale),
                **(environment or {}),
            }
        else:
            self._env = {
                **os.environ,
                "WATCHDOG_STATE": str(state / "journal.db"),
                "WATCHDOG_LISTEN": self.listen,
                "WATCHDOG_TIME_SCALE": str(time_scale),
                "WATCHDOG_LOG_FORMAT": "json",
                **(environment or {}),
            }
        self._env["WATCHDOG_READ_TOKEN"] = self.read_token
        self._log_path = state / "daemon.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> DaemonProcess:
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self._command, env=self._env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        wait_for(lambda: _answers(self.url + "/healthz"), 20, f"the daemon at {self.url}")
        return self

    def incidents(self, **params: Any) -> list[dict[str, Any]]:
        """GET /incidents with the read token (`open_only=True`, `limit=N`)."""
        return read_incidents(self.url, self.read_token, **params)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Send `signum` and wait; the exit code (SIGKILL after `timeout`)."""
        process, self._process = self._process, None
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(signum)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()


@contextlib.contextmanager
def running_daemon(
    stack: SandboxStack,
    state: Path,
    *,
    time_scale: float = TIME_SCALE,
    policy: Path = POLICY,
    extra_args: Sequence[str] = (),
    environment: Mapping[str, str] | None = None,
) -> Iterator[DaemonProcess]:
    """A started `DaemonProcess` (its `url`, its `read_token`), stopped with SIGTERM on exit."""
    daemon = DaemonProcess(
        stack, state, time_scale=time_scale, policy=policy, extra_args=extra_args,
        environment=environment,
    ).start()
    try:
        yield daemon
    finally:
        daemon.stop()


def _answers(url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(url, timeout=1).status_code == 200
    return False


def wait_for(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise TimeoutError(f"gave up after {seconds:g} s waiting for {what}")


def has_last_good(state: Path) -> bool:
    journal = open_journal(str(state / "journal.db"))
    try:
        return journal.latest_snapshot("metadata_enrichment_config") is not None
    finally:
        journal.close()


def read_headers(read_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {read_token}"}


def read_incidents(url: str, read_token: str, **params: Any) -> list[dict[str, Any]]:
    """The daemon's GET /incidents, read with its read token; an error names the status."""
    reply = httpx.get(url + "/incidents", params=params, headers=read_headers(read_token),
                      timeout=5)
    reply.raise_for_status()
    incidents: list[dict[str, Any]] = reply.json()["incidents"]
    return incidents


def quiet(url: str, read_token: str) -> bool:
    return not read_incidents(url, read_token, open_only=True)


class Follower:
    """Prints an incident's timeline as the daemon writes it."""

    def __init__(self, url: str, started: float, out: Callable[[str], None]) -> None:
        self.url = url
        self.started = started
        self.out = out
        self.seen = 0

    def show(self, incident: dict[str, Any]) -> None:
        for event in incident["timeline"][self.seen :]:
            offset = event["at"] - self.started
            self.out(f"  +{offset:6.2f} s  {event['kind']:<15} {event['summary']}")
        self.seen = len(incident["timeline"])


def run_scenario(
    daemon: DaemonProcess, stack: SandboxStack, fault: Fault, out: Callable[[str], None]
) -> Outcome:
    known = {i["id"] for i in daemon.incidents()}
    outcome = Outcome(fault)
    out(f"\n=== {fault.title} ===")
    started = time.time()
    stack.inject(fault.kind, **fault.body)
    out(f"  +  0.00 s  fault injected   {fault.kind} {fault.body or ''}".rstrip())
    follower = Follower(daemon.url, started, out)
    deadline = time.monotonic() + SCENARIO_TIMEOUT
    while time.monotonic() < deadline:
        incidents = daemon.incidents()
        new = [i for i in incidents if i["id"] not in known]
        if new:
            incident = min(new, key=lambda i: i["id"])
            if outcome.incident is None:
                outcome.detected_after = incident["opened_at"] - started
                out(
                    f"  >> detected after {outcome.detected_after:.1f} s: "
                    f"{incident['severity']} {incident['scenario']}"
                )
            outcome.incident = incident
            follower.show(incident)
            if incident["state"] in ("resolved", "closed", "escalated"):
                if incident["closed_at"]:
                    outcome.recovered_after = incident["closed_at"] - started
                break
        time.sleep(0.2)
    if outcome.incident is None:
        out(f"  no incident within {SCENARIO_TIMEOUT:g} s")
    elif outcome.recovered:
        out(f"  >> recovered and verified {outcome.recovered_after:.1f} s after the fault")
    else:
        out(f"  >> NOT recovered: the incident is {outcome.incident['state']}")
    return outcome


def summary(outcomes: list[Outcome]) -> str:
    rows = [("SCENARIO", "DETECTED", "SEVERITY", "PLAN", "STEPS", "OUTCOME", "RECOVERED")]
    for o in outcomes:
        incident = o.incident or {}
        steps = incident.get("steps", [])
        ok = sum(1 for s in steps if s["status"] == "succeeded")
        rows.append(
            (
                o.fault.title,
                "-" if o.detected_after is None else f"{o.detected_after:.1f} s",
                str(incident.get("severity", "-")),
                str(incident.get("scenario", "-")),
                f"{ok}/{len(steps)}",
                str(incident.get("state", "not detected")),
                "-" if o.recovered_after is None else f"{o.recovered_after:.1f} s",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)) for r in rows)


def run_demo(*, keep: bool = False, out: Callable[[str], None] = print) -> int:
    began = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="watchdog-demo-"))
    out(f"watchdog demo: sandbox and journal in {folder}")
    outcomes: list[Outcome] = []
    try:
        with SandboxStack(folder / "sandbox") as stack:
            services = len(stack.control.services())
            out(f"sandbox up: {services} processes on 127.0.0.1, control {stack.control_url}")
            seed_backup(stack, folder / "backups", out)
            policy = demo_policy(POLICY, folder, TIME_SCALE, out)
            # The sandbox plays the Docker engine: its Docker signals on (scenario 1).
            docker = {"WATCHDOG_DOCKER_SIGNALS": "true"}
            with running_daemon(stack, folder, policy=policy, environment=docker) as daemon:
                out(
                    f"daemon up at {daemon.url} (songnodes policy, clock compressed "
                    f"{TIME_SCALE:g}x)"
                )
                wait_for(lambda: has_last_good(folder), 30, "a last known good configuration")
                out("healthy baseline: last known good configuration snapshotted")
                for fault in FAULTS:
                    wait_for(
                        lambda: quiet(daemon.url, daemon.read_token), 30,
                        "no open incident before the next fault",
                    )
                    if (service := fault.needs_last_good) is not None:
                        wait_for(lambda: has_service_last_good(folder, service), 30,
                                 f"a last known good version of {service}")
                    outcomes.append(run_scenario(daemon, stack, fault, out))
    finally:
        out(f"\n{summary(outcomes)}" if outcomes else "")
        if not keep:
            out(f"(journal and logs removed; --keep keeps {folder})")
            shutil.rmtree(folder, ignore_errors=True)
        else:
            out(f"journal: {folder / 'journal.db'}  logs: {folder / 'daemon.log'}")
    ok = len(outcomes) == len(FAULTS) and all(o.recovered for o in outcomes)
    out(
        f"\n{'all scenarios recovered' if ok else 'NOT every scenario recovered'} "
        f"in {time.monotonic() - began:.1f} s"
    )
    return 0 if ok else 1
