"""Every rule of both shipped policies gets a headline a person reads at a glance."""

from __future__ import annotations

import re

import pytest

from tests.unit.helpers import HEALTH_SIGNALS, HEALTHY, ROOT, Core, songnodes
from watchdog.policy.headlines import headline
from watchdog.policy.rules import Evaluator
from watchdog.policy.signalspecs import AlertSignal, DockerSignal
from watchdog.policyfile import load_policy

POLICIES = sorted((ROOT / "policies").glob("*.yaml"))
#: What a machine would print and a person should never have to read.
MACHINE_SHAPED = [
    re.compile(r"\('"),  # a tuple
    re.compile(r"\d(e[+-]\d)"),  # 1.799e+05
    re.compile(r"\s(>=|<=|==|<|>)\s"),  # an operator
    re.compile(r"\b1 (steps|services|rows|minutes)\b"),
    re.compile(r"\b\d{4,}\b"),  # 5000 without its thousands separator
]


def _breaching(op: str, threshold: float) -> float:
    return {">": threshold * 1.5 + 1, ">=": threshold, "<": 0.0, "<=": threshold}.get(
        op, threshold
    )


def _cases() -> list[tuple[str, str]]:
    cases = []
    for path in POLICIES:
        evaluator = Evaluator(load_policy(path, environ={}))
        for rule in evaluator._rules:
            signal, spec = rule.signal, rule.spec
            series = ""
            if isinstance(signal, DockerSignal) and signal.metric != "engine_up":
                series = "web"
            elif isinstance(signal, AlertSignal):
                series = "spotify" if signal.by == "provider" else "SomeAlert"
            elif signal.name in ("breaker_state", "provider_error_rate"):
                series = "spotify"
            words = headline(
                signal,
                op=spec.op,
                threshold=spec.threshold,
                value=_breaching(spec.op, spec.threshold),
                series=series,
                service=rule.service,
                lasted=spec.for_ + 5,
                per_minute=spec.measure == "change_per_minute",
            )
            cases.append((f"{path.name}:{spec.name}", words))
    return cases


CASES = _cases()


@pytest.mark.parametrize(("rule", "words"), CASES, ids=[c[0] for c in CASES])
def test_every_rules_headline_reads_as_words(rule: str, words: str) -> None:
    assert words and words[0] != " ", rule
    for shape in MACHINE_SHAPED:
        assert not shape.search(words), f"{rule}: {words!r} has {shape.pattern}"


def test_headlines_say_what_was_seen_in_plain_words() -> None:
    core = Core(songnodes())
    core.run(0, 30, HEALTHY)
    readings = {
        **HEALTHY,
        "dlq_manager_health": 0.0,
        "breaker_state": {"spotify": 2.0, "musicbrainz": 0.0, "lastfm": 0.0},
        "dlq_depth": 5230.0,
        "enrichment_error_rate": 0.62,
    }
    fired = core.run(31, 120, readings)
    said = {f.rule: f.headline for f in fired}
    assert said["dlq-manager-down"].startswith("dlq-manager has not answered /health as healthy")
    assert said["provider-breaker-open"].startswith("spotify's circuit breaker is OPEN")
    assert "DLQ depth (messages): 5,230 (above 5,000)" in said["dlq-overflow"]
    assert "enrichment error rate: 62 % (above 50 %)" in said["degradation-over-half"]


def test_a_limit_equal_to_the_value_is_not_repeated() -> None:
    core = Core(songnodes())
    core.run(0, 30, HEALTHY)
    fired = core.run(31, 60, {**HEALTHY, **dict.fromkeys(HEALTH_SIGNALS, 0.0)})
    outage = next(f for f in fired if f.rule == "complete-outage")
    assert outage.headline.startswith("share of services down: 100 % for "), outage.headline
