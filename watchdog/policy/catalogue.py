"""The actions a plan may name: what each needs, how much harm it can do, and
whether running it twice is harmless.

This is the contract between policy files and the executor's backends. The policy
validator rejects a step that names an action missing here or omits a required
parameter, so a typo is caught by `watchdog validate`, not at 3 a.m. in the middle
of a rollback. Which backend carries an action out (the sandbox, Docker,
PostgreSQL) is the executor's business, not the policy's.

Idempotence is stated per action *and per parameters*, because the question is
asked of one concrete step: after a crash left it 'started', may a restart run it
again, or is its outcome unknown and a human must look? An `http.call` is
idempotent or not by its method; a `provider.disable` only when it can write its
undo record ahead (it knows its incident). Each rule returns its verdict with the
reason, which the planner sets on the step and a restart can quote.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from watchdog.model import Risk


@dataclass(frozen=True, slots=True)
class Idempotence:
    """Whether a second run of a step leaves the world as one run does, and why."""

    idempotent: bool
    reason: str


IdempotenceRule = Callable[[Mapping[str, Any]], Idempotence]


def always(reason: str) -> IdempotenceRule:
    """A rule for an action that is idempotent whatever its parameters."""
    return lambda params: Idempotence(True, reason)


def never(reason: str) -> IdempotenceRule:
    """A rule for an action that must never be run a second time blindly."""
    return lambda params: Idempotence(False, reason)


#: RFC 9110 section 9.2.2: the methods whose intended effect of several identical
#: requests is that of one. POST and PATCH are not among them.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})


def http_by_method(params: Mapping[str, Any]) -> Idempotence:
    method = str(params.get("method", "")).upper()
    if method in IDEMPOTENT_METHODS:
        return Idempotence(True, f"{method} is idempotent by HTTP's own definition (RFC 9110)")
    return Idempotence(
        False,
        f"{method or 'a call with no method'} is not idempotent by HTTP's definition "
        "(RFC 9110 9.2.2): a second request may act twice",
    )


def provider_disable(params: Mapping[str, Any]) -> Idempotence:
    """Idempotent only when it knows its incident.

    A second run reads the table as the first run left it. It writes nothing then
    (rows no longer route through the provider, or are already disabled), but it
    also finds no before-images: if the first run's were not journaled, the undo is
    gone. With the incident id, the handler writes its undo record as an intent
    *before* the change, keyed by incident and step, and a second run resolves
    that record against the live rows instead of writing new images over it.
    """
    incident = str(params.get("incident", ""))
    if incident.isdigit():
        return Idempotence(
            True,
            f"its undo record is written ahead under incident {incident}: a second run finds "
            "it, writes nothing over it and changes no row already changed",
        )
    return Idempotence(
        False,
        "no incident id to write its undo record ahead under: a second run after a crash "
        "would find the rows already changed and the first run's before-images lost",
    )


def service_revert(params: Mapping[str, Any]) -> Idempotence:
    """Idempotent: the target is a fixed configuration recorded before acting.

    The revert goes to the newest last-known-good row set the daemon journaled
    while the service was healthy, not to "the image before the current one". A
    second run finds the same rows (an unhealthy service records nothing new, and
    the recovered service records the same configuration, which the journal does
    not store twice) and leaves a replica already on that image and up alone. A
    relative revert (one version back) would go back twice; none exists here.
    """
    return Idempotence(
        True,
        "it reverts to the last known good configuration journaled while the service was "
        "healthy, a fixed target; a replica already on it and up is left alone",
    )


#: How an action touches data, for a plan's impact and its pre-rollback checklist:
#: puts back a backup ("restore") or a last known good snapshot ("snapshot"), changes rows
#: whose before-images are journaled first ("undoable"), keeps the failing state for a
#: human before anything changes ("captures"), or none of these ("").
DataTouch = Literal["restore", "snapshot", "undoable", "captures", ""]


@dataclass(frozen=True, slots=True)
class ActionSpec:
    risk: Risk
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    # Required, by keyword: every action states its own rule, none inherits "yes".
    idempotence: IdempotenceRule = field(kw_only=True)
    summary: str = ""
    data: DataTouch = field(default="", kw_only=True)


def assess_idempotence(action: str, params: Mapping[str, Any]) -> Idempotence:
    """The catalogue's verdict for one concrete step; an unknown action is never idempotent."""
    spec = ACTIONS.get(action)
    if spec is None:
        return Idempotence(False, f"{action!r} is not an action of the catalogue")
    return spec.idempotence(params)


RESTART = always("a second restart leaves the services running, as one does")
READ_ONLY = always("it only reads")

ACTIONS: dict[str, ActionSpec] = {
    "service.restart": ActionSpec(
        Risk.SAFE,
        ("services",),
        ("stop_timeout",),
        idempotence=RESTART,
        summary="restart services' containers",
    ),
    "service.stop": ActionSpec(
        Risk.SAFE,
        ("services",),
        ("stop_timeout",),
        idempotence=always("stopping a stopped service changes nothing"),
        summary="stop",
    ),
    "service.start": ActionSpec(
        Risk.SAFE,
        ("services",),
        (),
        idempotence=always("starting a running service changes nothing"),
        summary="start services",
    ),
    # What the share rules (half, every service down) run: the failing services are
    # restarted, the stopped ones started, the healthy ones left alone. It decides from
    # the engine's own state and from `failing`, the services whose health signal
    # breached when the plan was made (filled in by the core from the rule's evidence),
    # never by reading a probe itself.
    "service.recover": ActionSpec(
        Risk.SAFE,
        ("services",),
        ("failing", "stop_timeout"),
        idempotence=always(
            "a second run restarts or starts a service at most once more and leaves it "
            "running, as one run does; a healthy service is left alone"
        ),
        summary="restart the failing services, start the stopped ones, leave the healthy alone",
    ),
    "service.restart_dependents": ActionSpec(
        Risk.SAFE,
        ("services",),
        ("stop_timeout",),
        idempotence=RESTART,
        summary="restart every service that depends on these, in dependency order",
    ),
    # Safe by its own guards, not by a policy's say-so (a policy may only raise a
    # risk, see powers.py): it recreates a service from an image journaled while the
    # service was healthy, parks the previous container and puts it back if the good
    # image fails too, refuses protected (stateful) services, and the schema guard
    # refuses a schema-coupled service when a migration ran since its image was recorded.
    "service.revert": ActionSpec(
        Risk.SAFE,
        ("service",),
        (),
        idempotence=service_revert,
        summary="recreate a service from its last good image",
    ),
    # Scenario 1's pre-rollback checklist, as steps that only read: the failing
    # containers' last log lines and the dependents' status, journaled as evidence
    # (secrets scrubbed); and, for a schema-coupled service, a backup to fall back on.
    "service.evidence": ActionSpec(
        Risk.SAFE,
        ("services",),
        ("lines",),
        idempotence=READ_ONLY,
        summary="keep the failing containers' last log lines and their dependents' status",
        data="captures",
    ),
    "backup.confirm": ActionSpec(
        Risk.SAFE,
        ("service", "backup_dir"),
        ("max_backup_age", "pattern"),
        idempotence=READ_ONLY,
        summary="a schema-coupled service: confirm a recent database backup exists",
    ),
    "config.backup": ActionSpec(
        Risk.SAFE,
        ("table",),
        (),
        idempotence=always("a second backup writes another copy and changes nothing"),
        summary="copy the live table",
        data="captures",
    ),
    "config.restore": ActionSpec(
        Risk.SAFE,
        ("table",),
        ("source", "defaults"),
        idempotence=always("writing the same rows again leaves the table as one restore does"),
        summary="restore the last known good table (or the policy's defaults file)",
        data="snapshot",
    ),
    "config.reload": ActionSpec(
        Risk.SAFE,
        ("target",),
        (),
        idempotence=always("reloading twice loads the same table"),
        summary="POST /admin/config/reload",
    ),
    "config.verify": ActionSpec(
        Risk.SAFE,
        ("target", "table"),
        (),
        idempotence=READ_ONLY,
        summary="GET /admin/config matches the table",
    ),
    "provider.disable": ActionSpec(
        Risk.SAFE,
        ("provider", "table"),
        ("mode", "incident"),
        idempotence=provider_disable,
        summary="take a provider out of use (its undo record written ahead under `incident`)",
        data="undoable",
    ),
    "provider.enable": ActionSpec(
        Risk.SAFE,
        ("incident",),
        (),
        idempotence=always("a row already back at its before-image is left alone"),
        summary="put back exactly the rows an incident's provider.disable changed, "
        "leaving rows edited since alone",
        data="undoable",
    ),
    "breaker.reset": ActionSpec(
        Risk.SAFE,
        ("target", "provider"),
        (),
        idempotence=always("resetting a closed breaker leaves it closed"),
        summary="reset a gateway circuit breaker",
    ),
    "smoke_test": ActionSpec(
        Risk.SAFE,
        ("target", "path", "body"),
        ("expect",),
        idempotence=always("a second smoke test enriches the same test track again"),
        summary="one real request",
    ),
    "http.call": ActionSpec(
        Risk.SAFE,
        ("target", "method", "path"),
        ("body", "expect_status"),
        idempotence=http_by_method,
        summary="HTTP call",
    ),
    "wait": ActionSpec(
        Risk.SAFE, ("seconds",), (), idempotence=always("waiting changes nothing"),
        summary="let the system settle",
    ),
    "database.dump": ActionSpec(
        Risk.SAFE,
        ("dir",),
        (),
        idempotence=always("a second dump writes another file and changes no data"),
        summary="pg_dump the current state for forensics",
        data="captures",
    ),
    "database.backup": ActionSpec(
        Risk.SAFE,
        ("backup_dir",),
        (),
        idempotence=always("a second backup writes another file and changes no data"),
        summary="a fresh gzip'd pg_dump named like the stack's own backups",
    ),
    "database.integrity": ActionSpec(
        Risk.SAFE,
        ("checks",),
        ("statement_timeout",),
        idempotence=always("its queries only read"),
        summary="read-only integrity queries that must hold",
    ),
    "database.restore": ActionSpec(
        Risk.RISKY,
        ("backup_dir",),
        ("max_backup_age", "backup", "pattern", "migration_dirs", "target_version", "base_dir"),
        idempotence=never(
            "a second restore throws away whatever was written since the first: the newest "
            "backup may differ, and the data written in between is lost"
        ),
        summary="restore the newest database backup, in one transaction",
        data="restore",
    ),
    "migrations.down": ActionSpec(
        Risk.RISKY,
        ("migration_dirs",),
        ("target_version", "base_dir"),
        idempotence=never(
            "without a target_version it undoes the newest applied migration, so a second "
            "run undoes one more; with one, a down script may still act outside its "
            "transaction (sequences, extensions, other systems): an unknown outcome is for a human"
        ),
        summary="apply down migrations newest first, each in its own transaction",
        data="restore",
    ),
    # Scenario 5, in the runbook's order. None of them can remove a volume, prune or reset
    # a repository: no handler calls anything that does (tests/unit/test_no_destroying_action).
    "system.snapshot": ActionSpec(
        Risk.SAFE,
        (),
        ("dir", "lines", "best_effort"),
        idempotence=always("it only reads the engine; a second run writes another folder"),
        summary="keep the project's containers, logs, df, memory, volumes and the journal's "
        "last hour in a forensics folder",
        data="captures",
    ),
    "system.emergency_stop": ActionSpec(
        Risk.RISKY,
        ("tiers",),
        ("force", "stop_timeout"),
        idempotence=always("stopping stopped services changes nothing"),
        summary="stop every service tier by tier (stateful ones last, only with force)",
    ),
    "system.resources": ActionSpec(
        Risk.SAFE,
        ("checks",),
        (),
        idempotence=READ_ONLY,
        summary="the host's disk and memory below the policy's limits, read by its probes",
    ),
    # Risky, not destructive: it recreates containers from their last known good records
    # (service.revert's recreate) and keeps every volume; what it loses is what a
    # running container held outside its volumes, and the time the services are down.
    "system.rebuild": ActionSpec(
        Risk.RISKY,
        (),
        ("tiers", "services"),
        idempotence=always(
            "it recreates each service from its last known good record, a fixed target; a "
            "replica already on it and up is left alone"
        ),
        summary="recreate every application service from its last known good record, front "
        "end last, volumes kept",
    ),
}
