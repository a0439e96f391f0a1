"""One line, in plain words, for what a finding saw: the incident's headline at 3 a.m.

The finding's reason is the whole evidence ("P2 (runbook: …): dlq-manager health
0 < 1 for 25 s (rule dlq-manager-down, for 20 s)"), right for the record and
hard to read at a glance. The headline says the same fact the way a person
would: "dlq-manager has not answered /health as healthy for 25 s", "spotify's
circuit breaker is OPEN", "enrichment error rate: 62 % (above 50 %) for
1.5 min", "DLQ depth (messages): 5,230 (above 5,000)". Numbers are formatted
for people (percentages, thousands separators, durations, state names) and a
limit equal to the value is not repeated.

Pure: the signal's spec, the rule's comparison, the value and how long it has
held go in; a sentence comes out.
"""

from __future__ import annotations

import re

from watchdog.policy.durations import format_duration
from watchdog.policy.signalspecs import (
    AlertSignal,
    AnySignal,
    DerivedSignal,
    DockerSignal,
    HttpSignal,
)

#: How a comparison reads after the value: "(above 50 %)".
LIMIT_WORDS = {">": "above", ">=": "at least", "<": "below", "<=": "at most", "==": "", "!=": "not"}
#: "circuit breaker state (0 CLOSED, 1 HALF_OPEN, 2 OPEN)": a state signal names its states.
STATE_NAMES = re.compile(r"(\d+)\s+([A-Z][A-Z_]*)")


def headline(
    signal: AnySignal,
    *,
    op: str,
    threshold: float,
    value: float | None,
    series: str = "",
    service: str = "",
    lasted: float = 0.0,
    per_minute: bool = False,
) -> str:
    """What the finding saw, in one sentence."""
    held = f" for {format_duration(lasted)}" if lasted >= 1 else ""
    if value is None:
        return f"{_subject(signal, series, service)}: no reading{held}"
    if signal.unit == "bool" and not per_minute:
        return _yes_no(signal, series, service, failing=_failing(op, threshold), held=held)
    if signal.unit == "state" and not per_minute:
        names = dict(STATE_NAMES.findall(signal.description))
        shown = names.get(f"{value:g}", f"{value:g}")
        noun = re.sub(r"\s*\([^)]*\)", "", signal.description).strip() or signal.name
        noun = re.sub(r"\s*state$", "", noun)
        return f"{_possessive(series or service)}{noun} is {shown}{held}"
    number = _number(signal.unit, value)
    limit = _number(signal.unit, threshold)
    bound = LIMIT_WORDS.get(op, op)
    said = f" ({bound} {limit})" if limit != number and bound else ""
    if per_minute:
        verb = "grows by" if value >= 0 else "shrinks by"
        how = f" {verb} {number.lstrip('-')} a minute"
    else:
        how = f": {number}"
    return f"{_subject(signal, series, service)}{how}{said}{held}"


def _failing(op: str, threshold: float) -> bool:
    """A bool rule breaches on 0 ("< 1") or on 1 (">= 1", an alert firing)."""
    return op in ("<", "<=", "==") and threshold <= 1 and not (op == "==" and threshold == 1)


def _yes_no(
    signal: AnySignal, series: str, service: str, *, failing: bool, held: str
) -> str:
    if isinstance(signal, AlertSignal):
        if signal.alertname:
            return f"Alertmanager fires {signal.alertname}{' for ' + series if series else ''}"
        if series:
            return f"Alertmanager fires {series}"
        return f"Alertmanager: {signal.description or signal.name}"
    if isinstance(signal, HttpSignal) and failing:
        return f"{service or series or signal.name} has not answered {signal.path} as healthy{held}"
    if isinstance(signal, DockerSignal) and failing:
        if signal.metric == "engine_up":
            return f"the Docker engine has not answered{held}"
        return f"{_possessive(series)}container is {_docker_state(signal.metric)}{held}"
    verdict = "failing" if failing else "true"
    return f"{_subject(signal, series, service)}: {verdict}{held}"


def _docker_state(metric: str) -> str:
    return {"running": "not running", "healthy": "unhealthy"}.get(metric, f"{metric} = 0")


def _subject(signal: AnySignal, series: str, service: str) -> str:
    """The signal's description, with the series or service it is about when not in it."""
    noun = signal.description or signal.name.replace("_", " ")
    about = service or series
    if isinstance(signal, DerivedSignal) or not about or about.lower() in noun.lower():
        return noun
    return f"{_possessive(about)}{noun}"


def _possessive(name: str) -> str:
    return f"{name}'s " if name else ""


def _number(unit: str, value: float) -> str:
    """A value as a person reads it: 62 %, 5,230, 1.5 min, 0.37/s."""
    if unit == "ratio":
        percent = value * 100
        return f"{percent:.0f} %" if abs(percent - round(percent)) < 0.05 else f"{percent:.1f} %"
    if unit == "seconds":
        return format_duration(value)
    if unit == "per_second":
        return f"{value:,.3g}/s"
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")
