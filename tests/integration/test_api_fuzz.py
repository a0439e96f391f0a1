"""The whole HTTP surface fuzzed (tests/api_fuzz.py): every route of the daemon's app, with
and without a key, on a real uvicorn over a real journal with history.

At least 1,000 cases here (bench/api_fuzz.py runs 10,000 and more): no 5xx, no journal
change without a key valid for the route, and every 4xx names what was wrong. The
regressions the fuzz found are kept below as plain cases, so they fail by name.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis

from tests.api_fuzz import (
    JSON_BODIES,
    Attempt,
    Tally,
    fuzz_document,
    named,
    routes_of,
    run,
    send,
)
from tests.api_stand import ALERTMANAGER_TOKEN, READ_TOKEN, Key, Stand, stand

CASES = 1_000


@pytest.fixture
def fuzzed(tmp_path: Path) -> Iterator[Stand]:
    # Starlette's form parser logs each malformed multipart body it refuses (with a 400).
    logging.getLogger("python_multipart").setLevel(logging.ERROR)
    with stand(tmp_path) as served:
        yield served


def test_the_fuzzed_document_has_every_route_of_the_app_and_every_body(fuzzed: Stand) -> None:
    document = fuzz_document(fuzzed.app)
    documented = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    assert documented == routes_of(fuzzed.app)
    posts = {path for method, path in documented if method == "POST"}
    with_body = {
        path for path in posts if "requestBody" in document["paths"][path]["post"]
    }
    assert with_body == posts, f"POST routes with no body to fuzz: {posts - with_body}"


@pytest.mark.slow
def test_a_thousand_cases_find_no_5xx_no_unkeyed_change_and_no_unnamed_4xx(
    fuzzed: Stand,
) -> None:
    tally = run(fuzzed, CASES)
    assert tally.cases >= CASES * 0.95, tally.cases  # a few the HTTP client will not send
    assert tally.violations() == []
    routes = {(method, path) for method, path, _ in tally.statuses}
    assert routes == routes_of(fuzzed.app), "a route the fuzz never reached"
    # It went past the doors: valid keys got decisions, closes and alerts written.
    wrote = {p for (m, p, status) in tally.statuses if m == "POST" and status in (200, 303)}
    # (Sign-ins are rare past the throttle: the fuzz's own failures from 127.0.0.1 keep
    # it shut most of the time, so any web form taken counts.)
    assert "/api/alertmanager" in wrote, sorted(wrote)
    assert any(p.startswith("/api/incidents/") for p in wrote), sorted(wrote)
    assert any(p.startswith("/ui/") for p in wrote), sorted(wrote)


@pytest.mark.parametrize("path", sorted(JSON_BODIES))
def test_a_body_nested_16000_deep_is_a_named_400_on_every_json_route(
    fuzzed: Stand, path: str
) -> None:
    """It was a 500 (RecursionError in json.loads) on the approval and close APIs."""
    token = ALERTMANAGER_TOKEN if path == "/api/alertmanager" else fuzzed.tokens["lee"]
    target = fuzzed.base + path.replace("{incident_id}", "1")
    for body in (b"[" * 16_000, b"{" * 16_000, b'{"comment":' * 1_400):
        answer = httpx.post(target, content=body, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 400, answer.text
        assert "not JSON" in answer.json()["detail"], answer.text


@pytest.mark.parametrize(
    ("path", "status", "detail"),
    [
        # Both were 500s (OverflowError: Python int too large to convert to SQLite INTEGER).
        ("/incidents/99999999999999999999", 404, "no incident 99999999999999999999"),
        ("/incidents?limit=99999999999999999999", 422, "less than or equal to 1000"),
        ("/incidents?limit=0", 422, "greater than or equal to 1"),
        ("/ui/incidents/99999999999999999999", 404, "There is no incident"),
        # Was a bare text/markdown 404, which the judge found unnamed (fuzz, 2026-12-05).
        ("/ui/incidents/2185/report.md", 404, "There is no incident 2185"),
    ],
)
def test_ids_and_limits_past_sqlite_are_named_4xx(
    fuzzed: Stand, path: str, status: int, detail: str
) -> None:
    answer = httpx.get(fuzzed.base + path, headers={"Authorization": f"Bearer {READ_TOKEN}"})
    assert answer.status_code == status, answer.text
    assert detail in answer.text and named(answer)


def test_the_judge_sees_a_write_by_a_key_not_declared_valid_and_an_unnamed_4xx(
    fuzzed: Stand,
) -> None:
    """The harness itself: a real approval sent with a key that grants nothing is an
    unkeyed change; a 4xx with an empty or missing detail is unnamed."""
    schema = schemathesis.openapi.from_dict(fuzz_document(fuzzed.app))
    operation = schema["/api/incidents/{incident_id}/approve"]["POST"]
    incident = next(r.id for r in fuzzed.journal.open_incidents()
                    if r.scenario == "database_migration_failure")
    case = operation.Case(path_parameters={"incident_id": incident}, body={"comment": "ok"},
                          media_type="application/json")
    lee = Key("lee, declared as no key", {"Authorization": f"Bearer {fuzzed.tokens['lee']}"})
    tally = Tally()
    send(fuzzed, Attempt(case, lee, None, None, None, csrf=False, grant=None), tally)
    assert tally.statuses == {("POST", "/api/incidents/{incident_id}/approve", 200): 1}
    assert len(tally.unkeyed_changes) == 1 and "lee, declared as no key" in tally.unkeyed_changes[0]
    assert not named(httpx.Response(404, json={"detail": " "}))
    assert not named(httpx.Response(400, text="bad request"))
    assert not named(httpx.Response(403, html="<h1>Forbidden</h1>"))
    assert named(httpx.Response(422, json={"detail": [{"loc": ["query"], "msg": "too big"}]}))
