"""`POST /api/incidents/{id}/approve` and `/reject`: a person's decision, by personal token.

The identity is `Authorization: Bearer <personal token>` (see `watchdog.people`);
the body is JSON, `{"comment": "..."}`, or empty. The checks run in this order,
so nothing about an incident leaks to a caller without a valid identity: 401 (no
or unknown token), 413 (body too large), 400 (not JSON, or nested too deep), 422
(JSON of the wrong shape), then the rules shared
with the web page and the CLI (`engine.approvals`): 404, 409, 403. The decision
is only journaled; the daemon acts on it on its next tick.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from watchdog.api.bodies import BadBody, read_json
from watchdog.engine.approvals import AWAITING, COMMENT_LIMIT, Recorded, Refused, record_decision
from watchdog.metrics import Metrics
from watchdog.people import Busy, People, Person
from watchdog.store.journal import Journal

BODY_LIMIT = 16 * 1024
EXPECTED = 'a JSON object {"comment": "..."}'


class DecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: str = Field("", max_length=COMMENT_LIMIT, description="why, for the timeline")


async def signed_comment(
    people: People | None, request: Request
) -> tuple[Person, DecisionBody] | JSONResponse:
    """Who is asking (401 without a valid token) and their comment (413, 400, 422): in that
    order, so nothing about an incident leaks to a caller without a valid identity."""
    try:
        person = await run_in_threadpool(bearer_person, people, request)
    except Busy:  # the people file's scrypt pool is full: refused, never queued without end
        return JSONResponse(
            {"detail": "too many token checks at once; try again in a second"},
            status_code=503,
            headers={"Retry-After": "1"},
        )
    if person is None:
        return _error(401, "a valid personal token is needed: Authorization: Bearer <token>")
    try:
        body = DecisionBody.model_validate(
            await read_json(request, BODY_LIMIT, expected=EXPECTED, empty={})
        )
    except BadBody as bad:
        return _error(bad.status, bad.detail)
    except ValidationError as error:
        return _error(422, f"expected {EXPECTED}: {_first(error)}")
    return person, body


def approvals_router(
    journal: Journal, people: People | None, metrics: Metrics, clock: Callable[[], float]
) -> APIRouter:
    router = APIRouter()
    metrics.approvals_pending.set_function(lambda: pending_count(journal))

    async def decide(incident_id: int, request: Request, decision: str) -> JSONResponse:
        signed = await signed_comment(people, request)
        if isinstance(signed, JSONResponse):
            return signed
        person, body = signed
        try:
            recorded = await run_in_threadpool(
                lambda: record_decision(
                    journal,
                    incident_id=incident_id,
                    person=person,
                    decision=decision,
                    comment=body.comment,
                    at=clock(),
                    metrics=metrics,
                )
            )
        except Refused as refused:
            return _error(refused.status, refused.message)
        return JSONResponse(recorded_json(recorded))

    @router.post("/api/incidents/{incident_id}/approve")
    async def approve(incident_id: int, request: Request) -> JSONResponse:
        return await decide(incident_id, request, "approve")

    @router.post("/api/incidents/{incident_id}/reject")
    async def reject(incident_id: int, request: Request) -> JSONResponse:
        return await decide(incident_id, request, "reject")

    return router


def bearer_person(people: People | None, request: Request) -> Person | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if people is None or scheme.lower() != "bearer" or not token.strip():
        return None
    return people.bearer(token.strip())


def pending_count(journal: Journal) -> int:
    return sum(1 for record in journal.open_incidents() if record.state == AWAITING)


def recorded_json(recorded: Recorded) -> dict[str, Any]:
    return {
        "incident": recorded.incident_id,
        "person": recorded.person,
        "role": recorded.role,
        "decision": recorded.decision,
        "approvers": list(recorded.approvers),
        "quorum": recorded.quorum,
        "summary": recorded.summary(),
    }


def _error(status: int, detail: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _first(error: Exception) -> str:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(body)"
        return f"{where}: {first['msg']}"
    return str(error)
