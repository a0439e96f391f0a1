"""The daemon's HTTP face: /healthz, /metrics, /incidents, and the routers beside them.

Small on purpose: it reads the journal and the metrics registry, and decides
nothing. `/healthz` and `/metrics` are open; `/incidents` (evidence, plans, step
outputs) needs a person or the read token (`api.access`). The Alertmanager
receiver (`POST /api/alertmanager`), the approval and close APIs and the web
page (`/ui/`) only write what they are told into the journal; the daemon's tick
is what acts on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from watchdog.api.access import FailureLimiter, ReadAccess
from watchdog.api.alertmanager import AlertSink, ReceiverSettings, alertmanager_router
from watchdog.api.approvals import approvals_router
from watchdog.api.closing import closing_router
from watchdog.api.web import web_router
from watchdog.engine.approvals import find_incident
from watchdog.engine.closing import DEFAULT_CLOSE_ROLES
from watchdog.engine.health import Health
from watchdog.metrics import Metrics
from watchdog.people import People
from watchdog.policy.explainvalues import PolicyPlaces
from watchdog.policy.schema import FollowupSpec, Policy
from watchdog.store.journal import Journal
from watchdog.store.pg_base import JournalUnavailable
from watchdog.store.records import IncidentRecord

LIST_LIMIT = 1000  # incidents in one answer of GET /incidents


def create_app(
    journal: Journal,
    metrics: Metrics,
    health: Health,
    clock: Callable[[], float],
    *,
    alerts: AlertSink | None = None,
    receiver: ReceiverSettings | None = None,
    people: People | None = None,
    close_roles: Sequence[str] = DEFAULT_CLOSE_ROLES,
    read_token: str | None = None,
    followup_items: Sequence[FollowupSpec] | None = None,
    approval_expires: float | None = None,
    policy: Policy | None = None,
    places: PolicyPlaces | None = None,
) -> FastAPI:
    """`close_roles` are the policy's: who may end an incident by hand (API and web page).
    `read_token` (WATCHDOG_READ_TOKEN) reads the incidents as a person would; None: people only.
    `followup_items` (the policy's; None: the runbook's) are owed when a person closes one.
    `policy` and `places` (its file's lines) make the incident page's "why" cite them."""
    # No /docs, /redoc nor /openapi.json: every route but /healthz and /metrics needs a key.
    app = FastAPI(title="watchdog", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(JournalUnavailable)
    def journal_away(request: Request, error: JournalUnavailable) -> JSONResponse:
        """The journal's database is away (a sidecar cut from it, a restart): say so, and
        that another sidecar may answer, rather than a bare 500."""
        return JSONResponse(
            {"detail": f"the journal is unavailable: {error}; retry, or ask another sidecar"},
            status_code=503, headers={"Retry-After": "2"},
        )
    access = ReadAccess(people, read_token, FailureLimiter(clock))
    if alerts is not None:
        app.include_router(alertmanager_router(alerts, receiver or ReceiverSettings(), metrics))
    app.include_router(approvals_router(journal, people, metrics, clock))
    app.include_router(closing_router(journal, people, close_roles, clock, followup_items))
    app.include_router(
        web_router(
            journal, people, metrics, clock, close_roles=close_roles, access=access,
            followup_items=followup_items, approval_expires=approval_expires,
            policy=policy, places=places,
        )
    )

    def approvers() -> dict[str, Any]:
        """Who can approve: a sidecar started with nobody in its people file says how to add
        the first person (it still runs, and pages and waits for what needs approval)."""
        if people is None:
            return {"people": 0, "hint": "no people file: set WATCHDOG_PEOPLE (see the README)"}
        return {"people": len(people.everyone()), "hint": people.hint()}

    @app.get("/healthz")
    def healthz(response: Response) -> dict[str, Any]:
        now = clock()
        behind = now - health.last_tick_at if health.ticks else None
        alive = behind is not None and behind < 10.0
        if not alive:
            response.status_code = 503
        return {
            "status": "ok" if alive else "starting" if health.ticks == 0 else "stalled",
            "seconds_since_last_tick": behind,
            **asdict(health),
            "approvers": approvers(),
        }

    @app.get("/metrics")
    def metrics_page() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/incidents")
    async def incidents(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=LIST_LIMIT)] = 50,
        open_only: bool = False,
    ) -> Any:
        if isinstance(refused := await access.reader(request), JSONResponse):
            return refused

        def listed() -> dict[str, Any]:
            records = journal.list_incidents(limit=limit, include_closed=not open_only)
            return {"incidents": [incident_json(journal, r) for r in records]}

        return await run_in_threadpool(listed)

    @app.get("/incidents/{incident_id}")
    async def incident(request: Request, incident_id: int) -> Any:
        if isinstance(refused := await access.reader(request), JSONResponse):
            return refused
        try:
            # any int, not only SQLite's: one past 2**63 is no incident, not a 500
            record = await run_in_threadpool(find_incident, journal, incident_id)
        except KeyError:
            return JSONResponse({"detail": f"no incident {incident_id}"}, status_code=404)
        return await run_in_threadpool(incident_json, journal, record)

    return app


def incident_json(journal: Journal, record: IncidentRecord) -> dict[str, Any]:
    plan = journal.plan(record.id)
    return {
        "id": record.id,
        "key": record.key,
        "severity": record.severity.value,
        "scenario": record.scenario,
        "subject": record.subject,
        "state": record.state,
        "reason": record.reason,
        "opened_at": record.opened_at,
        "closed_at": record.closed_at,
        "plan": None
        if plan is None
        else {
            "title": plan.title,
            "reason": plan.reason,
            "authorization": {
                "mode": plan.authorization.mode.value,
                "reason": plan.authorization.reason,
            },
            "steps": [
                {"name": s.name, "action": s.action, "risk": s.risk.value} for s in plan.steps
            ],
            "impact": list(plan.impact),
            "prechecks": [asdict(c) for c in plan.prechecks],
        },
        "steps": [
            {
                "index": s.index,
                "name": s.name,
                "status": s.status,
                "attempt": s.attempt,
                "started_at": s.started_at,
                "finished_at": s.finished_at,
                "output": s.output,
            }
            for s in journal.steps(record.id)
        ],
        "timeline": [
            {"at": e.at, "kind": e.kind, "summary": e.summary} for e in journal.timeline(record.id)
        ],
    }
