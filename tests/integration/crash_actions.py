"""The crash matrix's harness actions: what Alertmanager and people do, besides sandbox faults.

A scenario of tests/integration/crash_matrix.py is a sequence of steps; a sandbox
fault is injected once, while an *action* is polled until it took effect, the
daemon revived before each poll. An action re-sends what a kill cut off, as the
real sender would: Alertmanager retries a webhook that got no 200, a person
approves again when the page still says the plan waits. So a kill inside the
receiver's or the approval's own write (both served by the daemon process, whose
HTTP API runs in it: watchdog/commands/runner.py) is followed the way production
would follow it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.alertmanager_payloads import alert, webhook
from watchdog.keys import new_key
from watchdog.people import add_person, new_token
from watchdog.sandbox.stack import SandboxStack

ALERTMANAGER_TOKEN = new_key()  # `watchdog run` refuses a guessable one
#: The two distinct `team` people the stateful plan's quorum needs (songnodes.yaml P2).
APPROVERS = ("tara", "tom")
#: The on-call engineer who ends an incident by hand (`close_roles`: oncall, lead).
ON_CALL = "olga"


@dataclass(slots=True)
class Context:
    """What a harness action works on, and the little it must remember between polls."""

    url: str
    stack: SandboxStack
    db: Path
    tokens: dict[str, str]
    done: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Action:
    """A step of a scenario that is not a sandbox fault: what Alertmanager or a person does.

    `poll` is called on every poll of the step, the daemon revived first; it does what is
    still to do (idempotently: a POST the kill cut off is sent again, as Alertmanager and a
    person would) and returns True once its own part has taken effect. The step is over when
    that is so, every incident is final, `until` holds and, if `opens`, a new incident exists."""

    title: str
    poll: Callable[[Context], bool]
    opens: bool = True
    #: What else must hold before the step is over (a follow-up incident opened).
    until: Callable[[Context], bool] | None = None


BREAKER_LABELS = {"severity": "critical", "component": "api_gateway",
                  "category": "circuit_breaker", "provider": "spotify"}


def _post_alert(status: str) -> Callable[[Context], bool]:
    """Alertmanager's CircuitBreakerOpen for spotify, sent until answered 200 (it retries)."""
    key = f"alert {status}"
    body = webhook(alert("CircuitBreakerOpen", status=status, summary="spotify breaker OPEN",
                         **BREAKER_LABELS))

    def poll(ctx: Context) -> bool:
        if key not in ctx.done and _post(
            ctx.url + "/api/alertmanager", body, ALERTMANAGER_TOKEN
        ) == 200:
            ctx.done.add(key)
        return key in ctx.done

    return poll


def _redis_down_then_approved(ctx: Context) -> bool:
    """Redis crashes (P2 stateful: the plan waits for two distinct `team` approvals); each
    approver approves every incident awaiting approval through the daemon's own API, so the
    approval's write and the daemon's writes after it are the daemon process's. A refusal
    (409: already counted, no longer awaiting) is an answer too; a cut connection is not."""
    if "injected" not in ctx.done:
        ctx.stack.inject("crash", service="redis")
        ctx.done.add("injected")
    waiting = _rows(ctx.db, "SELECT id, updated_at FROM incidents"
                            " WHERE state = 'awaiting_approval' AND closed_at IS NULL")
    body = {"comment": "crash matrix: redis data is safe"}
    for row in waiting:
        for person in APPROVERS:
            # Per request for approval: a restart that asks again (the plan ran on an
            # approval, which does not carry over) is answered again, as a person would.
            key = f"approved {row['id']} {row['updated_at']} {person}"
            url = f"{ctx.url}/api/incidents/{row['id']}/approve"
            if key not in ctx.done and _post(url, body, ctx.tokens[person]) in (200, 409):
                ctx.done.add(key)
    return True


def _redis_down_then_closed_by_hand(ctx: Context) -> bool:
    """Redis crashes (P2 stateful: its plan waits for approval and pages); the on-call
    engineer starts it by hand and ends the incident through the daemon's own API, so the
    close (and the resolve page it calls for) is the daemon process's write. Sent again
    while the incident still awaits approval (a kill before the close's commit)."""
    if "injected" not in ctx.done:
        ctx.stack.inject("crash", service="redis")
        ctx.done.add("injected")
    waiting = _rows(ctx.db, "SELECT id FROM incidents"
                            " WHERE state = 'awaiting_approval' AND closed_at IS NULL")
    for row in waiting:
        if "started" not in ctx.done:
            ctx.stack.control.start("redis")
            ctx.done.add("started")
        body = {"comment": "crash matrix: redis started by hand, nothing lost"}
        url = f"{ctx.url}/api/incidents/{row['id']}/close"
        _post(url, body, ctx.tokens[ON_CALL])
    # Done once redis was started and nothing awaits approval any more: the close landed
    # (its reply may have been cut by the kill, as a person would see on the incident page).
    return "started" in ctx.done and not waiting


def _reenabled(ctx: Context) -> bool:
    """The follow-up incident that enables the disabled provider again has closed."""
    return bool(_rows(ctx.db, "SELECT 1 FROM incidents WHERE key LIKE 'reenable/%'"
                              " AND closed_at IS NOT NULL"))


def _rows(db: Path, sql: str) -> list[sqlite3.Row]:
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        conn.close()


def _post(url: str, body: dict[str, Any], token: str) -> int | None:
    """The reply's status, or None when the connection was cut (the daemon died)."""
    with contextlib.suppress(httpx.HTTPError):
        reply = httpx.post(url, json=body, timeout=5, headers={"Authorization": f"Bearer {token}"})
        return reply.status_code
    return None


def write_people(folder: Path) -> tuple[Path, dict[str, str]]:
    """A people file with the approvers (role team), the on-call engineer and their tokens."""
    path = folder / "people.yaml"
    tokens = {}
    for name, role in [*((a, "team") for a in APPROVERS), (ON_CALL, "oncall")]:
        tokens[name] = new_token()
        add_person(path, name, [role], tokens[name])
    return path, tokens


#: Alertmanager's CircuitBreakerOpen for spotify (rule alert-circuit-breaker-open, P2
#: provider_failure: the provider is disabled, the incident verified and resolved while
#: the alert still fires, so its firing is settled), then the alert's resolved form; then,
#: spotify being healthy, the follow-up incident that enables it again (the world as
#: before). The receiver's record_alerts and the resolve's settle_alerts. The P3
#: non-critical-alert would not do: it closes only once its alert is resolved, when no
#: firing is left to settle, so it never reaches settle_alerts.
ALERT_FIRED_AND_RESOLVED = (
    Action("CircuitBreakerOpen firing", _post_alert("firing")),
    Action("CircuitBreakerOpen resolved", _post_alert("resolved"), opens=False,
           until=_reenabled),
)
#: Redis down: a P2 stateful plan that waits for two team approvals, given through the
#: daemon's API (served in the daemon process: record_approval is its write).
APPROVAL = (Action("redis down, approved by tara and tom", _redis_down_then_approved),)
#: Redis down, its plan waiting for approval; the on-call engineer starts it by hand and
#: closes the incident through the daemon's API: close_by_human and the resolve page.
HUMAN_CLOSE = (Action("redis down, started and closed by hand by olga",
                      _redis_down_then_closed_by_hand),)
