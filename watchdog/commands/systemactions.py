"""Scenario 5's actions for the action table, and `system.resources`, which reads probes.

`system.resources` is scenario 5's "check system health" as a step that can stop the plan.

The runbook checks `df -h` and `free -h` before it rebuilds: a rebuild on a full
disk fails half way. The step reads the policy's own signals (its host signals,
`disk_used` and `memory_used`, through the very probes the daemon reads them with)
and fails, naming the reading, when one is not within the step's limit; the plan
stops there, before the rebuild. It lives with the commands because actions may
not import probes (.importlinter), and it only reads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from watchdog.actions.base import ActionFailed, ActionOutcome, Handler, Reverter
from watchdog.actions.docker_forensics import DockerForensics
from watchdog.actions.docker_system import DockerSystem
from watchdog.engine.executor import Preflight
from watchdog.model import Step
from watchdog.policy.rules import COMPARE
from watchdog.policy.schema import Policy
from watchdog.probes.base import Probe
from watchdog.probes.scheduler import observe_all
from watchdog.store.journal import Journal

ProbesFor = Callable[[set[str]], Sequence[Probe]]


def system_actions(
    policy: Policy,
    root: Path,
    journal: Journal,
    *,
    probes: ProbesFor,
    docker: Callable[[], Any] | None,
    reverter: Reverter | None,
) -> tuple[dict[str, Handler], dict[str, Preflight]]:
    """The handlers and preflights of scenario 5: the resource check always, the
    Docker ones on a Docker engine. The forensic snapshot goes under `root` (the
    journal's folder) unless a step names `dir`."""
    project = policy.stack.compose_project or policy.stack.name
    forensics = DockerForensics(docker, project, root=root, journal=journal)
    handlers: dict[str, Handler] = {
        "system.resources": resources_handler(probes),
        # Without an engine (the sandbox) the snapshot keeps df, memory and the journal.
        "system.snapshot": forensics.snapshot,
    }
    if docker is None:
        return handlers, {}
    system = DockerSystem(
        docker, project, protected=policy.stack.protected_services, reverter=reverter,
        records=journal, spec=policy.discovery,
    )
    handlers |= {
        "system.emergency_stop": system.emergency_stop,
        "system.rebuild": system.rebuild,
    }
    return handlers, {"system.rebuild": system.preflight_rebuild}


def resources_handler(probes_for: ProbesFor) -> Handler:
    """The handler; `probes_for(names)` builds the policy's probes of those signals."""

    async def check(step: Step) -> ActionOutcome:
        checks = _checks(step.param_map().get("checks"))
        probes = list(probes_for({c["signal"] for c in checks}))
        readings = {o.signal: o for o in await observe_all(probes)}
        lines: list[str] = []
        failed: list[str] = []
        for item in checks:
            signal, op, limit = item["signal"], item["op"], float(item["threshold"])
            seen = readings.get(signal)
            if seen is None or seen.value is None:
                why = seen.error if seen is not None and seen.error else "no reading"
                failed.append(f"{signal}: {why}")
                continue
            words = f"{signal} {seen.value:.2f} {op} {limit:g}" + (
                f" ({seen.detail})" if seen.detail else ""
            )
            (lines if COMPARE[op](seen.value, limit) else failed).append(words)
        if failed:
            raise ActionFailed("not within the limits: " + "; ".join(failed)
                               + ("; within: " + "; ".join(lines) if lines else ""))
        return ActionOutcome(True, "within the limits: " + "; ".join(lines),
                             {"readings": {k: v.value for k, v in readings.items()}})

    return check


def _checks(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise ActionFailed("checks must be a list of {signal, op, threshold}")
    for item in value:
        if not isinstance(item, dict) or item.get("op") not in COMPARE or "signal" not in item:
            raise ActionFailed(f"a check must be {{signal, op, threshold}}, not {item!r}")
    return [dict(item) for item in value]
