"""The web page: open incidents, pending approvals and recent rollbacks, in plain HTML.

Server-rendered with Jinja2 (autoescaped: every value from the journal is
HTML-escaped), plain forms, no JavaScript: it works from a terminal browser in
the middle of an incident. While a plan runs, the incident page refreshes itself
with a `<meta http-equiv="refresh">`, so its steps appear as they run.

Sessions are a signed cookie (`api.sessions`; HttpOnly, SameSite=Strict) holding
a random session id and, once signed in with a name and personal token, the
person's name. The read pages need a signed-in person (any role) or a read key
(`api.access`); sign-in failures are rate-limited per client address, and the
token's scrypt runs in the people file's bounded pool. Every form POST, sign-in
included, carries a CSRF token derived from the session id and is refused
without it. Decisions and closes go through the same rules as the API and the
CLI (`engine.approvals`, `engine.closing`).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from watchdog.api.access import FailureLimiter, ReadAccess, bearer_of, client_of
from watchdog.api.followupsweb import open_followups, report_response
from watchdog.api.sessions import SESSION_SECONDS, Session, Sessions
from watchdog.api.statusweb import strip_for
from watchdog.api.webvalues import glance_of, incident_summary, incident_values, rollback_summary
from watchdog.engine.approvals import AWAITING, Refused, record_decision
from watchdog.engine.closing import DEFAULT_CLOSE_ROLES, close_incident
from watchdog.metrics import Metrics
from watchdog.people import Busy, People, Person
from watchdog.policy.explainvalues import PolicyPlaces
from watchdog.policy.schema import FollowupSpec, Policy
from watchdog.store import render
from watchdog.store.journal import Journal

COOKIE = "watchdog_session"
FORM_LIMIT = 16 * 1024
TEMPLATES = Path(__file__).parent / "templates"
NO_PEOPLE = (
    "No one can sign in yet: this daemon has no people file. Add the first person with "
    "`watchdog people add NAME --role oncall --people FILE` (it prints their personal token "
    "once), restart the daemon with WATCHDOG_PEOPLE=FILE, and sign in here with that name "
    "and token."
)
SECURITY_HEADERS = {
    # No script at all, styles only inline, forms only to this page, and never framed:
    # an Approve button inside someone else's page would be a click away from a vote.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def templates() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined
    )
    environment.globals.update(iso=render.iso_utc, clock=render.clock_utc, age=render.age)
    return environment


def web_router(
    journal: Journal,
    people: People | None,
    metrics: Metrics,
    clock: Callable[[], float],
    secret: bytes | None = None,
    *,
    close_roles: Sequence[str] = DEFAULT_CLOSE_ROLES,
    access: ReadAccess | None = None,
    followup_items: Sequence[FollowupSpec] | None = None,
    approval_expires: float | None = None,
    policy: Policy | None = None,
    places: PolicyPlaces | None = None,
) -> APIRouter:
    """`access` is the API's read check (shared, so failures count once per client);
    `policy` and its `places` let the incident page's "why" cite file and line."""
    router = APIRouter(include_in_schema=False)
    sessions = Sessions(secret or secrets.token_bytes(32), clock)
    pages = templates()
    access = access or ReadAccess(people, None, FailureLimiter(clock))
    limiter = access.limiter

    def who(session: Session | None) -> Person | None:
        if session is None or session.person is None or people is None:
            return None
        return people.named(session.person)

    def page(
        request: Request,
        name: str,
        status: int = 200,
        *,
        session: Session | None = None,
        **values: Any,
    ) -> HTMLResponse:
        """Render with the session (a fresh anonymous one if none), setting its cookie."""
        session = session or sessions.read(request.cookies.get(COOKIE)) or sessions.new()
        html = pages.get_template(name).render(
            person=who(session),
            csrf=sessions.csrf(session),
            people_configured=people is not None,
            now=clock(),
            status=strip_for(journal, name, clock()),
            **values,
        )
        response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
        _set_cookie(response, request, sessions.cookie(session))
        return response

    def index_values() -> dict[str, Any]:
        records = journal.list_incidents(limit=100, include_closed=True)
        opened = [r for r in records if r.is_open]
        pending = [incident_summary(journal, r) for r in opened if r.state == AWAITING]
        rollbacks = [
            rollback
            for r in records
            if (rollback := rollback_summary(r, journal.steps(r.id))) is not None
        ][:20]
        plans = {r.id: journal.plan(r.id) for r in opened}
        glances = {r.id: glance_of(journal, r, clock(), approval_expires) for r in opened}
        return {"opened": opened, "plans": plans, "glances": glances, "pending": pending,
                "rollbacks": rollbacks, "shadow": journal.shadow_decisions(limit=20),
                "followups": open_followups(journal, people, clock())}

    @router.get("/")
    def root() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=303)

    async def refused_reader(request: Request, back: str) -> Response | None:
        """None when a signed-in person (or a read key, for scripts) asks; else the page
        saying how to sign in, or how to add the first person when there is no one."""
        session = sessions.read(request.cookies.get(COOKIE))
        if await run_in_threadpool(who, session) is not None:
            return None
        if bearer_of(request):
            allowed = await access.reader(request)
            return allowed if isinstance(allowed, Response) else None
        hint = None if people is None else await run_in_threadpool(people.hint)
        message = (
            NO_PEOPLE if people is None
            else f"Sign in: {hint}." if hint is not None
            else "Sign in with your name and personal token (top right) to see the incidents."
        )
        return page(request, "message.html", 401, session=session, title="Sign in",
                    message=message, next=back)

    @router.get("/ui/", response_class=HTMLResponse)
    async def index(request: Request) -> Response:
        refused = await refused_reader(request, "/ui/")
        if refused is not None:
            return refused
        values = await run_in_threadpool(index_values)
        return page(request, "index.html", **values)

    @router.get("/ui/incidents/{incident_id}", response_class=HTMLResponse)
    async def incident(
        request: Request, incident_id: int, closing: bool = False, recorded: str = ""
    ) -> Response:
        refused = await refused_reader(request, f"/ui/incidents/{incident_id}")
        if refused is not None:
            return refused
        try:
            values = await run_in_threadpool(
                incident_values, journal, incident_id, clock(), approval_expires, policy, places
            )
            if closing:  # someone is writing why they close it: no refresh under them
                values["refresh"] = 0
            said = RECORDED.get(recorded, "")
            return page(request, "incident.html", close_roles=close_roles, recorded=said,
                        **values)
        except KeyError:
            return no_incident(request, incident_id)

    def no_incident(request: Request, incident_id: int) -> Response:
        return page(request, "message.html", 404, title="Not found",
                    message=f"There is no incident {incident_id}.")

    @router.get("/ui/incidents/{incident_id}/report.md")
    async def report(request: Request, incident_id: int) -> Response:
        refused = await refused_reader(request, f"/ui/incidents/{incident_id}")
        if refused is not None:
            return refused
        answer = await run_in_threadpool(
            report_response, journal, people, incident_id, clock(), SECURITY_HEADERS
        )
        return answer if answer is not None else no_incident(request, incident_id)

    async def form_of(request: Request) -> FormData | None:
        try:
            if int(request.headers.get("content-length") or 0) > FORM_LIMIT:
                return None
            return await request.form(max_files=0, max_fields=10, max_part_size=FORM_LIMIT)
        except Exception:  # any malformed body is a 400, never a 500
            return None

    async def checked(request: Request) -> tuple[FormData, Session] | Response:
        """The form and the session, if the CSRF token matches; else the refusal page."""
        form = await form_of(request)
        if form is None:
            return page(
                request,
                "message.html",
                400,
                title="Bad request",
                message="The form could not be read.",
            )
        session = sessions.read(request.cookies.get(COOKIE))
        if session is None or not sessions.csrf_ok(session, _field(form, "csrf")):
            return page(
                request,
                "message.html",
                403,
                title="Form expired",
                message="This form was not issued by this page, or it expired. "
                "Go back, reload the page and try again.",
            )
        return form, session

    @router.post("/ui/signin", response_class=HTMLResponse)
    async def sign_in(request: Request) -> Response:
        result = await checked(request)
        if isinstance(result, Response):
            return result
        form, before = result
        client = client_of(request)
        verdict = limiter.verdict(client)
        if not verdict.allowed:  # before any hashing: guessing costs the guesser time
            refused = page(request, "message.html", 429, title="Too many attempts",
                           message=f"Too many failed sign-ins from this address: {verdict.reason}.")
            refused.headers["Retry-After"] = str(int(verdict.retry_after))
            return refused
        name, token = _field(form, "name"), _field(form, "token")
        try:
            person = (
                await run_in_threadpool(people.sign_in, name, token)
                if people is not None and name and token
                else None
            )
        except Busy:
            busy = page(request, "message.html", 503, title="Busy",
                        message="Too many sign-ins at once; try again in a second.")
            busy.headers["Retry-After"] = "1"
            return busy
        if person is None:
            limiter.failed(client)
            return page(
                request,
                "message.html",
                401,
                title="Not signed in",
                message="That name and personal token do not match anyone here.",
            )
        response = RedirectResponse(_local(_field(form, "next")), status_code=303)
        # A new session id on sign-in, so a session planted before it is worthless after.
        sessions.revoke(before)
        _set_cookie(response, request, sessions.cookie(sessions.new(person.name)))
        return response

    @router.post("/ui/signout", response_class=HTMLResponse)
    async def sign_out(request: Request) -> Response:
        result = await checked(request)
        if isinstance(result, Response):
            return result
        sessions.revoke(result[1])
        response = RedirectResponse("/ui/", status_code=303)
        _set_cookie(response, request, sessions.cookie(sessions.new()))
        return response

    async def as_person(
        request: Request, incident_id: int, act: Callable[[Person, str, float], object],
        done: str,
    ) -> Response:
        """Run `act(person, comment, now)` for the signed-in person (approve, reject, close):
        every refusal of the shared rules becomes a page with its status."""
        result = await checked(request)
        if isinstance(result, Response):
            return result
        form, session = result
        person = await run_in_threadpool(who, session)
        back = f"/ui/incidents/{incident_id}"
        if person is None:
            why = "Sign in with your name and personal token to decide or close."
            return page(request, "message.html", 401, session=session, title="Not signed in",
                        message=why, back=back)
        try:
            await run_in_threadpool(act, person, _field(form, "comment").strip(), clock())
        except Refused as refused:
            return page(request, "message.html", refused.status, session=session,
                        title="Not recorded", message=refused.message, back=back)
        return RedirectResponse(f"{back}?recorded={done}", status_code=303)

    def decider(incident_id: int, decision: str) -> Callable[[Person, str, float], object]:
        return lambda person, comment, at: record_decision(
            journal, incident_id=incident_id, person=person, decision=decision,
            comment=comment, at=at, metrics=metrics,
        )

    @router.post("/ui/incidents/{incident_id}/approve", response_class=HTMLResponse)
    async def approve(request: Request, incident_id: int) -> Response:
        return await as_person(request, incident_id, decider(incident_id, "approve"), "approve")

    @router.post("/ui/incidents/{incident_id}/reject", response_class=HTMLResponse)
    async def reject(request: Request, incident_id: int) -> Response:
        return await as_person(request, incident_id, decider(incident_id, "reject"), "reject")

    @router.post("/ui/incidents/{incident_id}/close", response_class=HTMLResponse)
    async def close(request: Request, incident_id: int) -> Response:
        return await as_person(
            request,
            incident_id,
            lambda person, comment, at: close_incident(
                journal, incident_id=incident_id, person=person, comment=comment,
                close_roles=close_roles, at=at, followup_items=followup_items,
            ),
            "close",
        )

    return router


# ---- what the pages show ---------------------------------------------------------

#: What the incident page confirms after a person's decision (`?recorded=`), in words.
RECORDED = {
    "approve": "Your approval is recorded. Once the quorum is met the daemon starts the plan "
    "on its next tick; this page follows it.",
    "reject": "Your rejection is recorded: the plan will not run and the incident is "
    "escalated to a person.",
    "close": "Your close is recorded: the incident is closed and its follow-ups are owed.",
}


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _local(target: str) -> str:
    """Only a path on this page after sign-in: never an open redirect elsewhere."""
    if target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/"


def _set_cookie(response: Response, request: Request, value: str) -> None:
    response.set_cookie(
        COOKIE,
        value,
        max_age=SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
