"""The fakes refuse what their vendors refuse, so a page they accept meets the vendor's rules.

Without this, a permissive fake would make every notifier test pass for nothing.
"""

from __future__ import annotations

import gzip
from typing import Any

import httpx
import pytest

from tests.fakes.sentry import FakeSentry
from tests.integration.notify_stage import GENIE_KEY, ROUTING_KEY, WEBHOOK_TOKEN, Vendors


def trigger(**payload: Any) -> dict[str, Any]:
    return {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "payload": {"summary": "s", "source": "watchdog", "severity": "error", **payload},
    }


@pytest.mark.parametrize(
    ("event", "complaint"),
    [
        ({**trigger(), "routing_key": "short"}, "routing_key"),
        ({**trigger(), "event_action": "page"}, "event_action"),
        (trigger(summary=""), "payload.summary"),
        (trigger(summary="x" * 1025), "payload.summary"),
        (trigger(severity="high"), "payload.severity"),
        (trigger(source=""), "payload.source"),
        ({**trigger(), "links": [{"text": "no href"}]}, "href"),
        ({**trigger(), "dedup_key": "k" * 256}, "dedup_key"),
        ({"routing_key": ROUTING_KEY, "event_action": "resolve"}, "dedup_key"),
    ],
)
def test_pagerduty_refuses_an_invalid_event(
    fakes: Vendors, event: dict[str, Any], complaint: str
) -> None:
    answer = httpx.post(fakes.pagerduty.url + "/v2/enqueue", json=event)
    assert answer.status_code == 400
    body = answer.json()
    assert body["status"] == "invalid event"
    assert any(complaint in error for error in body["errors"])
    assert httpx.post(fakes.pagerduty.url + "/v2/enqueue", json=trigger()).status_code == 202


def test_opsgenie_wants_its_key_a_message_and_sane_fields(fakes: Vendors) -> None:
    url = fakes.opsgenie.url + "/v2/alerts"
    auth = {"Authorization": f"GenieKey {GENIE_KEY}"}
    assert httpx.post(url, json={"message": "m"}).status_code == 401
    assert (
        httpx.post(url, json={"message": "m"}, headers={"Authorization": "GenieKey x"}).status_code
        == 401
    )
    for bad in (
        {},
        {"message": "m" * 131},
        {"message": "m", "priority": "P0"},
        {"message": "m", "tags": [str(i) for i in range(21)]},
        {"message": "m", "details": {"n": 1}},
        {"message": "m", "responders": [{"type": "group", "name": "x"}]},
        {"message": "m", "responders": [{"type": "team"}]},
    ):
        answer = httpx.post(url, json=bad, headers=auth)
        assert answer.status_code == 422, bad
        assert {"message", "took", "requestId"} <= set(answer.json())
    created = httpx.post(url, json={"message": "m", "alias": "a/b"}, headers=auth)
    assert created.status_code == 202
    assert created.json()["result"] == "Request will be processed"
    close = f"{url}/a%2Fb/close"
    assert httpx.post(close, json={}, headers=auth).status_code == 422  # no identifierType
    assert httpx.post(close + "?identifierType=alias", json={}, headers=auth).status_code == 202
    assert fakes.opsgenie.open_aliases == set()


def test_slack_refuses_what_slack_refuses(fakes: Vendors) -> None:
    url = fakes.slack.webhook_url
    header = {"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "s" * 3001}}
    divider = {"type": "divider"}
    for bad in (
        {},
        {"text": ""},
        {"blocks": [header]},
        {"text": "t", "blocks": [section]},
        {"text": "t", "blocks": [divider] * 51},
    ):
        answer = httpx.post(url, json=bad)
        assert (answer.status_code, answer.text) == (400, "invalid_payload"), bad
    wrong = httpx.post(fakes.slack.url + "/services/T0WATCH/B0DOG/guess", json={"text": "t"})
    assert (wrong.status_code, wrong.text) == (404, "no_service")
    assert (httpx.post(url, json={"text": "t"}).text) == "ok"


def test_the_webhook_wants_its_bearer_token(fakes: Vendors) -> None:
    body = {"event": "trigger", "dedup_key": "k", "summary": "s", "incident": {"id": 1}}
    assert httpx.post(fakes.webhook.hook_url, json=body).status_code == 401
    auth = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
    assert httpx.post(fakes.webhook.hook_url, json={"event": "x"}, headers=auth).status_code == 400
    assert httpx.post(fakes.webhook.hook_url, json=body, headers=auth).status_code == 200


def test_scripted_failures_come_first_then_the_vendor_answers(fakes: Vendors) -> None:
    fakes.slack.fail_next(1, status=429, retry_after="3")
    fakes.slack.reject_next(1)
    url = fakes.slack.webhook_url
    limited = httpx.post(url, json={"text": "t"})
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "3")
    assert httpx.post(url, json={"text": "t"}).status_code == 400
    assert httpx.post(url, json={"text": "t"}).status_code == 200
    assert len(fakes.slack.accepted) == 1


def test_sentry_wants_its_key_and_an_envelope() -> None:
    with FakeSentry() as sentry:
        url = f"{sentry.url}/api/{sentry.project}/envelope/"
        envelope = (
            b'{"event_id":"0123456789abcdef0123456789abcdef"}\n{"type":"event"}\n{"message":"m"}\n'
        )
        headers = {"Content-Type": "application/x-sentry-envelope", "Content-Encoding": "gzip"}
        assert httpx.post(url, content=gzip.compress(envelope), headers=headers).status_code == 401
        auth = {
            **headers,
            "X-Sentry-Auth": f"Sentry sentry_key={sentry.public_key}, sentry_version=7",
        }
        assert httpx.post(url.replace("/42/", "/7/"), content=b"", headers=auth).status_code == 404
        assert httpx.post(url, content=gzip.compress(envelope), headers=auth).status_code == 200
        assert sentry.events() == [{"message": "m"}]
