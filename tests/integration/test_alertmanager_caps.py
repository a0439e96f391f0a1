"""The receiver's caps, over HTTP with a real journal: no body can flood the engine.

Anyone who holds the token (or got past a weak one) could post, in 1 MiB, about
4,400 `CircuitBreakerOpen` alerts each naming a different provider; each became
a series, a finding and an incident. The caps bound what one body and what the
alerts held at once may carry: alerts per body (413), labels per alert and the
length of a label's name and value (400), distinct series per alert signal held
at once (429: room frees as series resolve), and a `startsAt` that is a zero
time or in the future (400). Every refusal names the field, stores nothing and
is counted by reason in `watchdog_alert_webhooks_refused_total`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.alertmanager_payloads import ZERO_TIME, alert, webhook
from tests.integration.test_alertmanager_receiver import Receiver, breaker, make_receiver
from watchdog.api.alertmanager import ReceiverSettings


def refused(current: Receiver, reason: str) -> float:
    text = current.client.get("/metrics").text
    for line in text.splitlines():
        if line.startswith(f'watchdog_alert_webhooks_refused_total{{reason="{reason}"}}'):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no refusal counter for {reason!r} in /metrics")


def rfc3339(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def test_a_mebibyte_of_distinct_providers_is_refused_with_413(tmp_path: Path) -> None:
    """The issue's flood: as many distinct providers as fit in the 1 MiB body limit."""
    for current in make_receiver(tmp_path):
        flood = [breaker(provider=f"p{i:05d}") for i in range(3000)]
        body = webhook(*flood)
        assert len(json.dumps(body)) < ReceiverSettings().max_bytes  # under the byte limit
        reply = current.post(body)
        assert reply.status_code == 413, reply.text
        detail = reply.json()["detail"]
        assert detail.startswith("alerts: found 3000 alerts"), detail
        assert "WATCHDOG_ALERTMANAGER_MAX_ALERTS" in detail
        assert current.stored() == []
        assert refused(current, "too_many_alerts") == 1


def test_too_many_labels_or_a_label_too_long_is_refused_with_400_naming_it(
    tmp_path: Path,
) -> None:
    for current in make_receiver(tmp_path, max_labels=8, max_label_length=64):
        many = breaker() | {"labels": {f"l{n}": "x" for n in range(9)}}
        reply = current.post(webhook(breaker(provider="lastfm"), many))
        assert reply.status_code == 400, reply.text
        assert reply.json()["detail"].startswith("alerts[1].labels: found 9 labels"), reply.text

        long_value = breaker(provider="x" * 65)
        reply = current.post(webhook(long_value))
        assert reply.status_code == 400, reply.text
        assert reply.json()["detail"].startswith("alerts[0].labels.provider: found a value of 65")

        long_name = alert("CircuitBreakerOpen", **{"n" * 65: "1"})
        reply = current.post(webhook(long_name))
        assert reply.status_code == 400, reply.text
        assert reply.json()["detail"].startswith("alerts[0].labels: found a label name of 65")

        assert current.stored() == []
        assert refused(current, "too_many_labels") == 1
        assert refused(current, "label_too_long") == 2


def test_distinct_series_of_one_signal_are_capped_until_some_resolve(tmp_path: Path) -> None:
    """At most `max_series` providers fire at once; a repeat of a held one still passes,
    and once one resolves there is room for another."""
    for current in make_receiver(tmp_path, max_series=3):
        first = webhook(*[breaker(provider=p) for p in ("spotify", "lastfm", "discogs")])
        assert current.post(first).status_code == 200
        reply = current.post(webhook(breaker(provider="spotify"), breaker(provider="evil")))
        assert reply.status_code == 429, reply.text
        detail = reply.json()["detail"]
        assert detail.startswith("alerts[1].labels.provider: found 'evil'"), detail
        assert "breaker_open_alert" in detail and "WATCHDOG_ALERTMANAGER_MAX_SERIES" in detail
        assert len(current.stored()) == 3
        assert refused(current, "too_many_series") == 1

        assert current.post(webhook(breaker(provider="spotify"))).json()["duplicates"] == 1
        assert current.post(webhook(breaker("resolved", provider="lastfm"))).status_code == 200
        assert current.post(webhook(breaker(provider="evil"))).status_code == 200
        assert {a.label("provider") for a in current.intake.active} == {
            "spotify", "discogs", "evil",
        }


def test_a_zero_or_future_starts_at_is_refused_naming_the_field(tmp_path: Path) -> None:
    """A zero startsAt was stored as 1970; a firing alert's zero endsAt is Alertmanager's
    normal (VENDOR-FACTS.md) and still passes."""
    for current in make_receiver(tmp_path):
        for starts in (ZERO_TIME, "1970-01-01T00:00:00Z", rfc3339(time.time() + 3600)):
            body = webhook(alert("DLQDepthCritical", severity="critical"),
                           alert("DLQDepthCritical", severity="critical", starts_at=starts))
            reply = current.post(body)
            assert reply.status_code == 400, (starts, reply.text)
            assert reply.json()["detail"].startswith("alerts[1].startsAt: found"), reply.text
        assert current.stored() == []
        assert refused(current, "starts_at_zero") == 2
        assert refused(current, "starts_at_future") == 1

        skewed = rfc3339(time.time() + 60)  # a minute ahead: within the allowance
        assert current.post(webhook(alert("DLQDepthCritical", starts_at=skewed))).status_code == 200
        assert [row[2] for row in current.stored()] == ["firing"]


def test_the_caps_have_documented_defaults() -> None:
    settings = ReceiverSettings()
    assert settings.max_alerts >= 100 and settings.max_series >= 50
    assert settings.max_labels >= 32 and settings.max_label_length >= 256
    assert 0 < settings.clock_skew_seconds <= 600
