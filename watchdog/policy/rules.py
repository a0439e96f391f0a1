"""Rules: from signal windows to findings, with `for` and `clear_for` hysteresis.

A rule fires only once its condition has held for `for` seconds, and an active
rule clears only once the condition has been false for `clear_for` seconds, so a
flapping signal neither pages nor resolves on one reading. The state that makes
this possible (since when has it held?) is a value handed in and handed back;
`now` is an argument. Nothing here reads the clock or the network.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from watchdog.model import Finding, Observation
from watchdog.policy.changes import RecentChange, change_unknown, recent_change
from watchdog.policy.durations import format_duration
from watchdog.policy.headlines import headline
from watchdog.policy.schema import AnySignal, DerivedSignal, Policy, RuleSpec
from watchdog.policy.windows import Sample, Windows, change_per_minute

COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True, slots=True)
class RuleState:
    """Where one rule stands for one series."""

    active: bool = False
    breach_since: float | None = None
    clear_since: float | None = None
    value: float | None = None


RuleStates = Mapping[tuple[str, str], RuleState]


@dataclass(frozen=True, slots=True)
class Tick:
    """The outcome of one evaluation: new state and what changed."""

    states: dict[tuple[str, str], RuleState]
    fired: list[Finding] = field(default_factory=list)
    cleared: list[Finding] = field(default_factory=list)
    active: list[Finding] = field(default_factory=list)
    #: Groups a superseding rule will absorb once its `for` is met: triage opens
    #: nothing new in them meanwhile, so a complete outage opens one P0 and not
    #: first a P2 for each service whose own `for` is shorter.
    holding: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    spec: RuleSpec
    signal: AnySignal
    compare: Callable[[float, float], bool]
    staleness: float
    words: str
    service: str


class Evaluator:
    """A policy's rules, compiled once, evaluated on every tick."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        signals = {s.name: s for s in policy.signals}
        self._rules = [
            _CompiledRule(
                spec=rule,
                signal=signals[rule.signal],
                compare=COMPARE[rule.op],
                staleness=signals[rule.signal].staleness_limit(),
                words=rule.says or signals[rule.signal].description or rule.signal,
                service=_service_of(policy, signals[rule.signal]),
            )
            for rule in policy.rules
        ]
        self._derived = [s for s in policy.signals if isinstance(s, DerivedSignal)]
        # How old an input may be and still count toward a derived value.
        self._max_age = {s.name: s.staleness_limit() for s in policy.signals}
        # The service each input of a derived signal speaks for, for `{failing}`.
        self._service = {s.name: _service_of(policy, s) for s in policy.signals}

    def derive(self, windows: Windows, now: float) -> list[Observation]:
        """Observations of the derived signals, from the latest values of their inputs."""
        derived = []
        for signal in self._derived:
            observation = derive_signal(signal, windows, now, self._max_age)
            windows.record(observation)
            derived.append(observation)
        return derived

    def evaluate(self, windows: Windows, states: RuleStates, now: float) -> Tick:
        new_states = dict(states)
        tick = Tick(states=new_states)
        for rule in self._rules:
            for series, latest in windows.latest_all(rule.spec.signal):
                key = (rule.spec.name, series)
                before = states.get(key, _INACTIVE)
                after = self._step(rule, windows, series, latest, before, now)
                if after is not before:
                    new_states[key] = after
                if after.active:
                    failing = self.failing(rule.signal, windows, now)
                    change = self._change(rule, windows, series, after, now)
                    finding = self._finding(
                        rule, series, after, now, latest, failing=failing, change=change
                    )
                    tick.active.append(finding)
                    if not before.active:
                        tick.fired.append(finding)
                elif before.active:
                    tick.cleared.append(
                        self._finding(rule, series, before, now, latest, cleared=True)
                    )
                elif self._holds(rule, latest, after, now):
                    tick.holding.update(rule.spec.supersedes)
        return tick

    @staticmethod
    def _holds(rule: _CompiledRule, latest: Sample, state: RuleState, now: float) -> bool:
        """A superseding rule breaching on fresh data, its `for` not yet met, holds its groups.

        Only for as long as its `for` (plus a reading's age) could still be met: a
        rule whose data went stale, or that waits on something else, holds nothing.
        """
        spec, since = rule.spec, state.breach_since
        if not spec.supersedes or since is None or now - latest.at > rule.staleness:
            return False
        return now - since <= spec.for_ + rule.staleness

    def _step(
        self,
        rule: _CompiledRule,
        windows: Windows,
        series: str,
        latest: Sample,
        state: RuleState,
        now: float,
    ) -> RuleState:
        if now - latest.at > rule.staleness:
            return state  # too old to decide on: hold, never act on stale data
        value = self._measure(rule, windows, series, latest, now)
        if value is None:
            if rule.spec.on_error != "breach":
                return state
            holds = True
        else:
            holds = rule.compare(value, rule.spec.threshold)
        if holds:
            since = state.breach_since if state.breach_since is not None else latest.at
            active = state.active or (
                now - since >= rule.spec.for_
                and not self._awaits_change(rule, windows, series, since, now)
            )
            if (active, since, None, value) == (
                state.active,
                state.breach_since,
                state.clear_since,
                state.value,
            ):
                return state
            return RuleState(active=active, breach_since=since, clear_since=None, value=value)
        if not state.active:
            if state.breach_since is None and state.value == value:
                return state
            return RuleState(value=value)
        clear_since = state.clear_since if state.clear_since is not None else latest.at
        if now - clear_since >= rule.spec.clear_for:
            return RuleState(value=value)
        return replace(state, clear_since=clear_since, value=value)

    def failing(self, signal: AnySignal, windows: Windows, now: float) -> str:
        """For a count or share: the services whose fresh input meets its `where`, "a,b".

        It is the rule's evidence made data: a plan of the share rules ("half the
        services down") names them as `{failing}`, so its step restarts those and
        leaves the others alone without reading a probe. Empty for any other signal.
        """
        if not isinstance(signal, DerivedSignal) or signal.where is None:
            return ""
        compare, threshold = COMPARE[signal.where.op], signal.where.threshold
        found: list[str] = []
        for name in signal.of:
            limit = self._max_age.get(name)
            for series, sample in windows.latest_all(name):
                if limit is not None and now - sample.at > limit:
                    continue
                if sample.value is not None and compare(sample.value, threshold):
                    found.append(self._service.get(name) or series or name)
        return ",".join(sorted(dict.fromkeys(found)))

    def _awaits_change(
        self, rule: _CompiledRule, windows: Windows, series: str, since: float, now: float
    ) -> bool:
        """Whether the rule's route waits for a change reading taken since the breach began."""
        spec = rule.spec.after_change
        if spec is None:
            return False
        limit = self._max_age.get(spec.signal, 0.0)
        return change_unknown(spec, windows, rule.service or series, since, now, limit)

    def _change(
        self, rule: _CompiledRule, windows: Windows, series: str, state: RuleState, now: float
    ) -> RecentChange | None:
        """For a rule with `after_change`: the service's change just before this breach."""
        spec = rule.spec.after_change
        if spec is None or state.breach_since is None:
            return None
        limit = self._max_age.get(spec.signal, 0.0)
        service = rule.service or series
        return recent_change(spec, windows, service, state.breach_since, now, limit)

    @staticmethod
    def _measure(
        rule: _CompiledRule, windows: Windows, series: str, latest: Sample, now: float
    ) -> float | None:
        if rule.spec.measure == "value":
            return latest.value
        start = now - rule.spec.window
        return change_per_minute(windows.since(rule.spec.signal, series, start))

    def _finding(
        self,
        rule: _CompiledRule,
        series: str,
        state: RuleState,
        now: float,
        latest: Sample,
        cleared: bool = False,
        failing: str = "",
        change: RecentChange | None = None,
    ) -> Finding:
        spec = rule.spec
        severity, scenario, runbook = spec.severity, spec.scenario, spec.runbook
        if change is not None and spec.after_change is not None:  # scenario 1: a bad deploy
            scenario = spec.after_change.scenario
            severity = spec.after_change.severity or severity
            runbook = spec.after_change.runbook or runbook
        words = {
            "series": series,
            "signal": spec.signal,
            "target": getattr(rule.signal, "target", ""),
            "service": rule.service or series,
            "failing": failing,
        }
        since = state.breach_since if state.breach_since is not None else now
        value = "no value" if state.value is None else f"{state.value:.4g}"
        per_minute = " per minute" if spec.measure == "change_per_minute" else ""
        who = f" {series}" if series else ""
        evidence = (
            f"{rule.words}{who} {value}{per_minute} {spec.op} {spec.threshold:g} "
            f"for {format_duration(now - since)} "
            f"(rule {spec.name}, for {format_duration(spec.for_)})"
        )
        observed = latest.error or latest.detail
        if cleared:
            reason = (
                f"{spec.name} cleared: {rule.words}{who} back within bounds "
                f"for {format_duration(spec.clear_for)}"
            )
        else:
            row = f" (runbook: {runbook})" if runbook else ""
            changed = f"{change.words()}; " if change is not None else ""
            reason = f"{severity}{row}: {changed}{evidence}" + (
                f"; seen: {observed}" if observed else ""
            )
        return Finding(
            rule=spec.name,
            signal=spec.signal,
            series=series,
            severity=severity,
            scenario=scenario,
            group=spec.group or spec.scenario,
            subject=spec.subject.format(**words),
            since=since,
            reason=reason,
            evidence=tuple(
                e for e in (change.words() if change else "", evidence, observed or "") if e
            ),
            params=tuple(sorted((k, v.format(**words)) for k, v in spec.params.items())),
            supersedes=tuple(spec.supersedes),
            headline=headline(
                rule.signal,
                op=spec.op,
                threshold=spec.threshold,
                value=state.value,
                series=series,
                service=rule.service,
                lasted=now - since,
                per_minute=bool(per_minute),
            ),
            value=state.value,
        )


_INACTIVE = RuleState()


def _service_of(policy: Policy, signal: AnySignal) -> str:
    target = getattr(signal, "target", None)
    spec = policy.targets.get(target) if target else None
    return (spec.service or target or "") if spec is not None else ""


def derive_signal(
    signal: DerivedSignal,
    windows: Windows,
    now: float,
    max_age: Mapping[str, float] | None = None,
) -> Observation:
    """Count, share, sum, max or min over the latest values of other signals.

    An input older than its signal's staleness limit (`max_age`) does not count:
    a derived value stamped `now` must not pass stale readings off as fresh
    evidence. With no fresh input the derived signal reads as an error.
    """
    values: list[float] = []
    witnesses: list[tuple[float, str]] = []
    limits = max_age or {}
    for name in signal.of:
        limit = limits.get(name)
        for series, sample in windows.latest_all(name):
            if limit is not None and now - sample.at > limit:
                continue
            if sample.value is not None:
                values.append(sample.value)
                said = sample.error or sample.detail
                label = f"{name}[{series}]" if series else name
                witnesses.append(
                    (sample.value, f"{label} = {sample.value:g}" + (f" ({said})" if said else ""))
                )
    if not values:
        return Observation(signal.name, now, None, error="no fresh input values")
    if signal.op in ("count", "fraction"):
        assert signal.where is not None
        compare, threshold = COMPARE[signal.where.op], signal.where.threshold
        hits = sum(1 for v in values if compare(v, threshold))
        result = float(hits) if signal.op == "count" else hits / len(values)
        detail = f"{hits} of {len(values)} {signal.where.op} {threshold:g}"
    else:
        result = (
            sum(values)
            if signal.op == "sum"
            else max(values)
            if signal.op == "max"
            else min(values)
        )
        detail = f"{signal.op} of {len(values)} values"
        if signal.op in ("max", "min"):
            # Say which input decided it, and what that input saw: the real evidence.
            chosen = next(w for v, w in witnesses if v == result)
            detail += f", from {chosen}"
    return Observation(signal.name, now, result, detail=detail)
