"""The actions a plan may name: what each needs and how much harm it can do.

This is the contract between policy files and the executor's backends. The policy
validator rejects a step that names an action missing here or omits a required
parameter, so a typo is caught by `watchdog validate`, not at 3 a.m. in the middle
of a rollback. Which backend carries an action out (the sandbox, Docker,
PostgreSQL) is the executor's business, not the policy's.
"""

from __future__ import annotations

from dataclasses import dataclass

from watchdog.model import Risk


@dataclass(frozen=True, slots=True)
class ActionSpec:
    risk: Risk
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    idempotent: bool = True
    summary: str = ""


ACTIONS: dict[str, ActionSpec] = {
    "service.restart": ActionSpec(
        Risk.SAFE, ("services",), ("stop_timeout",), summary="restart services' containers"
    ),
    "service.stop": ActionSpec(Risk.SAFE, ("services",), ("stop_timeout",), summary="stop"),
    "service.start": ActionSpec(Risk.SAFE, ("services",), (), summary="start services"),
    "service.restart_dependents": ActionSpec(
        Risk.SAFE,
        ("services",),
        ("stop_timeout",),
        summary="restart every service that depends on these, in dependency order",
    ),
    "service.revert": ActionSpec(
        Risk.RISKY, ("service",), (), summary="recreate a service from its last good image"
    ),
    "config.backup": ActionSpec(Risk.SAFE, ("table",), (), summary="copy the live table"),
    "config.restore": ActionSpec(
        Risk.SAFE,
        ("table",),
        ("source", "defaults"),
        summary="restore the last known good table (or the policy's defaults file)",
    ),
    "config.reload": ActionSpec(Risk.SAFE, ("target",), (), summary="POST /admin/config/reload"),
    "config.verify": ActionSpec(
        Risk.SAFE, ("target", "table"), (), summary="GET /admin/config matches the table"
    ),
    "provider.disable": ActionSpec(
        Risk.SAFE, ("provider", "table"), ("mode",), summary="take a provider out of use"
    ),
    "provider.enable": ActionSpec(
        Risk.SAFE,
        ("incident",),
        (),
        summary="put back exactly the rows an incident's provider.disable changed, "
        "leaving rows edited since alone",
    ),
    "breaker.reset": ActionSpec(
        Risk.SAFE, ("target", "provider"), (), summary="reset a gateway circuit breaker"
    ),
    "smoke_test": ActionSpec(
        Risk.SAFE, ("target", "path", "body"), ("expect",), summary="one real request"
    ),
    "http.call": ActionSpec(
        Risk.SAFE, ("target", "method", "path"), ("body", "expect_status"), summary="HTTP call"
    ),
    "wait": ActionSpec(Risk.SAFE, ("seconds",), (), summary="let the system settle"),
    "database.dump": ActionSpec(
        Risk.SAFE, ("dir",), (), summary="pg_dump the current state for forensics"
    ),
    "database.backup": ActionSpec(
        Risk.SAFE,
        ("backup_dir",),
        (),
        summary="a fresh gzip'd pg_dump named like the stack's own backups",
    ),
    "database.integrity": ActionSpec(
        Risk.SAFE,
        ("checks",),
        ("statement_timeout",),
        summary="read-only integrity queries that must hold",
    ),
    "database.restore": ActionSpec(
        Risk.RISKY,
        ("backup_dir",),
        ("max_backup_age", "backup", "pattern", "migration_dirs", "target_version", "base_dir"),
        idempotent=False,
        summary="restore the newest database backup, in one transaction",
    ),
    "migrations.down": ActionSpec(
        Risk.RISKY,
        ("migration_dirs",),
        ("target_version", "base_dir"),
        idempotent=False,
        summary="apply down migrations newest first, each in its own transaction",
    ),
    "system.rebuild": ActionSpec(
        Risk.DESTRUCTIVE,
        (),
        ("services",),
        idempotent=False,
        summary="rebuild the whole stack (removes volumes)",
    ),
}
