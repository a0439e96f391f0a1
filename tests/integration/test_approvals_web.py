"""The web page's forms over HTTP: sign-in, CSRF, approve and reject, escaping, sign-out.

The daemon's app behind a real uvicorn on 127.0.0.1, a real journal and people
file; httpx plays a browser without JavaScript (cookies, forms). The browser
itself (Chromium) is in test_web_page.py. Hypothesis fuzzes the sign-in and
decision forms: never a 5xx, never a session or a decision without valid
credentials and the session's CSRF token.
"""

from __future__ import annotations

import base64
import json
import re
import time

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.approvals_fixtures import Api, api, awaiting, crew
from watchdog.demo import POLICY
from watchdog.model import Risk, Step

__all__ = ["api", "crew"]  # pytest fixtures, used by name

P1, P2 = "database_migration_failure", "stateful_service_failure"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(client: httpx.Client, path: str = "/ui/") -> str:
    """The form token of the page (for someone not signed in: the sign-in page, a 401)."""
    page = client.get(path)
    assert page.status_code in (200, 401), page.text
    found = CSRF.search(page.text)
    assert found, page.text
    return found.group(1)


def sign_in(client: httpx.Client, api: Api, name: str) -> None:
    token = csrf_of(client)
    response = client.post(
        "/ui/signin", data={"csrf": token, "name": name, "token": api.crew.tokens[name]}
    )
    assert response.status_code == 303, response.text
    assert f"signed in as <strong>{name}</strong>" in client.get("/ui/").text


def browser(api: Api) -> httpx.Client:
    return httpx.Client(base_url=str(api.client.base_url), timeout=10)


def test_the_root_redirects_and_the_session_cookie_is_httponly_and_samesite_strict(
    api: Api,
) -> None:
    root = api.client.get("/", follow_redirects=False)
    assert root.status_code == 303 and root.headers["location"] == "/ui/"
    page = api.client.get("/ui/")
    cookie = page.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert 'action="/ui/signin"' in page.text and "Nothing waits for a human" not in page.text
    assert page.status_code == 401, "the incidents are for people who signed in"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'none'
    assert page.headers["x-frame-options"] == "DENY"


def test_sign_in_needs_the_csrf_token_and_the_right_personal_token(api: Api) -> None:
    with browser(api) as client:
        token = csrf_of(client)
        lee = api.crew.tokens["lee"]
        no_csrf = client.post("/ui/signin", data={"name": "lee", "token": lee})
        assert no_csrf.status_code == 403 and "Form expired" in no_csrf.text
        wrong = client.post("/ui/signin", data={"csrf": token, "name": "lee", "token": lee[:-2]})
        assert wrong.status_code == 401 and lee[:-2] not in wrong.text
        other = client.post("/ui/signin", data={"csrf": token, "name": "tara", "token": lee})
        assert other.status_code == 401
        assert "signed in as" not in client.get("/ui/").text
        sign_in(client, api, "lee")


def test_a_signed_in_lead_approves_from_the_page_and_it_is_journaled(api: Api) -> None:
    incident = awaiting(api.journal, api.policy, P1)
    with browser(api) as client:
        sign_in(client, api, "lee")
        page = client.get(f"/ui/incidents/{incident}")
        assert "Approve</button>" in page.text, page.text[page.text.find("<main>") :][:1500]
        assert "need approval by one lead" in page.text
        token = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
        forged = client.post(f"/ui/incidents/{incident}/approve", data={"comment": "x"})
        assert forged.status_code == 403
        assert api.journal.approvals(incident) == []
        done = client.post(
            f"/ui/incidents/{incident}/approve", data={"csrf": token, "comment": "backup fine"}
        )
        assert done.status_code == 303
        assert done.headers["location"] == f"/ui/incidents/{incident}?recorded=approve"
        (approval,) = api.journal.approvals(incident)
        assert (approval.person, approval.role, approval.comment) == ("lee", "lead", "backup fine")
        shown = client.get(done.headers["location"]).text
        assert "lee (lead) approved: backup fine" in shown
        # Said back, and no second button while the daemon has yet to start the plan.
        assert 'id="recorded">Your approval is recorded.' in shown
        assert "Approve</button>" not in shown
        again = client.post(f"/ui/incidents/{incident}/approve", data={"csrf": token})
        assert again.status_code == 409 and "counts once" in again.text


def test_one_of_a_quorum_of_two_is_told_the_plan_waits_for_one_more(api: Api) -> None:
    incident = awaiting(api.journal, api.policy, P2)
    with browser(api) as client:
        sign_in(client, api, "tara")
        token = CSRF.search(client.get(f"/ui/incidents/{incident}").text).group(1)  # type: ignore[union-attr]
        done = client.post(f"/ui/incidents/{incident}/approve", data={"csrf": token})
        shown = client.get(done.headers["location"]).text
    assert 'id="recorded">Your approval is recorded.' in shown
    assert "You approved this plan; it waits for 1 more team." in shown
    assert "Approve</button>" not in shown


def test_the_csrf_token_of_another_session_is_refused(api: Api) -> None:
    incident = awaiting(api.journal, api.policy, P1)
    with browser(api) as attacker, browser(api) as victim:
        stolen = csrf_of(attacker)
        sign_in(victim, api, "lee")
        forged = victim.post(f"/ui/incidents/{incident}/reject", data={"csrf": stolen})
        assert forged.status_code == 403
    assert api.journal.approvals(incident) == []


def test_deciding_needs_a_signed_in_person_with_the_plans_role(api: Api) -> None:
    incident = awaiting(api.journal, api.policy, P1)
    with browser(api) as client:
        token = csrf_of(client)
        anonymous = client.post(f"/ui/incidents/{incident}/approve", data={"csrf": token})
        assert anonymous.status_code == 401
        sign_in(client, api, "tara")
        page = client.get(f"/ui/incidents/{incident}").text
        assert "Approve</button>" not in page and "this plan needs a lead" in page
        token = csrf_of(client)
        refused = client.post(f"/ui/incidents/{incident}/approve", data={"csrf": token})
        assert refused.status_code == 403 and "needs a lead" in refused.text
    assert api.journal.approvals(incident) == []


def test_a_rejection_from_the_page_carries_its_comment(api: Api) -> None:
    incident = awaiting(api.journal, api.policy, P2)
    with browser(api) as client:
        sign_in(client, api, "tom")
        token = csrf_of(client)
        response = client.post(
            f"/ui/incidents/{incident}/reject", data={"csrf": token, "comment": "not now"}
        )
        assert response.status_code == 303
    (decision,) = api.journal.approvals(incident)
    assert (decision.person, decision.decision, decision.comment) == ("tom", "reject", "not now")


def test_sign_out_ends_the_session_even_for_a_copied_cookie(api: Api) -> None:
    with browser(api) as client:
        sign_in(client, api, "lee")
        copied = dict(client.cookies)
        token = csrf_of(client)
        assert client.post("/ui/signout", data={"csrf": token}).status_code == 303
        assert "signed in as" not in client.get("/ui/").text
    with httpx.Client(base_url=str(api.client.base_url), cookies=copied) as thief:
        assert "signed in as" not in thief.get("/ui/").text


def test_a_cookie_edited_to_name_someone_is_not_a_session(api: Api) -> None:
    with browser(api) as client:
        csrf_of(client)
        payload, signature = client.cookies["watchdog_session"].split(".")
        sid, _, issued = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        forged = base64.urlsafe_b64encode(json.dumps([sid, "lee", issued]).encode()).decode()
        client.cookies.set("watchdog_session", f"{forged.rstrip('=')}.{signature}")
        assert "signed in as" not in client.get("/ui/").text


def test_every_value_from_the_journal_is_html_escaped(api: Api) -> None:
    evil = '<script>alert("x")</script>'
    incident = awaiting(api.journal, api.policy, P2, reason=f"reason {evil}")
    api.journal.add_event(incident, at=time.time(), kind="note", summary=f"summary {evil}")
    with browser(api) as client:
        sign_in(client, api, "tara")
        token = csrf_of(client)
        client.post(f"/ui/incidents/{incident}/approve", data={"csrf": token, "comment": evil})
        for path in ("/ui/", f"/ui/incidents/{incident}"):
            page = client.get(path).text
            assert "<script>" not in page, path
        shown = client.get(f"/ui/incidents/{incident}").text
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in shown


def test_recent_rollbacks_show_outcome_and_duration(api: Api) -> None:
    incident = awaiting(api.journal, api.policy, P1)
    start = time.time()
    step = Step("restore the newest backup", "database.restore", Risk.RISKY)
    row = api.journal.step_started(incident, index=0, step=step, at=start)
    api.journal.step_finished(row, status="succeeded", at=start + 2.5, output="restored")
    api.journal.set_state(incident, state="resolved", at=start + 40, reason="ok", closed=True)
    page = api.client.get("/ui/", headers=api.bearer("tara")).text
    rollbacks = page.split("Recent rollbacks", 1)[1]
    assert f'href="/ui/incidents/{incident}"' in rollbacks
    assert "resolved" in rollbacks and "2.5 s" in rollbacks and "40s" in rollbacks


def test_unknown_incidents_are_a_404_page(api: Api) -> None:
    for incident in ("4242", "99999999999999999999"):
        assert api.client.get(f"/ui/incidents/{incident}").status_code in (401, 422)
        found = api.client.get(f"/ui/incidents/{incident}", headers=api.bearer("tara"))
        assert found.status_code == 404


def test_the_incident_page_folds_the_explanation_under_why(api: Api) -> None:
    """The same explanation as `watchdog explain`, cited lines included, with no script."""
    from watchdog.model import Finding, Severity

    now = time.time()
    finding = Finding(
        rule="dlq-overflow", signal="dlq_depth", series="", severity=Severity.P1,
        scenario="dlq_overflow", group="dlq", subject="", since=now - 40,
        reason="P1: DLQ depth 8700 > 5000 for 40 s (rule dlq-overflow, for 30 s)",
        evidence=("DLQ depth (messages) 8700 > 5000 for 40 s",), value=8700.0,
    )
    incident = api.journal.open_incident(
        key="dlq", severity=Severity.P1, scenario="dlq_overflow", subject="",
        state="detected", reason=finding.reason, at=now, findings=[finding],
    )
    page = api.client.get(f"/ui/incidents/{incident}", headers=api.bearer("tara")).text
    why = page[page.index('<details id="why">') : page.index("</details>", page.index('id="why"'))]
    lines = POLICY.read_text(encoding="utf-8").splitlines()
    rule_line = next(n for n, line in enumerate(lines, 1) if line.endswith("name: dlq-overflow"))
    assert f"{POLICY}:{rule_line} rules[" in why and "] dlq-overflow</code>" in why
    assert "DLQ depth (messages) 8700 &gt; 5000 for 40 s" in why  # escaped, as everything
    assert "<strong>dlq-filling</strong> on dlq_depth: no recorded value" in why
    assert "<script" not in page


TEXT = st.text(max_size=80)
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "csrf": TEXT,
        "name": st.one_of(TEXT, st.sampled_from(["lee", "tara", "olga"])),
        "token": TEXT,
        "next": st.one_of(TEXT, st.sampled_from(["//evil.example", "/ui/../x", "https://x"])),
        "comment": TEXT,
    },
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    fields=FIELDS,
    cookie=st.one_of(st.none(), st.text(alphabet="abcdefXYZ0123456789._-=", max_size=80)),
    target=st.sampled_from(
        [
            "/ui/signin",
            "/ui/signout",
            "/ui/incidents/1/approve",
            "/ui/incidents/1/reject",
            "/ui/incidents/99999999999999999999/approve",
        ]
    ),
    raw=st.one_of(st.none(), st.binary(max_size=120)),
)
def test_fuzz_forms_never_a_5xx_never_a_session_or_decision_without_credentials(
    api: Api, fields: dict[str, str], cookie: str | None, target: str, raw: bytes | None
) -> None:
    if not api.journal.open_incidents():
        awaiting(api.journal, api.policy, P1)
    cookies = {"watchdog_session": cookie} if cookie is not None else {}
    with httpx.Client(base_url=str(api.client.base_url), cookies=cookies, timeout=10) as client:
        if raw is not None:
            response = client.post(
                target, content=raw, headers={"content-type": "application/x-www-form-urlencoded"}
            )
        else:
            response = client.post(target, data=fields)
        assert response.status_code < 500, response.text
        # 429: the fuzzer's failed sign-ins from one address add up (the limit per client)
        assert response.status_code in (400, 401, 403, 429), response.text
        assert "signed in as" not in client.get("/ui/").text
    assert api.journal.approvals(1) == []


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.sampled_from(["lee", "tara", "nobody"]),
    token=TEXT,
    forged=st.one_of(st.none(), TEXT),
    target=st.sampled_from(["/ui/signin", "/ui/incidents/1/approve", "/ui/signout"]),
)
def test_fuzz_a_session_with_a_wrong_csrf_token_or_personal_token_gets_nothing(
    api: Api, name: str, token: str, forged: str | None, target: str
) -> None:
    if not api.journal.open_incidents():
        awaiting(api.journal, api.policy, P1)
    with browser(api) as client:
        csrf = csrf_of(client)
        valid = forged is None or forged == csrf
        fields = {"csrf": csrf if forged is None else forged, "name": name, "token": token}
        response = client.post(target, data=fields)
        if not valid:
            assert response.status_code == 403, response.text
        elif target != "/ui/signout":
            assert response.status_code in (401, 429), response.text  # 429: too many tries
        assert response.status_code < 500
        assert "signed in as" not in client.get("/ui/").text
    assert api.journal.approvals(1) == []
