"""`watchdog drill NAME --policy FILE`: rehearse one of the policy's drills, on a drill target.

The target is what the settings point the daemon at: the sandbox
(`WATCHDOG_ORCHESTRATOR=sandbox+URL`), or a Compose project on a Docker engine, which
must be marked `stack.drill: true` in the policy (a staging stack). A live project
is refused before anything is touched (exit 2, naming `stack.drill`), and so is a
configuration-table drill on a database of a policy not so marked. The daemon
guarding the target shares the journal (WATCHDOG_STATE): the drill follows it there,
records the result (`watchdog.drill.run`), counts it in the metrics (written to
`--metrics-file` for a textfile collector when run by hand; the daemon's own registry
when scheduled) and prints a one-page Markdown report. A failed drill is paged through
the outbox by the policy's routes; the daemon's outbox worker delivers it.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from watchdog.commands.journalfile import existing_journal
from watchdog.drill.faults import Injector, docker_injector, postgres_injector, sandbox_injector
from watchdog.drill.run import DrillResult, Failure, open_failure, record, report, run_drill
from watchdog.metrics import Metrics
from watchdog.notify.outbox import Outbox
from watchdog.policy.schema import Policy
from watchdog.settings import Settings
from watchdog.store.journal import Journal, open_journal

SANDBOX = "sandbox+"
DOCKER = "docker"


class DrillRefused(ValueError):
    """The drill would touch a live target, or cannot run as asked (exit 2)."""


def drill_target(
    policy: Policy, settings: Settings, name: str, source: str
) -> tuple[str, Injector]:
    """Where drill `name` injects its fault, and how; `DrillRefused` for a live target."""
    spec = policy.drills.scenarios.get(name)
    if spec is None:
        known = ", ".join(sorted(policy.drills.scenarios)) or "none"
        raise DrillRefused(f"{source} has no drill {name!r} under drills.scenarios "
                           f"(it has: {known})")
    orchestrator = settings.orchestrator or ""
    live = (f"refused: {source} does not set stack.drill: true, so stack "
            f"{policy.stack.name!r} is live; drills run only on the sandbox or on a staging "
            "stack whose policy sets stack.drill: true")
    if spec.fault == "corrupt_config":
        if not policy.stack.drill:
            raise DrillRefused(live)
        if not settings.database_url:
            raise DrillRefused("drill database: set WATCHDOG_DATABASE_URL")
        return "drill database", postgres_injector(settings.database_url)
    if orchestrator.startswith(SANDBOX):
        return "sandbox", sandbox_injector(orchestrator[len(SANDBOX):])
    if orchestrator == DOCKER or orchestrator.startswith(DOCKER + "+"):
        if not policy.stack.drill:
            raise DrillRefused(live)
        from watchdog.commands.runner import docker_factory, docker_host

        url = orchestrator[len(DOCKER) + 1:] if orchestrator != DOCKER else docker_host()
        project = policy.stack.compose_project or policy.stack.name
        return f"Compose project {project}", docker_injector(docker_factory(url), project)
    raise DrillRefused("no drill target: set WATCHDOG_ORCHESTRATOR to the sandbox "
                       "(sandbox+URL) or to the Docker engine of a drill stack")


def drill_once(
    policy: Policy,
    name: str,
    target: tuple[str, Injector],
    journal: Journal,
    *,
    outbox: Outbox | None,
    metrics: Metrics,
    time_scale: float,
    progress: Callable[[str], None],
) -> tuple[DrillResult, Failure | None]:
    """Run, record, count and (when failed) open one drill's incident; the result, the failure.

    With an `outbox`, a new failure is paged here; without one the caller pages it."""
    spec = policy.drills.scenarios[name]
    where, inject = target
    timeout = spec.timeout / time_scale
    fault = f"{spec.fault} {spec.kind}" if spec.kind else f"{spec.fault} {spec.service or ''}"
    progress(f"drill {name}: {fault.strip()} on {where}, up to {timeout:g} s to recover")
    result = run_drill(name, spec, inject, journal, target=where, timeout=timeout,
                       clock=time.time, sleep=time.sleep, progress=progress)
    now = time.time()
    record(journal, result, at=now)
    metrics.drills.labels(name, result.outcome).inc()
    if result.recover_seconds is not None and result.passed:
        metrics.drill_recovery.labels(name).observe(result.recover_seconds)
    failure = None
    if not result.passed:
        failure = open_failure(journal, result, policy.drills.page_severity, at=now)
        if outbox is not None and failure.new:
            outbox.incident_moved(failure.incident, "detected", "escalated",
                                  f"drill {name} failed: {result.reason}")
    progress(f"drill {name} {result.outcome}: {result.reason}")
    return result, failure


def drill_command(
    settings: Settings,
    policy: Policy,
    source: str,
    name: str,
    *,
    out: Path | None = None,
    metrics_file: Path | None = None,
) -> int:
    """Exit 0 passed, 1 failed (and paged), 2 refused or bad input."""
    from watchdog.commands.runner import build_outbox

    try:
        target = drill_target(policy, settings, name, source)
    except DrillRefused as error:
        print(error, file=sys.stderr)
        return 2
    journal = open_journal(existing_journal(settings))
    metrics = Metrics.for_policy(policy)
    channels = None
    try:
        result, failure = drill_once(
            policy, name, target, journal, outbox=None, metrics=metrics,
            time_scale=settings.time_scale, progress=lambda line: print(line, flush=True),
        )
        if failure is not None and failure.new:  # delivered by the daemon's outbox worker
            client = httpx.AsyncClient()
            try:
                build_outbox(policy, settings, journal, client, metrics).incident_moved(
                    failure.incident, "detected", "escalated",
                    f"drill {name} failed: {result.reason}",
                )
            finally:
                asyncio.run(client.aclose())
            channels = sorted({d.channel for d in journal.deliveries(failure.incident)})
    finally:
        journal.close()
    page = report(result, failure, channels)
    if out is not None:
        out.write_text(page)
        print(f"report: {out}")
    else:
        print("\n" + page, end="")
    if metrics_file is not None:
        metrics_file.write_bytes(metrics.exposition())
    return 0 if result.passed else 1
