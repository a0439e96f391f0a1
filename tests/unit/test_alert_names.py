"""The stack's own alert names (TARGET-STACK.md) against songnodes.yaml's alert rules.

The runbook's rows are mapped by what each alert means, not by a `category` label
the stack never sets. The names are parsed from the doc's alert section (a
verbatim copy, `target_stack_alerts.md`), so an alert the doc adds fails here until
the policy maps it or this file says why it is left unmapped; each one, as the
stack labels it, drives exactly one rule (no catch-all counts it a second time).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.unit.helpers import songnodes
from tests.unit.test_decision_tree import alert, alert_readings

DOC = Path(__file__).with_name("target_stack_alerts.md")

#: Alert name → the rule it drives, by meaning (see the comments in songnodes.yaml).
MAPPED = {
    "CircuitBreakerOpen": "alert-circuit-breaker-open",  # P2: one provider failing
    "CircuitBreakerFlapping": "alert-breakers-flapping",  # P1: breakers constantly OPEN
    "DLQDepthHigh": "alert-dlq-backlog",  # P2: DLQ filling
    "DLQDepthCritical": "alert-dlq-critical",  # P1: DLQ overflow
    "EnrichmentDLQBacklog": "alert-dlq-backlog",  # P2: DLQ filling
    "EnrichmentAPIHighErrorRate": "alert-enrichment-degraded",  # P2: degradation < 50 %
    "EnrichmentAPICompleteFail": "alert-enrichment-failing",  # P1: degradation > 50 %
    "SpotifyAPIDown": "alert-spotify-down",  # P2: one provider failing
    "WaterfallProviderFailure": "alert-enrichment-degraded",  # P2: degradation < 50 %
    "EnrichmentRateLimitViolations": "alert-enrichment-degraded",  # P2: slower enrichment
    "HighRetryRate": "non-critical-alert",  # P3: a symptom, not a fault
    "EnrichmentConfigReloadFailed": "alert-config-reload-failed",  # P2: configuration
    "ServiceDown": "alert-service-down",  # P2: single service failure (by its job)
}
#: Alert name → why no rule maps it. None today: every name the doc lists is mapped.
UNMAPPED: dict[str, str] = {}


def documented() -> dict[str, set[str]]:
    """Each alert name in the doc's section, with the severities the doc gives it."""
    text = DOC.read_text(encoding="utf-8")
    found: dict[str, set[str]] = {}
    for match in re.finditer(r"`([A-Z][A-Za-z]*[a-z][A-Za-z]*)`([^`]{0,40})", text):
        name, after = match.groups()
        words = set(re.findall(r"\b(warning|critical)\b", after))
        found.setdefault(name, set()).update(words)
    found["CircuitBreakerOpen"] |= {"warning", "critical"}  # "defined twice — warning, ..."
    return found


def test_the_doc_lists_the_alerts_this_file_maps() -> None:
    names = documented()
    assert len(names) >= 13, sorted(names)
    assert sorted(set(names) - set(MAPPED) - set(UNMAPPED)) == []
    assert sorted(set(MAPPED) - set(names)) == []  # no mapping left for a name gone


@pytest.mark.parametrize("name", sorted(MAPPED))
def test_each_alert_drives_exactly_its_rule(name: str) -> None:
    policy = songnodes()
    for severity in sorted(documented()[name] or {"critical", "warning"}):
        # The stack's labels, plus the metric labels a rule may carry (provider, job).
        labels = {"component": "metadata_enrichment", "category": "reliability"}
        readings = alert_readings(
            policy, alert(name, severity, provider="spotify", job="rest-api", **labels)
        )
        firing = {
            s for s, seen in readings.items() if isinstance(seen, dict) and 1.0 in seen.values()
        }
        rules = sorted(r.name for r in policy.rules if r.signal in firing)
        assert rules == [MAPPED[name]], f"{name} ({severity}) drives {rules}"
