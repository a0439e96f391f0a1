"""Replay: recorded observations run through a policy in the pure core, on a simulated clock.

`simulate` does what the daemon's tick does with the same functions (derive, evaluate,
triage, plan, authorise), stepping the clock by the daemon's own tick for the policy and
feeding each recorded observation at the first tick at or after its time. No I/O, no
clock: the observations and the span come in, the incidents the policy would have
opened come out, each with its severity, scenario, plan and authority, and when.

What it leaves out, on purpose: the world's answers. A replay cannot know what a plan's
steps would have done, how verification would have read, or what a human approved, so
an incident here ends when every one of its findings has cleared (the `Cleared` move of
`policy.moves`, the point where the daemon also resets the rules' clocks), and the
recorded observations after a real rollback show the recovery it really caused. The
comparison (`watchdog.policy.replaydiff`) therefore runs BOTH policies through this
same simulation, rather than comparing with the journal's own incidents: a difference
it shows is one of policy, never of the simulation against the world.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from watchdog.model import AuthMode, Finding, Observation, Severity
from watchdog.policy.planner import plan_for
from watchdog.policy.rules import Evaluator, RuleState
from watchdog.policy.schema import Policy
from watchdog.policy.triage import (
    Attach,
    Escalate,
    Open,
    OpenIncident,
    TriageDecision,
    finding_id,
    rule_key,
)
from watchdog.policy.triage import triage as triage_findings
from watchdog.policy.windows import Windows


def tick_seconds_for(policy: Policy) -> float:
    """The daemon's tick for this policy (`Daemon.tick_seconds`): a quarter of the
    shortest signal interval, between 0.05 s and 1 s."""
    shortest = min((s.interval for s in policy.signals), default=1.0)
    return min(1.0, max(0.05, shortest / 4))


def horizon_for(policy: Policy) -> float:
    """How much history the daemon's windows keep for this policy."""
    return float(max(
        [600.0]
        + [getattr(s, "window", 0.0) * 2 for s in policy.signals]
        + [r.window * 2 for r in policy.rules]
    ))


@dataclass(slots=True)
class Replayed:
    """One incident the policy opened in the replay: what it decided, and when."""

    number: int
    key: str
    opened_at: float
    severity: Severity
    scenario: str
    subject: str
    reason: str
    plan_title: str
    plan_steps: tuple[str, ...]
    authority: AuthMode
    authority_reason: str
    finding_ids: set[str] = field(default_factory=set)
    supersedes: frozenset[str] = frozenset()
    #: (when, from, to) for each rise in severity.
    escalations: list[tuple[float, Severity, Severity]] = field(default_factory=list)
    closed_at: float | None = None

    def for_triage(self) -> OpenIncident:
        return OpenIncident(
            self.key, self.severity, self.scenario, frozenset(self.finding_ids), self.supersedes
        )

    def plan_said(self) -> str:
        steps = ", ".join(self.plan_steps) if self.plan_steps else "no steps (notify only)"
        return f"{self.plan_title!r}: {steps}"


@dataclass(frozen=True, slots=True)
class Run:
    """A policy's replay over one span: its incidents and what it took."""

    incidents: tuple[Replayed, ...]
    ticks: int
    fed: int
    start: float
    end: float
    tick_seconds: float


class Simulation:
    """The daemon's decision tick, stepwise: what `simulate` runs over a recorded span and
    what a shadow policy (`watchdog.engine.shadow`) runs beside the live one, tick by tick.

    `feed` records raw observations (derived ones are derived again at each `step`);
    `step(now)` runs derive, evaluate and triage, opens, escalates and ends incidents,
    and says which it opened, escalated and ended at that tick.
    """

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.windows = Windows(horizon=horizon_for(policy))
        self.evaluator = Evaluator(policy)
        self.states: dict[tuple[str, str], RuleState] = {}
        self.open_now: dict[str, Replayed] = {}
        self.done: list[Replayed] = []
        self.number = 0

    def feed(self, observations: Sequence[Observation]) -> None:
        for observation in observations:
            self.windows.record(observation)

    def step(self, now: float) -> Stepped:
        stepped = Stepped()
        self.windows.record_all(self.evaluator.derive(self.windows, now))
        result = self.evaluator.evaluate(self.windows, self.states, now)
        self.states = result.states
        views = [incident.for_triage() for incident in self.open_now.values()]
        stepped.decisions = triage_findings(result.active, views, result.holding)
        for decision in stepped.decisions:
            if isinstance(decision, Open):
                self.number += 1
                incident = opened(self.policy, decision, self.number, now)
                self.open_now[decision.key] = incident
                stepped.opened.append(incident)
            elif isinstance(decision, Escalate):
                escalated(self.policy, self.open_now[decision.key], decision, now)
                stepped.escalated.append(self.open_now[decision.key])
            elif isinstance(decision, Attach):
                self.open_now[decision.key].finding_ids.add(finding_id(decision.finding))
        active = {finding_id(f) for f in result.active}
        for key, incident in list(self.open_now.items()):
            if not incident.finding_ids & active:
                incident.closed_at = now
                self.done.append(self.open_now.pop(key))
                stepped.ended.append(incident)
                for identity in incident.finding_ids:  # as the daemon: a return fires anew
                    self.states[rule_key(identity)] = RuleState()
        return stepped


@dataclass(slots=True)
class Stepped:
    """What one tick of a `Simulation` decided: triage's decisions, and their incidents."""

    decisions: list[TriageDecision] = field(default_factory=list)
    opened: list[Replayed] = field(default_factory=list)
    escalated: list[Replayed] = field(default_factory=list)
    ended: list[Replayed] = field(default_factory=list)


def simulate(
    policy: Policy,
    observations: Sequence[Observation],
    *,
    start: float,
    end: float,
    tick_seconds: float | None = None,
) -> Run:
    """Step a simulated clock from `start` to `end`, as the daemon ticks, over the policy.

    `observations` are oldest first; those before `start` warm the windows up (pass the
    policy's horizon of history before it for rules with windows to read as they did).
    """
    step = tick_seconds or tick_seconds_for(policy)
    simulation = Simulation(policy)
    index, total, ticks = 0, len(observations), 0
    while index < total and observations[index].at < start:  # warm-up, decides nothing
        simulation.windows.record(observations[index])
        index += 1
    fed = index
    tick = 0
    now = start
    while now <= end:
        while index < total and observations[index].at <= now:
            simulation.windows.record(observations[index])
            index += 1
        simulation.step(now)
        ticks += 1
        tick += 1
        now = start + tick * step  # no drift over a day of additions
    done = [*simulation.done, *simulation.open_now.values()]
    done.sort(key=lambda incident: incident.number)
    return Run(tuple(done), ticks, index - fed, start, end, step)


def _plan(
    policy: Policy, scenario: str, severity: Severity, subject: str, finding: Finding, number: int
) -> tuple[str, tuple[str, ...], AuthMode, str]:
    plan = plan_for(
        policy,
        scenario=scenario,
        severity=severity,
        subject=subject,
        params={"series": finding.series, **finding.param_map(), "incident": str(number)},
        why=finding.reason,
    )
    auth = plan.authorization
    steps = tuple(f"{s.name} ({s.risk})" for s in plan.steps)
    return plan.title, steps, auth.mode, auth.reason


def opened(policy: Policy, decision: Open, number: int, now: float) -> Replayed:
    """An incident as `policy` opens it on `decision`: its plan and authority from the
    pure planner, as the daemon's `apply_triage` plans it."""
    lead = decision.findings[0]
    title, steps, mode, why = _plan(
        policy, decision.scenario, decision.severity, decision.subject, lead, number
    )
    return Replayed(
        number=number,
        key=decision.key,
        opened_at=now,
        severity=decision.severity,
        scenario=decision.scenario,
        subject=decision.subject,
        reason=decision.reason,
        plan_title=title,
        plan_steps=steps,
        authority=mode,
        authority_reason=why,
        finding_ids={finding_id(f) for f in decision.findings},
        supersedes=frozenset(g for f in decision.findings for g in f.supersedes),
    )


def escalated(policy: Policy, incident: Replayed, decision: Escalate, now: float) -> None:
    """A rise in severity re-plans, as the daemon's `retriage` does."""
    incident.escalations.append((now, incident.severity, decision.severity))
    incident.severity = decision.severity
    incident.scenario = decision.scenario
    incident.finding_ids.add(finding_id(decision.finding))
    title, steps, mode, why = _plan(
        policy, decision.scenario, decision.severity, incident.subject, decision.finding,
        incident.number,
    )
    incident.plan_title, incident.plan_steps = title, steps
    incident.authority, incident.authority_reason = mode, why
