"""`POST /api/incidents/{id}/close`: a person ends an incident, by personal token.

The same identity and body as the approval API (`watchdog.api.approvals`):
`Authorization: Bearer <personal token>`, a JSON body `{"comment": "..."}`, here
required. The checks run in the same order, so nothing about an incident leaks
to a caller without a valid identity: 401 (no or unknown token), 413 (body too
large), 422 (bad body or empty comment), then the rules shared with the web page
and the CLI (`engine.closing`): 404, 403, 409. The close is only journaled; a
running daemon lets go of the incident on its next tick.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from watchdog.api.approvals import _error, signed_comment
from watchdog.engine.approvals import Refused
from watchdog.engine.closing import Closed, close_incident
from watchdog.people import People
from watchdog.policy.schema import FollowupSpec
from watchdog.store.journal import Journal


def closing_router(
    journal: Journal,
    people: People | None,
    close_roles: Sequence[str],
    clock: Callable[[], float],
    followup_items: Sequence[FollowupSpec] | None = None,
) -> APIRouter:
    router = APIRouter()

    @router.post("/api/incidents/{incident_id}/close")
    async def close(incident_id: int, request: Request) -> JSONResponse:
        signed = await signed_comment(people, request)
        if isinstance(signed, JSONResponse):
            return signed
        person, body = signed
        try:
            closed = await run_in_threadpool(
                lambda: close_incident(
                    journal,
                    incident_id=incident_id,
                    person=person,
                    comment=body.comment,
                    close_roles=close_roles,
                    at=clock(),
                    followup_items=followup_items,
                )
            )
        except Refused as refused:
            return _error(refused.status, refused.message)
        return JSONResponse(closed_json(closed))

    return router


def closed_json(closed: Closed) -> dict[str, Any]:
    return {
        "incident": closed.incident_id,
        "person": closed.person,
        "role": closed.role,
        "was": closed.was,
        "state": "closed",
        "comment": closed.comment,
        "summary": closed.summary(),
    }
