"""Alertmanager alerts as observations of the policy's `alert` signals.

An `alert` signal reads 1 for each series (the value of its `by` label) while an
alert matching its name and labels fires, and 0 once none does, so the same
rules, hysteresis and triage apply to what Alertmanager says as to what the
probes see: an alert and a probe that see one fault land in one incident when
their rules share a group and subject. Absence is never taken for resolution:
only a `resolved` notification (or a newer firing of the same fingerprint, or
the incident it opened being resolved) clears a series, so a truncated webhook
(`truncatedAlerts`) loses nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from watchdog.model import Alert, Observation
from watchdog.policy.schema import AlertSignal


def matches(signal: AlertSignal, alert: Alert) -> bool:
    """The alert's name and labels are the signal's; an alert with no `by` label cannot be
    attributed to a series (a provider, a service), so it does not count."""
    if signal.alertname is not None and alert.name != signal.alertname:
        return False
    if alert.name in signal.except_alertnames:
        return False
    if signal.by and not alert.label(signal.by):
        return False
    return all(alert.label(k) == v for k, v in signal.match.items())


def series_of(signal: AlertSignal, alert: Alert) -> str:
    return alert.label(signal.by) if signal.by else ""


def describe(alert: Alert) -> str:
    """One line of evidence: the alert, its deciding labels and its summary."""
    shown = {k: v for k, v in alert.labels if k not in ("alertname",)}
    labels = ", ".join(f"{k}={v}" for k, v in sorted(shown.items()))
    notes = dict(alert.annotations)
    said = notes.get("summary") or notes.get("description") or ""
    return f"Alertmanager: {alert.name}{{{labels}}} {alert.status}" + (f": {said}" if said else "")


def alert_observations(
    signals: Sequence[AlertSignal],
    active: Iterable[Alert],
    known_series: dict[str, set[str]],
    now: float,
) -> list[Observation]:
    """1 per firing series, 0 for every series seen before that no longer fires.

    `known_series` (signal name → series) is the caller's memory of what has
    fired, so that a cleared series reads 0 instead of vanishing; it is updated.
    """
    firing = [a for a in active if a.firing]
    observations: list[Observation] = []
    for signal in signals:
        if not signal.enabled:
            continue
        seen = known_series.setdefault(signal.name, set())
        by_series: dict[str, list[Alert]] = {}
        for alert in firing:
            if matches(signal, alert):
                by_series.setdefault(series_of(signal, alert), []).append(alert)
        for series, alerts in sorted(by_series.items()):
            seen.add(series)
            detail = "; ".join(describe(a) for a in sorted(alerts, key=lambda a: a.fingerprint))
            observations.append(Observation(signal.name, now, 1.0, series=series, detail=detail))
        for series in sorted(seen - set(by_series)):
            observations.append(
                Observation(signal.name, now, 0.0, series=series, detail="no matching alert fires")
            )
    return observations
