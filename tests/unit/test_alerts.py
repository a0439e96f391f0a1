"""Alerts as observations, and the webhook's shape checked at the door: the pure parts."""

from __future__ import annotations

import gc

import pytest
from pydantic import ValidationError

from tests.alertmanager_payloads import alert, webhook
from watchdog.api.alertmanager import WebhookV4, first_problem, parse_time, to_alert
from watchdog.engine.firing import FiringView, pack, unpack
from watchdog.model import Alert
from watchdog.policy.alerts import alert_observations
from watchdog.policy.schema import AlertSignal

from .helpers import songnodes


def alerts_of(body: dict[str, object]) -> list[Alert]:
    return [to_alert(a) for a in WebhookV4.model_validate(body).alerts]


def signals() -> list[AlertSignal]:
    return [s for s in songnodes().signals if isinstance(s, AlertSignal)]


def values(observations: list[object]) -> dict[tuple[str, str], float | None]:
    return {(o.signal, o.series): o.value for o in observations}  # type: ignore[attr-defined]


def test_both_circuit_breaker_definitions_read_as_the_provider_series() -> None:
    firing = alerts_of(
        webhook(
            alert(
                "CircuitBreakerOpen",
                severity="warning",
                component="api_gateway",
                provider="spotify",
            ),
            alert("CircuitBreakerOpen", severity="critical", provider="spotify"),
            alert("DLQDepthCritical", severity="critical", component="dlq"),
        )
    )
    seen = values(alert_observations(signals(), firing, {}, 100.0))
    assert seen[("breaker_open_alert", "spotify")] == 1.0
    assert seen[("dlq_critical_alert", "")] == 1.0
    # The warning one is mapped to the provider, so it is no P3 "non-critical alert" too.
    assert ("warning_alerts", "CircuitBreakerOpen") not in seen


def test_a_series_reads_zero_once_its_alert_stops_firing_and_unattributable_ones_do_not_count() -> (
    None
):
    known: dict[str, set[str]] = {}
    firing = alerts_of(webhook(alert("CircuitBreakerOpen", severity="critical", provider="lastfm")))
    alert_observations(signals(), firing, known, 100.0)
    nameless = alerts_of(webhook(alert("CircuitBreakerOpen", severity="critical")))
    seen = values(alert_observations(signals(), nameless, known, 101.0))
    assert seen[("breaker_open_alert", "lastfm")] == 0.0
    assert ("breaker_open_alert", "") not in seen


def test_alertmanager_times_with_nanoseconds_and_the_zero_time() -> None:
    assert parse_time("2026-11-29T10:00:00.123456789Z") == pytest.approx(1795946400.123456)
    assert parse_time("0001-01-01T00:00:00Z") is None
    with pytest.raises(ValueError, match="with a zone"):
        parse_time("2026-11-29T10:00:00")


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda b: b["alerts"][0].pop("fingerprint"), "alerts[0].fingerprint: found nothing"),
        (lambda b: b["alerts"][0].update(fingerprint="XYZ"), "alerts[0].fingerprint: found 'XYZ'"),
        (lambda b: b.update(version="3"), "version: found '3'"),
        (lambda b: b["alerts"][0].update(startsAt="yesterday"), "alerts[0].startsAt"),
        (lambda b: b["alerts"][0]["labels"].update(n=1), "alerts[0].labels.n: found 1"),
        (lambda b: b.update(truncatedAlerts=-1), "truncatedAlerts: found -1"),
    ],
)
def test_a_malformed_body_is_refused_naming_the_field(change: object, named: str) -> None:
    body = webhook(alert("DLQDepthCritical", severity="critical"))
    change(body)  # type: ignore[operator]
    with pytest.raises(ValidationError) as raised:
        WebhookV4.model_validate(body)
    assert named in first_problem(raised.value)


def test_the_firing_view_keeps_each_alert_whole_in_a_tuple_the_collector_lets_go() -> None:
    """The intake's view packs each alert flat: unpacking gives the same Alert back, and
    after one young collection the collector no longer tracks the packed tuple (so a
    storm's hundreds of thousands of firings are never rescanned)."""
    resolved = Alert(
        fingerprint="0123456789abcdef",
        status="resolved",
        starts_at=1795950000.25,
        ends_at=1795950060.5,
        labels=(("alertname", "DLQDepthCritical"), ("severity", "critical")),
        annotations=(("summary", "DLQ over 1000"),),
        generator_url="http://127.0.0.1:9090/graph",
    )
    for original in [resolved, *alerts_of(webhook(alert("CircuitBreakerOpen", provider="x")))]:
        view = {(original.fingerprint, original.starts_at): pack(original)}
        gc.collect(0)
        (row,) = view.values()
        assert unpack(row) == original
        assert not gc.is_tracked(row), row


def test_the_firing_view_holds_releases_and_indexes_by_fingerprint() -> None:
    view = FiringView()
    firings = [
        Alert(f"{n:016x}", "firing", 1795950000.0 + later, None, (("alertname", "A"),))
        for n in range(1000)
        for later in (0.0, 60.0)
    ]
    for firing in [*firings, firings[0]]:  # holding a firing again changes nothing
        view.hold(firing)
    assert len(view) == 2000
    assert sorted(view.alerts(), key=lambda a: (a.fingerprint, a.starts_at)) == firings
    assert view.starts(f"{7:016x}") == (1795950000.0, 1795950060.0)

    view.release((f"{7:016x}", 1795950000.0))
    view.release((f"{7:016x}", 1795950000.0))  # releasing twice changes nothing either
    view.release(("never-held", 1.0))
    assert len(view) == 1999
    assert view.starts(f"{7:016x}") == (1795950060.0,)
    view.release((f"{7:016x}", 1795950060.0))
    assert view.starts(f"{7:016x}") == ()
    assert len(view) == len(list(view.alerts())) == 1998


def test_once_the_heap_is_settled_the_firing_view_leaves_the_collector_nothing_to_scan() -> None:
    """As the daemon does: build the view, settle the heap, then take a storm. After
    one young collection nothing of the view is left for a later collection to walk
    (neither its tables nor its rows), however many alerts it holds."""
    view = FiringView()
    gc.collect()
    gc.freeze()
    gc.disable()  # only the collection below, so that nothing is promoted out of sight
    try:
        fingerprints = {f"{n:016x}" for n in range(5000)}
        for fingerprint in fingerprints:
            labels = (("alertname", "A"), ("provider", fingerprint))  # made now, as a webhook's
            view.hold(Alert(fingerprint, "firing", 1795950000.0, None, labels))
        gc.collect(0)
        ours = [o for o in gc.get_objects(0) + gc.get_objects(1) if _holds(o, fingerprints)]
        assert not ours, f"{len(ours)} of the view's objects left to scan, e.g. {ours[0]!r:.80}"
        assert len(view) == 5000
    finally:
        gc.enable()
        gc.unfreeze()


def _holds(thing: object, fingerprints: set[str]) -> bool:
    """Whether this is a row of the view, or a table keyed by its fingerprints."""
    if isinstance(thing, dict):
        return any(_holds(key, fingerprints) or str(key) in fingerprints for key in list(thing)[:1])
    return (
        isinstance(thing, tuple)
        and bool(thing)
        and isinstance(thing[0], str)
        and thing[0] in fingerprints
    )
