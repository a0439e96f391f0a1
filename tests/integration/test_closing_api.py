"""Closing an incident over HTTP: `POST /api/incidents/{id}/close` and the page's Close form.

The daemon's app behind a real uvicorn, a real journal and people file (the
approvals fixtures). Each status the API promises and what reaches the journal;
the form's sign-in, CSRF and role checks; the page holding still while someone
writes why; and a hypothesis fuzz: whatever the headers and body, never a 5xx
and never a close without a valid personal token.
"""

from __future__ import annotations

import time
from dataclasses import astuple
from pathlib import Path

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.approvals_fixtures import Api, Crew, api, awaiting, crew
from tests.integration.test_approvals_web import CSRF, browser, csrf_of, sign_in
from tests.served import served
from watchdog.api.app import create_app
from watchdog.demo import POLICY
from watchdog.engine.approvals import COMMENT_LIMIT
from watchdog.engine.health import Health
from watchdog.metrics import Metrics
from watchdog.people import People
from watchdog.policyfile import load_policy
from watchdog.store.journal import Journal, open_journal

__all__ = ["api", "crew"]  # pytest fixtures, used by name

P1 = "database_migration_failure"


def url(incident: int | str) -> str:
    return f"/api/incidents/{incident}/close"


def running(api: Api) -> int:
    """An incident whose approved plan is executing (its page refreshes itself)."""
    incident = awaiting(api.journal, api.policy, P1)
    api.journal.set_state(incident, state="executing", at=time.time(), reason="approved")
    return incident


def unchanged(journal: Journal, incident: int) -> tuple[object, ...]:
    return astuple(journal.incident(incident)), len(journal.timeline(incident))


def test_the_oncall_closes_a_running_incident_and_it_is_on_the_timeline(api: Api) -> None:
    incident = running(api)
    response = api.client.post(
        url(incident), json={"comment": "rolled back by hand"}, headers=api.bearer("olga")
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "incident": incident,
        "person": "olga",
        "role": "oncall",
        "was": "executing",
        "state": "closed",
        "comment": "rolled back by hand",
        "summary": f"incident {incident}: closed by olga (oncall), it was executing: rolled "
        "back by hand; a running daemon lets go of it on its next tick",
    }
    record = api.journal.incident(incident)
    assert record.state == "closed" and not record.is_open
    shown = api.client.get(f"/incidents/{incident}", headers=api.bearer("olga")).json()
    assert shown["state"] == "closed" and shown["closed_at"] == record.closed_at
    assert shown["timeline"][-1]["kind"] == "closed_by_human"
    last = shown["timeline"][-1]
    assert last["summary"] == "executing → closed by olga (oncall): rolled back by hand"


def test_without_a_valid_identity_the_answer_is_401_and_nothing_is_written(api: Api) -> None:
    incident = running(api)
    before = unchanged(api.journal, incident)
    lee = api.crew.tokens["lee"]
    for headers in (
        {},
        {"Authorization": f"Basic {lee}"},
        {"Authorization": "Bearer"},
        {"Authorization": f"Bearer {lee}x"},
    ):
        response = api.client.post(url(incident), json={"comment": "x"}, headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"] == "Bearer"
    for missing in (4242, "99999999999999999999"):  # no leak of which incidents exist
        assert api.client.post(url(missing), json={"comment": "x"}).status_code == 401
    assert unchanged(api.journal, incident) == before


def test_every_refusal_has_its_status_and_changes_nothing(api: Api) -> None:
    incident = running(api)
    before = unchanged(api.journal, incident)
    lee = api.bearer("lee")
    cases = [
        (incident, None, "tara", 422, "comment: empty"),
        (incident, {"comment": " "}, "lee", 422, "comment: empty"),
        (incident, {"comment": "x" * (COMMENT_LIMIT + 1)}, "lee", 422, "comment"),
        (incident, {"comment": "x", "force": True}, "lee", 422, "force"),
        (incident, {"comment": "x\x00"}, "lee", 422, "control characters"),
        (4242, {"comment": "x"}, "lee", 404, "no incident 4242"),
        ("99999999999999999999", {"comment": "x"}, "lee", 404, "no incident"),
        (incident, {"comment": "x"}, "tara", 403, "needs one of the roles oncall, lead"),
    ]
    for target, body, who, status, detail in cases:
        response = api.client.post(url(target), json=body, headers=api.bearer(who))
        assert response.status_code == status, (body, response.text)
        assert detail in response.json()["detail"], response.text
    raw = api.client.post(url(incident), content=b"{not json", headers=lee)
    assert raw.status_code == 400 and "not JSON" in raw.json()["detail"]
    deep = api.client.post(url(incident), content=b"[" * 16_000, headers=lee)
    assert deep.status_code == 400 and "recursion limit" in deep.json()["detail"], deep.text
    huge = api.client.post(url(incident), content=b"x" * 20_000, headers=lee)
    assert huge.status_code == 413
    assert unchanged(api.journal, incident) == before

    assert api.client.post(url(incident), json={"comment": "done"}, headers=lee).status_code == 200
    after = unchanged(api.journal, incident)
    again = api.client.post(url(incident), json={"comment": "again"}, headers=lee)
    assert again.status_code == 409 and "already closed" in again.json()["detail"]
    resolved = awaiting(api.journal, api.policy, P1)
    api.journal.set_state(resolved, state="resolved", at=time.time(), reason="ok", closed=True)
    final = api.client.post(url(resolved), json={"comment": "x"}, headers=lee)
    assert final.status_code == 409 and "already resolved" in final.json()["detail"]
    assert unchanged(api.journal, incident) == after


def test_close_roles_are_the_ones_the_app_was_given(tmp_path: Path, crew: Crew) -> None:
    journal = open_journal(str(tmp_path / "journal.db"))
    policy = load_policy(POLICY)
    app = create_app(
        journal,
        Metrics.for_policy(policy),
        Health(started_at=time.time()),
        time.time,
        people=People(crew.path, policy.roles),
        close_roles=["team"],
    )
    incident = awaiting(journal, policy, P1)
    try:
        with served(app) as base, httpx.Client(base_url=base, timeout=10) as client:
            def bearer(name: str) -> dict[str, str]:
                return {"Authorization": f"Bearer {crew.tokens[name]}"}

            lead = client.post(url(incident), json={"comment": "x"}, headers=bearer("lee"))
            assert lead.status_code == 403 and "one of the roles team" in lead.text
            team = client.post(url(incident), json={"comment": "ok"}, headers=bearer("tom"))
            assert team.status_code == 200 and team.json()["role"] == "team"
    finally:
        journal.close()


# The page's form ----------------------------------------------------------------------


def test_a_signed_in_lead_closes_from_the_incident_page(api: Api) -> None:
    incident = awaiting(api.journal, api.policy, P1)
    with browser(api) as client:
        anonymous = client.get(f"/ui/incidents/{incident}")
        assert anonymous.status_code == 401 and "Close incident" not in anonymous.text
        by_key = client.get(f"/ui/incidents/{incident}", headers=api.bearer("tara")).text
        assert f"watchdog incidents close {incident} --as NAME --comment TEXT" in by_key
        token = csrf_of(client)
        form = {"csrf": token, "comment": "x"}
        refused = client.post(f"/ui/incidents/{incident}/close", data=form)
        assert refused.status_code == 401
        sign_in(client, api, "lee")
        page = client.get(f"/ui/incidents/{incident}").text
        assert f'action="/ui/incidents/{incident}/close"' in page and "Close incident" in page
        token = CSRF.search(page).group(1)  # type: ignore[union-attr]
        forged = client.post(f"/ui/incidents/{incident}/close", data={"comment": "x"})
        assert forged.status_code == 403
        empty = client.post(f"/ui/incidents/{incident}/close", data={"csrf": token, "comment": ""})
        assert empty.status_code == 422 and "comment: empty" in empty.text
        assert api.journal.incident(incident).is_open
        done = client.post(
            f"/ui/incidents/{incident}/close", data={"csrf": token, "comment": "false alarm"}
        )
        assert done.status_code == 303
        assert done.headers["location"] == f"/ui/incidents/{incident}?recorded=close"
        shown = client.get(f"/ui/incidents/{incident}").text
        assert "awaiting_approval → closed by lee (lead): false alarm" in shown
        assert "Close incident" not in shown and "Approve</button>" not in shown
        again = client.post(
            f"/ui/incidents/{incident}/close", data={"csrf": token, "comment": "again"}
        )
        assert again.status_code == 409 and "already closed" in again.text
    assert api.journal.incident(incident).state == "closed"


def test_a_person_without_a_close_role_sees_why_and_is_refused(api: Api) -> None:
    incident = running(api)
    before = unchanged(api.journal, incident)
    with browser(api) as client:
        sign_in(client, api, "tara")
        page = client.get(f"/ui/incidents/{incident}").text
        assert "Close incident" not in page
        assert "closing needs one of oncall, lead" in page and "You (team) cannot close" in page
        token = csrf_of(client)
        form = {"csrf": token, "comment": "x"}
        refused = client.post(f"/ui/incidents/{incident}/close", data=form)
        assert refused.status_code == 403 and "may not close" in refused.text
    assert unchanged(api.journal, incident) == before


def test_the_refreshing_page_holds_still_while_someone_writes_why(api: Api) -> None:
    incident = running(api)
    with browser(api) as client:
        sign_in(client, api, "lee")
        page = client.get(f"/ui/incidents/{incident}").text
        assert 'http-equiv="refresh"' in page and "Close incident</button>" not in page
        assert f'href="/ui/incidents/{incident}?closing=1"' in page
        holding = client.get(f"/ui/incidents/{incident}?closing=1").text
        assert 'http-equiv="refresh"' not in holding
        assert "Close incident</button>" in holding


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    authorization=st.one_of(
        st.none(),
        st.text(max_size=60).map(lambda t: t.replace("\n", "").replace("\r", "")),
        st.sampled_from(["Bearer", "Bearer x.y", "bearer ", "Basic abc"]),
    ),
    body=st.one_of(st.none(), st.binary(max_size=200)),
    target=st.sampled_from(["1", "0", "-5", "4242", "99999999999999999999", "abc"]),
)
def test_fuzz_the_close_api_never_a_5xx_never_a_close_without_a_token(
    api: Api, authorization: str | None, body: bytes | None, target: str
) -> None:
    if not api.journal.list_incidents(limit=1):
        awaiting(api.journal, api.policy, P1)
    headers = {} if authorization is None else {"Authorization": authorization}
    try:
        response = api.client.post(url(target), content=body or b"", headers=headers)
    except (httpx.LocalProtocolError, UnicodeEncodeError):
        return  # a header httpx itself will not send
    assert response.status_code < 500, response.text
    assert response.status_code in (401, 404, 422), response.text
    assert api.journal.incident(1).is_open
