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

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from watchdog.model import Alert, Observation
from watchdog.policy.schema import AlertSignal


def matches(signal: AlertSignal, alert: Alert) -> bool:
    """The alert's name and labels are the signal's; an alert with no `by` label cannot be
    attributed to a series (a provider, a service), so it does not count."""
    return matches_labels(signal, dict(alert.labels))


def matches_labels(signal: AlertSignal, labels: Mapping[str, str]) -> bool:
    """`matches`, on labels already in a dict (one dict per alert, for every signal)."""
    name = labels.get("alertname", "")
    if signal.alertname is not None and name != signal.alertname:
        return False
    if signal.alertnames and name not in signal.alertnames:
        return False
    if name in signal.except_alertnames:
        return False
    if signal.by and not labels.get(signal.by):
        return False
    return all(labels.get(k, "") == v for k, v in signal.match.items())


@dataclass(frozen=True, slots=True)
class SeriesVerdict:
    """Whether a delivery's firing alerts fit in the distinct series a signal may hold.

    Each distinct value of a signal's `by` label is a series, and each series a
    finding and possibly an incident: a label is the sender's to choose, so the
    number held at once is capped. When refused, `index` is the first alert that
    would go over and `label` the label that names its series.
    """

    allowed: bool
    reason: str
    index: int = -1
    label: str = ""
    added: tuple[tuple[str, str], ...] = ()


def assess_series(
    signals: Sequence[AlertSignal],
    alerts: Sequence[Alert],
    held: Mapping[str, Collection[str]],
    cap: int,
    pending: Mapping[str, Collection[str]] | None = None,
) -> SeriesVerdict:
    """Refuse the delivery if one of its firing alerts would make a signal hold more
    than `cap` distinct series; `held` (signal name to series firing now) and `pending`
    (series other deliveries of the same write add) are the facts. A series already
    held costs nothing: repeats and new firings of a known subject always pass."""
    extra = pending or {}
    added: dict[str, set[str]] = {}
    for index, alert in enumerate(alerts):
        if not alert.firing:
            continue
        labels = dict(alert.labels)
        for signal in signals:
            if not signal.by or not signal.enabled or not matches_labels(signal, labels):
                continue
            series = labels[signal.by]
            seen, also = held.get(signal.name, ()), extra.get(signal.name, ())
            mine = added.setdefault(signal.name, set())
            if series in seen or series in also or series in mine:
                continue
            count = len(seen) + len(also) + len(mine)
            if count >= cap:
                return SeriesVerdict(
                    False,
                    f"found {series!r}, a new {signal.by} for {signal.name}, which already "
                    f"holds {count} distinct {signal.by} series firing; expected at most {cap} "
                    "at once (more wait until some resolve)",
                    index,
                    signal.by,
                )
            mine.add(series)
    new = tuple(sorted((name, s) for name, values in added.items() for s in values))
    return SeriesVerdict(True, f"{len(new)} new series, within {cap} per signal", added=new)


class TooManySeries(Exception):
    """A delivery refused by `assess_series`, raised to the receiver that answers it."""

    def __init__(self, verdict: SeriesVerdict) -> None:
        super().__init__(verdict.reason)
        self.verdict = verdict


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
