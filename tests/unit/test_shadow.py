"""Shadow beside live: the comparison of a second policy's decisions with the live ones.

The live side is what the live engine's triage decides at each tick; here a
`Simulation` of songnodes plays it (the same derive, evaluate, triage), fed the same
synthetic history as the shadow, tick by tick, as the daemon feeds `ShadowBeside`.
Cheap: about 17 minutes of history with two faults, no daemon, no I/O.
"""

from __future__ import annotations

import pytest
import yaml

from tests.replayhistory import Fault, history, stricter
from tests.unit.helpers import SONGNODES, songnodes
from watchdog.policy.replay import Simulation, tick_seconds_for
from watchdog.policy.schema import Policy
from watchdog.policy.shadow import Judged, ShadowBeside, judge, said, unseen_signals
from watchdog.policyfile import parse_policy

T0 = 1_800_000_000.0
FAULTS = (
    Fault("dlq_depth", 6000.0, T0 + 300, 120),  # live: P1 dlq-overflow
    Fault("dlq_manager_health", 0.0, T0 + 700, 90),  # live: P2 dlq-manager down after 20 s
)


def beside_live(shadow: Policy, seconds: float = 1000) -> list[Judged]:
    """Every judgement of `shadow` beside songnodes over the faulty history."""
    live_policy = songnodes()
    live = Simulation(live_policy)
    beside = ShadowBeside(live_policy, shadow)
    observations = list(history(live_policy, T0, seconds, FAULTS))
    judged: list[Judged] = []
    index, tick, step = 0, 0, tick_seconds_for(live_policy)
    while (now := T0 + tick * step) < T0 + seconds:
        batch = []
        while index < len(observations) and observations[index].at <= now:
            batch.append(observations[index])
            index += 1
        live.feed(batch)
        beside.feed(batch)
        decided = live.step(now)
        judged += beside.tick(now, decided.decisions, live.open_now, lambda at: f"{at - T0:.0f}")
        tick += 1
    return judged


def test_the_same_policy_in_shadow_agrees_on_every_decision() -> None:
    judged = beside_live(songnodes())
    assert [(j.key, j.decision, j.agreement) for j in judged] == [
        ("dlq", "shadow opened, live opened", "agree"),
        ("service_failure/dlq-manager", "shadow opened, live opened", "agree"),
    ]
    assert all(j.how == () and j.shadow is not None and j.live is not None for j in judged)
    assert said(judged[0].live) == said(judged[0].shadow)


def test_a_stricter_shadow_says_live_only_and_how_it_differs() -> None:
    """songnodes made stricter (tests/replayhistory.stricter): the DLQ overflow needs 8000
    messages, so only the DLQ's growth opens, at P2 and later; the dlq-manager's 90 s
    outage stays under the shadow's 5 minutes."""
    strict = parse_policy(stricter(SONGNODES.read_text()), "strict.yaml", {})
    judged = beside_live(strict)
    assert [(j.key, j.decision, j.agreement) for j in judged] == [
        ("dlq", "live opened", "live-only"),
        ("dlq", "shadow opened", "differs"),
        ("service_failure/dlq-manager", "live opened", "live-only"),
    ]
    assert judged[0].how == ("the shadow policy would have no incident on this key",)
    assert judged[1].how == ("severity: P1 → P2", "opened: 312 → 332 (+20.0 s)")
    assert said(judged[2].shadow) == ""
    assert said(judged[2].live).startswith("P2 new_service_failure on dlq-manager (")


def test_judgement_of_one_side_only() -> None:
    strict = parse_policy(stricter(SONGNODES.read_text()), "strict.yaml", {})
    live_only = beside_live(strict, seconds=360)[0]
    assert live_only.live is not None
    assert judge(None, live_only.live, str) == (
        "shadow-only", ["the live policy has no incident on this key"]
    )
    with pytest.raises(ValueError, match="at least one side"):
        judge(None, None, str)


def test_signals_the_live_policy_does_not_probe_are_named() -> None:
    data = yaml.safe_load(SONGNODES.read_text())
    extra = dict(data["signals"][0], name="enrichment_health_v2")
    data["signals"].append(extra)
    shadow = parse_policy(yaml.safe_dump(data, sort_keys=False), "shadow.yaml", {})
    assert unseen_signals(songnodes(), shadow) == ["enrichment_health_v2"]
    assert unseen_signals(songnodes(), songnodes()) == []
