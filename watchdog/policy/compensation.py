"""What puts back a step that took something down: the saga's compensations, decided purely.

A plan that stops the enrichment workers and then fails at its restore must not
leave them stopped: the outage would be worse than before the watchdog acted.
Each step that takes something down names its undo here (`service.stop` ->
`service.start` of the same services; `provider.disable` -> `provider.enable`
of the incident's journaled before-images); when a later step fails, the
executor runs the undos of the steps already done, last first, journaled like
any step. Every compensation carries its reason in its name, which is what the
journal, the page and the web page show.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from watchdog.model import Risk, Step

#: Every compensation step's name starts with this, so the journal tells them apart.
COMPENSATE = "compensate: "

#: Actions after which the named services run, whatever ran before: a stop of
#: them needs no compensation any more.
_RUNNING_AFTER = frozenset({"service.start", "service.restart", "service.recover"})


def compensation_for(step: Step, incident_id: int) -> Step | None:
    """The step that undoes `step` once it has succeeded, or None when nothing needs undoing.

    `service.stop` is undone by `service.start` of the same services;
    `provider.disable` by `provider.enable`, which puts back exactly the rows
    this incident's disable changed (and leaves rows edited since alone). Steps
    that take nothing down (restarts, backups, restores, checks) have none.
    """
    params = step.param_map()
    if step.action == "service.stop":
        services = _services(params.get("services"))
        if not services:
            return None
        return Step(
            name=(
                f"{COMPENSATE}start {', '.join(services)} again "
                f"(stopped by '{step.name}'; the plan did not finish)"
            ),
            action="service.start",
            risk=Risk.SAFE,
            params=(("services", services),),
            idempotent=True,
            timeout_seconds=step.timeout_seconds,
            note=f"undoes '{step.name}'",
        )
    if step.action == "provider.disable":
        provider = str(params.get("provider", "the provider"))
        return Step(
            name=(
                f"{COMPENSATE}enable {provider} again from the before-images of "
                f"'{step.name}' (the plan did not finish)"
            ),
            action="provider.enable",
            risk=Risk.SAFE,
            params=(("incident", incident_id),),
            idempotent=True,
            timeout_seconds=step.timeout_seconds,
            note=f"undoes '{step.name}'",
        )
    return None


def compensations(done: Sequence[Step], incident_id: int) -> list[Step]:
    """The compensations of the steps `done` (in the order they ran), to run last first.

    A stop that a later done step already undid (a `service.start` or
    `service.restart` of the same services) needs no compensation: only the
    services still down are started again, and a stop with none left is dropped.
    """
    running: set[str] = set()
    undos: list[Step] = []
    for step in reversed(done):
        params = step.param_map()
        if step.action in _RUNNING_AFTER:
            running.update(_services(params.get("services")))
            continue
        if step.action == "service.stop":
            still_down = [s for s in _services(params.get("services")) if s not in running]
            if not still_down:
                continue
            step = replace(step, params=(*_without(step.params, "services"),
                                         ("services", still_down)))
        undo = compensation_for(step, incident_id)
        if undo is not None:
            undos.append(undo)
    return undos


def _services(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(s) for s in value]
    return []


def _without(params: tuple[tuple[str, object], ...], key: str) -> tuple[tuple[str, object], ...]:
    return tuple((k, v) for k, v in params if k != key)
