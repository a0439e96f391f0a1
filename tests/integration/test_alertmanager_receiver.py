"""`POST /api/alertmanager` over HTTP with a real journal: strict at the door, durable inside.

The app is the daemon's own (create_app with the AlertIntake the daemon reads);
every test looks in the SQLite journal afterwards, because "journaled before the
2xx" and "nothing malformed reaches the engine" are claims about what is stored.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from tests.alertmanager_payloads import alert, webhook
from tests.served import served
from watchdog.api.alertmanager import ReceiverSettings
from watchdog.api.app import create_app
from watchdog.engine.alerts import AlertIntake
from watchdog.engine.health import Health
from watchdog.metrics import Metrics
from watchdog.policyfile import load_policy
from watchdog.store.journal import Journal, open_journal

POLICY = Path(__file__).resolve().parents[2] / "policies" / "songnodes.yaml"
TOKEN = "am-token-0123456789abcdef"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


class Receiver:
    def __init__(self, journal: Journal, client: httpx.Client, intake: AlertIntake) -> None:
        self.journal = journal
        self.client = client
        self.intake = intake

    def post(self, body: Any, headers: dict[str, str] | None = None) -> Any:
        return self.client.post(
            "/api/alertmanager",
            content=body if isinstance(body, bytes) else json.dumps(body).encode(),
            headers={
                "Content-Type": "application/json", **(BEARER if headers is None else headers)
            },
        )

    def stored(self) -> list[tuple[Any, ...]]:
        rows = self.journal._read(  # type: ignore[attr-defined]
            "SELECT fingerprint, starts_at, status, deliveries FROM alerts ORDER BY fingerprint"
        )
        return [tuple(row) for row in rows]


def make_receiver(folder: Path, **config: Any) -> Iterator[Receiver]:
    journal = open_journal(str(folder / "journal.db"))
    policy = load_policy(POLICY, environ={})
    metrics = Metrics.for_policy(policy)
    intake = AlertIntake(policy, journal, time.time)
    receiver = ReceiverSettings(**({"token": SecretStr(TOKEN)} | config))
    app = create_app(journal, metrics, Health(started_at=0.0), time.time, alerts=intake,
                     receiver=receiver)
    with served(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield Receiver(journal, client, intake)
    journal.close()


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    yield from make_receiver(tmp_path)


def breaker(status: str = "firing", provider: str = "spotify") -> dict[str, Any]:
    return alert("CircuitBreakerOpen", status=status, severity="critical", provider=provider)


def test_without_the_token_nothing_is_stored(receiver: Receiver) -> None:
    body = webhook(breaker())
    basic = "Basic " + base64.b64encode(b"x:" + TOKEN.encode()).decode()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                    {"Authorization": basic}):
        reply = receiver.post(body, headers)
        assert reply.status_code == 401, headers
        assert "bearer token or basic auth" in reply.json()["detail"]
        assert TOKEN not in reply.text
    assert receiver.stored() == []


def test_basic_auth_as_alertmanagers_http_config_sends_it(tmp_path: Path) -> None:
    for current in make_receiver(tmp_path, username="alertmanager", password=SecretStr("pw-1")):
        good = "Basic " + base64.b64encode(b"alertmanager:pw-1").decode()
        bad = "Basic " + base64.b64encode(b"alertmanager:pw-2").decode()
        assert current.post(webhook(breaker()), {"Authorization": bad}).status_code == 401
        assert current.post(webhook(breaker()), {"Authorization": good}).status_code == 200
        assert len(current.stored()) == 1


def test_an_unconfigured_receiver_is_off_and_says_what_to_set(tmp_path: Path) -> None:
    for token in (None, SecretStr(""), SecretStr("  ")):
        for current in make_receiver(tmp_path, token=token):
            for headers in ({"Authorization": "Bearer"}, {}):
                reply = current.post(webhook(breaker()), headers)
                assert reply.status_code == 503
                assert "WATCHDOG_ALERTMANAGER_TOKEN" in reply.json()["detail"]
            assert current.stored() == []


def test_a_malformed_body_gets_400_naming_the_field_and_stores_nothing(
    receiver: Receiver,
) -> None:
    body = webhook(breaker(), alert("DLQDepthCritical", severity="critical"))
    del body["alerts"][1]["startsAt"]
    reply = receiver.post(body)
    assert reply.status_code == 400
    assert reply.json()["detail"].startswith("alerts[1].startsAt: found nothing")
    reply = receiver.post(b"{not json")
    assert reply.status_code == 400 and "not JSON" in reply.json()["detail"]
    assert receiver.stored() == []  # the good first alert did not slip through either


def test_a_body_over_the_limit_gets_413(tmp_path: Path) -> None:
    for current in make_receiver(tmp_path, max_bytes=2048):
        many = webhook(*[breaker(provider=f"p{i}") for i in range(20)])
        reply = current.post(many)
        assert reply.status_code == 413 and "2048 bytes" in reply.json()["detail"]
        assert current.stored() == []


def test_repeats_are_idempotent_and_resolved_clears(receiver: Receiver) -> None:
    firing = webhook(breaker(), alert("DLQDepthCritical", severity="critical"))
    first = receiver.post(firing).json()
    again = receiver.post(firing).json()
    assert (first["accepted"], first["duplicates"]) == (2, 0)
    assert (again["accepted"], again["duplicates"]) == (0, 2)
    assert [row[3] for row in receiver.stored()] == [2, 2]  # one row each, delivered twice
    assert {a.name for a in receiver.intake.active} == {"CircuitBreakerOpen", "DLQDepthCritical"}

    resolved = receiver.post(webhook(breaker("resolved"))).json()
    assert (resolved["accepted"], resolved["duplicates"]) == (1, 0)
    assert [a.name for a in receiver.intake.active] == ["DLQDepthCritical"]
    assert receiver.post(webhook(breaker("resolved"))).json()["duplicates"] == 1


def test_deliveries_arriving_together_are_each_answered_once_on_disk(
    receiver: Receiver,
) -> None:
    """Twenty concurrent deliveries of one alert (an HA pair and its retries): they share
    transactions, yet exactly one is accepted, the others are duplicates, one row is kept."""
    body = webhook(breaker())
    with ThreadPoolExecutor(max_workers=20) as pool:
        replies = list(pool.map(lambda _: receiver.post(body).json(), range(20)))
    assert sorted(r["accepted"] for r in replies) == [0] * 19 + [1]
    assert sum(r["duplicates"] for r in replies) == 19
    assert [row[3] for row in receiver.stored()] == [20]


def test_a_truncated_group_keeps_what_it_did_not_repeat(receiver: Receiver) -> None:
    """max_alerts drops alerts from a message; absent is not resolved."""
    receiver.post(webhook(breaker(provider="spotify"), breaker(provider="lastfm")))
    reply = receiver.post(webhook(breaker(provider="spotify"), truncated=1)).json()
    assert reply["truncated"] == 1
    assert {a.label("provider") for a in receiver.intake.active} == {"spotify", "lastfm"}


def test_a_new_firing_of_the_same_alert_closes_an_older_one_whose_resolution_was_lost(
    receiver: Receiver,
) -> None:
    receiver.post(webhook(alert("DLQDepthCritical", severity="critical")))
    later = alert("DLQDepthCritical", severity="critical", starts_at="2026-11-29T11:00:00Z")
    receiver.post(webhook(later))
    assert [a.starts_at for a in receiver.intake.active] == [pytest.approx(1795950000.0)]


def test_after_a_restart_a_newer_firing_still_closes_the_older_one(tmp_path: Path) -> None:
    """The older firings of a fingerprint are found in the view rebuilt from the journal."""
    for current in make_receiver(tmp_path):
        current.post(webhook(alert("DLQDepthCritical", severity="critical")))
    later = alert("DLQDepthCritical", severity="critical", starts_at="2026-11-29T11:00:00Z")
    for restarted in make_receiver(tmp_path):
        reply = restarted.post(webhook(later)).json()
        assert reply["accepted"] == 1
        assert [a.starts_at for a in restarted.intake.active] == [pytest.approx(1795950000.0)]
        assert sorted((row[1], row[2]) for row in restarted.stored()) == [
            (pytest.approx(1795946400.123456), "resolved"),
            (pytest.approx(1795950000.0), "firing"),
        ]


def test_alerts_survive_a_restart_through_the_journal(tmp_path: Path) -> None:
    for current in make_receiver(tmp_path):
        current.post(webhook(breaker()))
    for restarted in make_receiver(tmp_path):
        assert [a.label("provider") for a in restarted.intake.active] == ["spotify"]


label_values = st.text(min_size=0, max_size=12)
junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | label_values,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(label_values, inner, max_size=4),
    max_leaves=20,
)


def mutated(base: dict[str, Any], path: list[str | int], value: Any) -> dict[str, Any]:
    body = json.loads(json.dumps(base))
    target: Any = body
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return body


FIELDS: list[list[str | int]] = [
    ["version"], ["groupKey"], ["truncatedAlerts"], ["status"], ["receiver"], ["groupLabels"],
    ["commonLabels"], ["externalURL"], ["alerts"], ["alerts", 0, "status"],
    ["alerts", 0, "labels"], ["alerts", 0, "startsAt"], ["alerts", 0, "endsAt"],
    ["alerts", 0, "fingerprint"], ["alerts", 0, "annotations"], ["alerts", 0, "generatorURL"],
]


def test_fuzz_never_a_5xx_and_never_a_change_without_auth(receiver: Receiver) -> None:
    """One receiver for every example: each must leave the journal as it found it unless
    it was authorised and well-formed."""

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        field=st.sampled_from(FIELDS),
        value=junk,
        auth=st.sampled_from(["good", "none", "wrong", "garbage"]),
        raw=st.one_of(st.none(), st.binary(max_size=200)),
    )
    def example(field: list[str | int], value: Any, auth: str, raw: bytes | None) -> None:
        headers = {
            "good": BEARER, "none": {}, "wrong": {"Authorization": "Bearer nope"},
            "garbage": {"Authorization": "Basic %%%"},
        }[auth]
        before = receiver.stored()
        body: Any = raw if raw is not None else mutated(webhook(breaker()), field, value)
        reply = receiver.post(body, headers)
        assert reply.status_code < 500, reply.text
        if auth != "good":
            assert reply.status_code == 401 and receiver.stored() == before
        elif reply.status_code != 200:
            assert reply.status_code == 400 and receiver.stored() == before

    example()
