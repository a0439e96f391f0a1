"""Sentry: the daemon's own failures, reported with every secret scrubbed first.

With `SENTRY_DSN` set, `init_sentry` starts sentry-sdk and puts a structlog
processor in front of the log pipeline, so every error the daemon already logs
with its traceback (a failed tick, a crashed plan or preflight, a stuck outbox)
is reported where it happens, with no second call site to forget.
`report_failed_rollback` reports the rollbacks that failed and went to a human.

sentry-sdk sends frame locals (`include_local_variables`) and scrubs them only
by a fixed list of key names, so `Scrubber.before_send` (watchdog/scrub.py: the
one scrubber, shared with the log pipeline and the CLI) walks the whole event
(message, extras, tags, breadcrumbs, exception values and every frame's
locals) and removes: values under sensitive key names, every configured secret
wherever it appears, credentials inside URLs, bearer and GenieKey headers, and
Slack webhook paths.

sentry-sdk is imported by `init_sentry` only: a daemon without `SENTRY_DSN`
does not carry it (4 MB), and the report functions find it already loaded or
know it is off.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

from watchdog.scrub import (
    FILTERED,
    SECRET_PATTERNS,
    SENSITIVE_KEY,
    Scrubber,
    process_scrubber,
    register_secrets,
)

__all__ = ["FILTERED", "SECRET_PATTERNS", "SENSITIVE_KEY", "Scrubber", "init_sentry"]

LOG_LEVELS_REPORTED = frozenset({"error", "critical", "exception"})


def init_sentry(dsn: str, *, secrets: Iterable[str] = (), environment: str | None = None) -> None:
    """Start reporting to Sentry; `secrets` are added to the process's registry (the DSN
    too), and every event goes through the one scrubber logs and CLI errors use."""
    import sentry_sdk

    register_secrets([*secrets, dsn])
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        include_local_variables=True,
        trace_propagation_targets=[],  # no trace headers on pages sent to the vendors
        before_send=_before_send,
        before_send_transaction=_before_send,
        before_breadcrumb=lambda crumb, hint: process_scrubber().scrub(crumb),
    )
    processors = list(structlog.get_config()["processors"])
    if report_logged_errors not in processors:
        structlog.configure(processors=[report_logged_errors, *processors])


def _before_send(event: Any, hint: Any) -> Any:
    """The registry's scrubber as it is when the event is sent (secrets registered later
    count too)."""
    return process_scrubber().before_send(event, hint)


def report_logged_errors(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: an error logged with a traceback (or without) goes to Sentry."""
    sentry_sdk = _active_sentry() if method_name in LOG_LEVELS_REPORTED else None
    if sentry_sdk is None:
        return event_dict
    exc_info = event_dict.get("exc_info")
    event = str(event_dict.get("event", "error"))
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("log_event", event)
        for key, value in event_dict.items():
            if key not in ("exc_info", "event"):
                scope.set_extra(key, value)
        if exc_info:
            error = sys.exc_info() if exc_info is True else exc_info
            sentry_sdk.capture_exception(error)
        else:
            sentry_sdk.capture_message(event, level="error")
    return event_dict


def report_failed_rollback(incident_id: int, reason: str) -> None:
    """A rollback that failed and escalated to a human; a no-op when Sentry is off."""
    sentry_sdk = _active_sentry()
    if sentry_sdk is None:
        return
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("incident", str(incident_id))
        scope.set_tag("log_event", "rollback_failed")
        scope.set_extra("reason", reason)
        sentry_sdk.capture_message(
            f"rollback failed for incident {incident_id}: {reason}", level="error"
        )


def flush_sentry(timeout: float = 2.0) -> None:
    sentry_sdk = _active_sentry()
    if sentry_sdk is not None:
        sentry_sdk.flush(timeout=timeout)


def _active_sentry() -> Any:
    """The sentry_sdk module when a client is active, else None; never imports it: if
    nothing has loaded it, nothing started it."""
    sentry_sdk = sys.modules.get("sentry_sdk")
    if sentry_sdk is None or not sentry_sdk.get_client().is_active():
        return None
    return sentry_sdk
