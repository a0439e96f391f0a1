"""`watchdog explain`: why an incident happened and went as it did, link by link, in words.

The chain runs from what was observed (each finding's evidence) to the rule that
read it, the finding it made, the severity (its runbook row, an escalation, the
groups it absorbs), who may authorise the plan and with what quorum, what the
guards said, the plan, each step's outcome and evidence, and the verification.
Each policy link names its file and line (`policies/songnodes.yaml:421 rules[17]
dlq-overflow`). The chain is built from the journal: a policy that has changed
since (a rule removed) only loses the line, and says so; the near misses (rules on
the same signals that did not fire, `watchdog.policy.nearmiss`) need the policy.

Pure: `ExplainFacts` in, an `Explanation` out; no clock, no I/O. Times are said as
offsets from the incident's opening, so nothing here needs a calendar.
"""

from __future__ import annotations

from collections.abc import Iterator

from watchdog.model import Finding
from watchdog.policy.durations import format_duration
from watchdog.policy.explainvalues import ExplainFacts, Explanation, Link, Place, StepRun
from watchdog.policy.nearmiss import near_misses
from watchdog.policy.reenable import GROUP as REENABLE
from watchdog.policy.schema import AuthorityRow, AuthRule, RuleSpec

GUARD_KINDS = ("guards", "preflight", "prechecklist", "inflight")
#: Timeline kinds that change the plan or end it by hand, said under "plan".
PLAN_KINDS = ("rung", "closed_by_human")


def explain(facts: ExplainFacts) -> Explanation:
    """The whole chain and the near misses of one incident."""
    notes = list(_notes(facts))
    links = [
        *_observed_to_finding(facts),
        _severity(facts),
        _authority(facts),
        _guards(facts),
        _plan(facts),
        *_steps(facts),
        _verification(facts),
    ]
    misses = (
        near_misses(facts.policy, facts.findings, facts.opened_at, facts.places)
        if facts.policy is not None
        else ()
    )
    subject = f" on {facts.subject}" if facts.subject else ""
    title = (
        f"Incident {facts.incident_id}: {facts.severity.value} {facts.scenario}{subject}, "
        f"{facts.state.replace('_', ' ')}"
    )
    return Explanation(
        facts.incident_id, title, tuple(links), misses, tuple(notes),
        weighed=facts.policy is not None,
    )


def _notes(facts: ExplainFacts) -> Iterator[str]:
    if facts.policy is None:
        yield "no policy given: explained from the journal alone, without file and line " \
            "and without near misses (--policy FILE adds them)"
        return
    known = {rule.name for rule in facts.policy.rules}
    for rule in dict.fromkeys(f.rule for f in facts.findings):
        if rule not in known and rule != REENABLE:
            yield f"the policy no longer has rule {rule!r}: its links are the journal's words"
    if facts.plan is not None and facts.plan.scenario not in facts.policy.scenarios:
        yield f"the policy no longer has scenario {facts.plan.scenario!r}"


def _place(facts: ExplainFacts, section: str, name: str) -> Place | None:
    places = facts.places
    if places is None:
        return None
    table = {"rules": places.rules, "signals": places.signals, "scenarios": places.scenarios,
             "authority": places.authority, "sections": places.sections}[section]
    return table.get(name)


def _rule(facts: ExplainFacts, name: str) -> RuleSpec | None:
    if facts.policy is None:
        return None
    return next((r for r in facts.policy.rules if r.name == name), None)


def _at(facts: ExplainFacts, at: float) -> str:
    """A moment as an offset from the opening: "+2.4 s" or "-1.0 s" (before it)."""
    return f"{'+' if at >= facts.opened_at else '-'}{abs(at - facts.opened_at):.1f} s"


def _before(facts: ExplainFacts, at: float) -> str:
    """A moment said against the opening: "2.4 s before it opened" / "1.0 s after"."""
    gap = facts.opened_at - at
    return f"{abs(gap):.1f} s {'before' if gap >= 0 else 'after'} the incident opened"


def _observed_to_finding(facts: ExplainFacts) -> Iterator[Link]:
    if not facts.findings:
        yield Link("observed", "no finding: this incident was not opened by a rule",
                   (f"opened because: {facts.reason}",))
        return
    for finding in facts.findings:
        yield from _finding_links(facts, finding)


def _finding_links(facts: ExplainFacts, finding: Finding) -> Iterator[Link]:
    series = f" [{finding.series}]" if finding.series else ""
    rule = _rule(facts, finding.rule)
    per = " per minute" if rule is not None and rule.measure == "change_per_minute" else ""
    value = "" if finding.value is None else f" (value {finding.value:g}{per})"
    yield Link(
        "observed",
        f"{finding.signal}{series}{value}",
        tuple(f"seen: {item}" for item in finding.evidence) or ("seen: (no evidence kept)",),
        _place(facts, "signals", finding.signal),
    )
    if finding.rule == REENABLE:
        yield _reenable(facts, finding)
    elif rule is not None:
        condition = f"{rule.signal} {rule.measure.replace('_', ' ')} {rule.op} " \
            f"{rule.threshold:g} for {format_duration(rule.for_)}"
        said = [f"fires when {condition} (clears after {format_duration(rule.clear_for)})"]
        if rule.after_change is not None:
            route = rule.after_change
            said.append(f"after a change within {format_duration(route.within)} "
                        f"({route.signal}): scenario {route.scenario} instead")
    else:
        missing = "" if facts.policy is None else " (no longer in the policy)"
        yield Link("rule", finding.rule, (f"as journaled{missing}: {finding.reason}",))
    if rule is not None:
        yield Link("rule", finding.rule, tuple(said), _place(facts, "rules", finding.rule))
    yield Link(
        "finding",
        f"{finding.severity.value} {finding.scenario} in group {finding.group}"
        + (f", subject {finding.subject}" if finding.subject else ""),
        (f"{'healthy' if finding.rule == REENABLE else 'breaching'} since "
         f"{_before(facts, finding.since)}",
         f"said: {finding.said()}"),
    )


def _reenable(facts: ExplainFacts, finding: Finding) -> Link:
    """Not a rule: the `reenable:` watch of the scenario whose change this one undoes."""
    undoes = finding.param_map().get("undoes", "?")
    owner = ""
    if facts.policy is not None:
        owner = next((name for name, spec in facts.policy.scenarios.items()
                      if spec.reenable is not None and spec.reenable.scenario == finding.scenario),
                     "")
    where = f"scenario {owner}'s `reenable:`" if owner else "a scenario's `reenable:`"
    return Link(
        "rule", f"{REENABLE} (no rule: {where})",
        (f"its checks held healthy after incident {undoes} resolved: put back what it changed",),
        _place(facts, "scenarios", owner) if owner else None,
    )


def _severity(facts: ExplainFacts) -> Link:
    lines: list[str] = []
    lead = next((f for f in facts.findings if f.severity is facts.severity), None)
    if lead is not None:
        rule = _rule(facts, lead.rule)
        row = rule.runbook if rule is not None and rule.runbook else _runbook_of(lead.reason)
        setter = ("the re-enable watch: the severity of the change it undoes"
                  if lead.rule == REENABLE else f"rule {lead.rule}")
        lines.append(f"set by {setter}" + (f": runbook row {row!r}" if row else ""))
        if rule is not None and lead.scenario != rule.scenario:
            lines.append(f"routed to scenario {lead.scenario} instead of {rule.scenario}: "
                         "the service changed just before it failed (after_change)")
    for finding in facts.findings:
        if finding.supersedes:
            lines.append(f"rule {finding.rule} supersedes groups "
                         f"{', '.join(finding.supersedes)}: their findings join this incident")
    for event in facts.events:
        if event.kind == "escalated":
            lines.append(f"{_at(facts, event.at)} escalated: {event.summary}")
    if not lines:
        lines.append(f"as opened: {facts.reason}")
    place = _place(facts, "rules", lead.rule) if lead is not None else None
    return Link("severity", facts.severity.value, tuple(lines), place)


def _runbook_of(reason: str) -> str:
    """The runbook row a finding's reason quotes: "P1 (runbook: X): ..." → X."""
    head, found, rest = reason.partition("(runbook: ")
    return rest.split("): ", 1)[0] if found and len(head) < 8 else ""


def _authority(facts: ExplainFacts) -> Link:
    plan = facts.plan
    severity = facts.severity.value
    lines: list[str] = []
    if plan is not None:
        auth = plan.authorization
        who = f" by {auth.role}" if auth.role else ""
        quorum = f", quorum {auth.quorum}" if auth.quorum else ""
        lines.append(f"{auth.mode.value}{who}{quorum}: {auth.reason}")
    else:
        lines.append("no plan: nothing to authorise")
    row = facts.policy.authority.get(facts.severity) if facts.policy is not None else None
    if row is not None:
        lines.append(f"the {severity} row: {_row_words(row)}")
    lines += [f"{_at(facts, e.at)} {e.summary}" for e in facts.events if e.kind == "approval"]
    return Link("authority", f"who may authorise a {severity} plan", tuple(lines),
                _place(facts, "authority", severity))


def _row_words(row: AuthorityRow) -> str:
    def rule(value: AuthRule) -> str:
        if isinstance(value, str):
            return value
        return f"approval by {value.role} (quorum {value.quorum})"

    why = f" ({row.why})" if row.why else ""
    return (f"safe {rule(row.safe)}, risky {rule(row.risky)}, "
            f"destructive {rule(row.destructive)}{why}")


def _guards(facts: ExplainFacts) -> Link:
    lines = [
        f"{_at(facts, e.at)} {e.kind}: {e.summary}" for e in facts.events if e.kind in GUARD_KINDS
    ]
    return Link("guards", "what the journal recorded before acting",
                tuple(lines) or ("no guard verdict journaled: no plan has been put to the guards",),
                _place(facts, "sections", "guards"))


def _plan(facts: ExplainFacts) -> Link:
    plan = facts.plan
    if plan is None:
        return Link("plan", "none", (f"the incident is {facts.state}: {facts.reason}",))
    lines = [f"reason: {plan.reason}", f"scenario {plan.scenario}, rung {facts.rung}, "
             f"{len(plan.steps)} step(s)"]
    if plan.runbook:
        lines.append(f"runbook: {plan.runbook}")
    lines += [f"{_at(facts, e.at)} {e.kind}: {e.summary}"
              for e in facts.events if e.kind in PLAN_KINDS]
    return Link("plan", plan.title, tuple(lines), _place(facts, "scenarios", plan.scenario))


def _steps(facts: ExplainFacts) -> Iterator[Link]:
    plan = facts.plan
    evidence = _evidence_by_step(facts)
    runs: dict[tuple[int, int], StepRun] = {}
    for run in facts.steps:
        runs[(run.rung, run.index)] = run  # the latest attempt of each
    for (rung, index), run in sorted(runs.items()):
        took = (f", {run.finished_at - run.started_at:.2f} s"
                if run.finished_at is not None else ", unfinished")
        lines = [f"{run.action} [{run.risk}]: {run.status} (attempt {run.attempt}{took})"]
        lines += [f"evidence: {said}" for said in evidence.get((rung, index), ())]
        output = run.output.strip().splitlines()
        if output:
            lines.append(f"output: {output[0]}" + (f" (+{len(output) - 1} lines)"
                                                   if len(output) > 1 else ""))
        rung_words = f" (rung {rung})" if rung else ""
        yield Link("step", f"{index + 1}. {run.name}{rung_words}", tuple(lines))
    if not runs and plan is not None and plan.steps:
        yield Link("step", "none ran", (f"the incident is {facts.state}",))


def _evidence_by_step(facts: ExplainFacts) -> dict[tuple[int, int], list[str]]:
    """`step_evidence` events belong to the step started just before them."""
    found: dict[tuple[int, int], list[str]] = {}
    current: tuple[int, int] | None = None
    for event in facts.events:
        if event.kind == "step_started":
            current = (int(event.data.get("rung", 0)), int(event.data.get("index", 0)))
        elif event.kind == "step_evidence" and current is not None:
            found.setdefault(current, []).append(event.summary)
    return found


def _verification(facts: ExplainFacts) -> Link:
    plan = facts.plan
    lines: list[str] = []
    if plan is not None and plan.checklist:
        lines.append(f"checklist, to hold for {format_duration(plan.verify_for_seconds)}: "
                     + "; ".join(f"{c.description} ({c.signal} {c.op} {c.threshold:g})"
                                 for c in plan.checklist))
    readings = [e for e in facts.events if e.kind == "verification"]
    if readings:
        lines.append(f"{_at(facts, readings[0].at)} first reading: {readings[0].summary}")
        if len(readings) > 1:
            lines.append(f"{_at(facts, readings[-1].at)} last reading: {readings[-1].summary}")
    ends = [e for e in facts.events if e.kind == "state"
            and e.data.get("to") in ("resolved", "escalated", "failed", "closed")]
    lines += [f"{_at(facts, e.at)} {e.summary}" for e in ends]
    return Link("verification", facts.state.replace("_", " "),
                tuple(lines) or ("nothing verified yet",))
