"""A shadow policy beside the live one: its would-be decisions judged against the live ones.

`watchdog run --shadow-policy NEW.yaml` feeds the shadow the very observations the live
engine records, tick by tick, through `watchdog.policy.replay.Simulation` (derive,
evaluate, triage, plan, authorise: the pure core, with no lifecycle behind it: a shadow
incident ends when its findings clear, as in a replay). The live side is what the live
engine's triage decided at that tick, planned by the same pure planner
(`LiveMirror`), so the two are compared with replay's own notion of agreement
(`watchdog.policy.replaydiff.Pair.differences`, live as the baseline, shadow as the new).

At each tick, every incident key that either side opened or escalated gets one
judgement: `agree`, `differs` (and how), `shadow-only` (the live policy has no
incident there) or `live-only` (the shadow would have none). Pure: the time and the
live decisions come in, judgements come out; nothing here acts or pages.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from watchdog.model import Observation
from watchdog.policy.replay import Replayed, Simulation, escalated, opened
from watchdog.policy.replaydiff import Pair, Render
from watchdog.policy.schema import Policy
from watchdog.policy.signalspecs import DerivedSignal
from watchdog.policy.triage import Attach, Escalate, Open, TriageDecision, finding_id

#: The agreements a judgement may hold, in the order the web page and metrics list them.
AGREEMENTS = ("agree", "differs", "shadow-only", "live-only")


@dataclass(frozen=True, slots=True)
class Judged:
    """One key's decision at one tick, as each side took it, and their agreement."""

    key: str
    decision: str
    shadow: Replayed | None
    live: Replayed | None
    agreement: str
    how: tuple[str, ...]


def said(incident: Replayed | None) -> str:
    """One side's incident in words ('' when that side has none)."""
    if incident is None:
        return ""
    return (
        f"{incident.severity} {incident.scenario} on {incident.subject or incident.key} "
        f"({incident.authority.value}): {incident.plan_said()}"
    )


def judge(live: Replayed | None, shadow: Replayed | None, when: Render) -> tuple[str, list[str]]:
    """Agreement of the two sides on one key, with the differences in words (live → shadow)."""
    if live is None and shadow is None:
        raise ValueError("a judgement needs at least one side's incident")
    if live is None:
        return "shadow-only", ["the live policy has no incident on this key"]
    if shadow is None:
        return "live-only", ["the shadow policy would have no incident on this key"]
    found = Pair(live, shadow).differences(when)
    return ("differs", found) if found else ("agree", [])


def unseen_signals(live: Policy, shadow: Policy) -> list[str]:
    """The shadow's signals that nothing feeds beside the live policy: it probes none of
    its own, and the alert intake is the live policy's (derived ones are derived anew)."""
    fed = {s.name for s in live.signals if s.enabled}
    return sorted(
        s.name for s in shadow.signals
        if s.enabled and not isinstance(s, DerivedSignal) and s.name not in fed
    )


class LiveMirror:
    """The live engine's triage decisions as replay's `Replayed`, planned by the same pure
    planner, so they compare with the shadow's as two replays do. An incident leaves the
    mirror when the live engine no longer holds it open (resolved, closed, escalated)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.open_now: dict[str, Replayed] = {}
        self.number = 0

    def apply(
        self, decisions: Iterable[TriageDecision], now: float, open_keys: Iterable[str]
    ) -> tuple[list[Replayed], list[Replayed]]:
        """The incidents the live engine opened and escalated at this tick."""
        were_opened: list[Replayed] = []
        were_escalated: list[Replayed] = []
        for decision in decisions:
            if isinstance(decision, Open):
                self.number += 1
                incident = opened(self.policy, decision, self.number, now)
                self.open_now[decision.key] = incident
                were_opened.append(incident)
            elif isinstance(decision, Escalate) and decision.key in self.open_now:
                escalated(self.policy, self.open_now[decision.key], decision, now)
                were_escalated.append(self.open_now[decision.key])
            elif isinstance(decision, Attach) and decision.key in self.open_now:
                self.open_now[decision.key].finding_ids.add(finding_id(decision.finding))
        still = set(open_keys)
        for key in [k for k in self.open_now if k not in still]:
            self.open_now.pop(key).closed_at = now
        return were_opened, were_escalated


class ShadowBeside:
    """The shadow policy's simulation and the live mirror, judged key by key each tick."""

    def __init__(self, live: Policy, shadow: Policy) -> None:
        self.simulation = Simulation(shadow)
        self.live = LiveMirror(live)

    def feed(self, observations: Sequence[Observation]) -> None:
        """The raw observations the live engine recorded (probes and alerts)."""
        self.simulation.feed(observations)

    def tick(
        self,
        now: float,
        live_decisions: Iterable[TriageDecision],
        live_open_keys: Iterable[str],
        when: Render,
    ) -> list[Judged]:
        stepped = self.simulation.step(now)
        live_opened, live_escalated = self.live.apply(live_decisions, now, live_open_keys)
        touched: dict[str, list[str]] = {}
        for side, verb, incidents in (
            ("shadow", "opened", stepped.opened),
            ("live", "opened", live_opened),
            ("shadow", "escalated", stepped.escalated),
            ("live", "escalated", live_escalated),
        ):
            for incident in incidents:
                touched.setdefault(incident.key, []).append(f"{side} {verb}")
        judged: list[Judged] = []
        for key, what in touched.items():
            shadow = self.simulation.open_now.get(key)
            live = self.live.open_now.get(key)
            agreement, how = judge(live, shadow, when)
            judged.append(Judged(key, ", ".join(what), shadow, live, agreement, tuple(how)))
        return judged
