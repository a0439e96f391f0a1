"""The approval API in the daemon's app, over a real journal and a real people file.

Each status code the API promises, what reaches the journal (and the timeline)
for each, and a hypothesis fuzz: whatever the headers and body, never a 5xx,
and never a journal change without a valid personal token.
"""

from __future__ import annotations

import json
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.approvals_fixtures import Api, api, awaiting, crew
from watchdog.engine.approvals import COMMENT_LIMIT

__all__ = ["api", "crew"]  # pytest fixtures, used by name

P0, P1, P2 = "database_unavailable", "database_migration_failure", "stateful_service_failure"


def url(incident: int, decision: str = "approve") -> str:
    return f"/api/incidents/{incident}/{decision}"


def test_a_lead_approves_a_p1_plan_and_the_decision_is_on_the_timeline(api: Api) -> None:
    incident = awaiting(api.journal, api.policy, P1)
    response = api.client.post(
        url(incident), json={"comment": "backup checked"}, headers=api.bearer("lee")
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["person"] == "lee" and body["role"] == "lead" and body["approvers"] == ["lee"]
    assert body["quorum"] == 1 and "starts the plan" in body["summary"]
    (approval,) = api.journal.approvals(incident)
    assert (approval.person, approval.role, approval.decision, approval.comment) == (
        "lee",
        "lead",
        "approve",
        "backup checked",
    )
    timeline = [e.summary for e in api.journal.timeline(incident) if e.kind == "approval"]
    assert timeline == ["lee (lead) approved: backup checked"]
    assert 'watchdog_approvals_total{decision="approve"} 1.0' in api.client.get("/metrics").text
    assert "watchdog_approvals_pending 1.0" in api.client.get("/metrics").text


def test_without_a_valid_identity_the_answer_is_401_and_nothing_is_written(api: Api) -> None:
    incident = awaiting(api.journal, api.policy, P1)
    lee = api.crew.tokens["lee"]
    for headers in (
        {},
        {"Authorization": ""},
        {"Authorization": f"Basic {lee}"},
        {"Authorization": "Bearer"},
        {"Authorization": f"Bearer {lee}x"},
        {"Authorization": f"Bearer {api.crew.tokens['lee'][:-1]}"},
    ):
        response = api.client.post(url(incident), json={}, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert lee not in response.text
    # A 401 comes before anything about the incident or the body is told.
    assert api.client.post(url(999), content=b"{", headers={}).status_code == 401
    assert api.journal.approvals(incident) == []


def test_a_person_without_the_role_the_plan_needs_gets_403(api: Api) -> None:
    p1 = awaiting(api.journal, api.policy, P1)
    p0 = awaiting(api.journal, api.policy, P0)
    refused = api.client.post(url(p1), headers=api.bearer("tara"))
    assert refused.status_code == 403
    assert "tara (team)" in refused.json()["detail"] and "needs a lead" in refused.json()["detail"]
    assert api.client.post(url(p0), headers=api.bearer("lee")).status_code == 403
    assert api.client.post(url(p0, "reject"), headers=api.bearer("lee"),
                           json={"comment": "no"}).status_code == 403
    bare = api.client.post(url(p0, "reject"), headers=api.bearer("olga"))
    assert bare.status_code == 422 and "comment" in bare.json()["detail"]
    assert api.client.post(url(p0), headers=api.bearer("olga")).status_code == 200
    assert api.journal.approvals(p1) == []


def test_no_such_incident_is_404_and_not_awaiting_approval_is_409(api: Api) -> None:
    assert api.client.post(url(4242), headers=api.bearer("lee")).status_code == 404
    incident = awaiting(api.journal, api.policy, P1)
    api.journal.set_state(incident, state="approved", at=time.time(), reason="by lee")
    conflict = api.client.post(url(incident), headers=api.bearer("lee"))
    assert conflict.status_code == 409
    assert "is already approved, not waiting for an approval" in conflict.json()["detail"]
    closed = awaiting(api.journal, api.policy, P1)
    api.journal.set_state(closed, state="escalated", at=time.time(), reason="x", closed=True)
    assert api.client.post(url(closed, "reject"), headers=api.bearer("lee"),
                           json={"comment": "x"}).status_code == 409
    assert api.journal.approvals(incident) == api.journal.approvals(closed) == []


def test_a_bad_body_is_400_or_422_naming_what_was_expected(api: Api) -> None:
    incident = awaiting(api.journal, api.policy, P1)
    lee = api.bearer("lee")
    unreadable = (  # 400: not JSON at all, or nested past any body the API takes
        b"{",
        b'{"comment": "\\ud800"}',
        b"\xff\xfe",
        b"NaN",
        b"[" * 16_000,  # was a 500: the standard library's parser raised RecursionError
        b"[" * 13 + b"]" * 13,
        b'{"comment": ' * 40 + b'"x"' + b"}" * 40,
    )
    wrong_shape = (  # 422: JSON, but not {"comment": "..."}
        b"[]",
        b'"text"',
        b'{"comment": 3}',
        b'{"comments": "x"}',
        json.dumps({"comment": "x" * (COMMENT_LIMIT + 1)}).encode(),
        b'{"comment": "\\u0000"}',
        b"[" * 12 + b"]" * 12,
    )
    for status, bodies in ((400, unreadable), (422, wrong_shape)):
        for body in bodies:
            response = api.client.post(url(incident), content=body, headers=lee)
            assert response.status_code == status, (body[:40], response.text)
            assert "expected" in response.json()["detail"], response.text
    deep = api.client.post(url(incident), content=b"[" * 16_000, headers=lee).json()["detail"]
    assert "not JSON (recursion limit exceeded" in deep, deep
    nested = api.client.post(url(incident), content=b"[" * 13 + b"]" * 13, headers=lee)
    assert "nested deeper than 12 levels" in nested.json()["detail"], nested.text
    assert api.client.post(url(incident), content=b"x" * 20000, headers=lee).status_code == 413
    assert api.journal.approvals(incident) == []
    # No body at all is fine: the comment is optional.
    assert api.client.post(url(incident), headers=lee).status_code == 200


def test_a_quorum_counts_distinct_people_and_the_same_person_only_once(api: Api) -> None:
    incident = awaiting(api.journal, api.policy, P2)
    first = api.client.post(url(incident), json={"comment": "ok"}, headers=api.bearer("tara"))
    assert first.status_code == 200 and first.json()["approvers"] == ["tara"]
    assert first.json()["quorum"] == 2 and "waiting for 1 more" in first.json()["summary"]
    again = api.client.post(url(incident), headers=api.bearer("tara"))
    assert again.status_code == 409 and "counts once" in again.json()["detail"]
    assert [a.person for a in api.journal.approvals(incident)] == ["tara"]
    second = api.client.post(url(incident), headers=api.bearer("lena"))
    assert second.status_code == 200 and second.json()["approvers"] == ["lena", "tara"]
    assert second.json()["role"] == "team"  # lena is a lead too, but the plan needs team


def test_a_rejection_is_journaled_with_its_comment(api: Api) -> None:
    incident = awaiting(api.journal, api.policy, P2)
    response = api.client.post(
        url(incident, "reject"),
        json={"comment": "redis is being migrated"},
        headers=api.bearer("tom"),
    )
    assert response.status_code == 200 and "escalates" in response.json()["summary"]
    (decision,) = api.journal.approvals(incident)
    assert decision.decision == "reject" and decision.comment == "redis is being migrated"


HEADERS = st.dictionaries(
    st.sampled_from(["Authorization", "Content-Type", "X-Forwarded-For", "Cookie"]),
    st.one_of(
        # HTTP itself (h11, on the client side) refuses values with edge whitespace.
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60).map(
            str.strip
        ),
        st.sampled_from(["Bearer", "Bearer  x", "bearer x", "Basic bGVlOng=", "application/json"]),
    ),
)
BODIES = st.one_of(
    st.binary(max_size=200),
    st.builds(
        lambda v: json.dumps(v).encode(),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=8), inner, max_size=3)
            ),
            max_leaves=8,
        ),
    ),
    st.builds(lambda c: json.dumps({"comment": c}).encode(), st.text(max_size=300)),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    headers=HEADERS,
    body=BODIES,
    incident=st.sampled_from(["1", "2", "0", "-1", "99999999999999999999", "x", "1.5", "%00"]),
    decision=st.sampled_from(["approve", "reject", "APPROVE", "expire"]),
)
def test_fuzz_never_a_5xx_and_never_a_change_without_a_valid_token(
    api: Api, headers: dict[str, str], body: bytes, incident: str, decision: str
) -> None:
    if not api.journal.open_incidents():
        awaiting(api.journal, api.policy, P1)
        awaiting(api.journal, api.policy, P2)
    before = [api.journal.approvals(i.id) for i in api.journal.open_incidents()]
    response = api.client.post(
        f"/api/incidents/{incident}/{decision}", content=body, headers=headers
    )
    assert response.status_code < 500, response.text
    assert response.status_code in (401, 404, 405, 422), response.text
    assert [api.journal.approvals(i.id) for i in api.journal.open_incidents()] == before


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=BODIES,
    incident=st.sampled_from([1, 2, 3, 77]),
    who=st.sampled_from(sorted(["olga", "lee", "tara", "tom", "lena"])),
)
def test_fuzz_with_a_valid_token_never_a_5xx_and_only_a_200_writes(
    api: Api, body: bytes, incident: int, who: str
) -> None:
    if not api.journal.open_incidents():
        awaiting(api.journal, api.policy, P1)
        awaiting(api.journal, api.policy, P2)
        awaiting(api.journal, api.policy, P0)
    count = sum(len(api.journal.approvals(i.id)) for i in api.journal.list_incidents())
    response = api.client.post(url(incident), content=body, headers=api.bearer(who))
    assert response.status_code in (200, 400, 403, 404, 409, 413, 422), response.text
    after = sum(len(api.journal.approvals(i.id)) for i in api.journal.list_incidents())
    assert after == count + (1 if response.status_code == 200 else 0)
