"""`watchdog explain` in the pure core: the chain, its policy lines, and every kind of near miss.

The finding is made by the real rule evaluator (so its measured value is the one the
daemon journals); the policy is a small file read by the real loader and the real
mark reader, so the lines cited are the file's own.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tests.unit.helpers import ROOT
from watchdog.model import Finding, Observation, Severity
from watchdog.policy.explain import explain
from watchdog.policy.explainvalues import ExplainFacts, Happened, StepRun
from watchdog.policy.planner import plan_for
from watchdog.policy.rules import Evaluator, RuleState
from watchdog.policy.schema import Policy
from watchdog.policy.windows import Windows
from watchdog.policyfile import load_policy
from watchdog.policymarks import policy_places
from watchdog.store.codec import finding_from_dict, finding_to_dict

RULES = """\
  - name: dlq-overflow
    runbook: "P1: DLQ overflow (> 5000 messages)"
    signal: depth
    op: ">"
    threshold: 5000
    for: 30s
    severity: P1
    scenario: dlq
    group: dlq
    supersedes: [warn]
  - name: dlq-critical
    signal: depth
    op: ">"
    threshold: 10000
    severity: P0
    scenario: dlq
    group: dlq
  - name: dlq-slow
    signal: depth
    op: ">"
    threshold: 1000
    for: 10m
    severity: P2
    scenario: dlq
    group: dlq
  - name: dlq-warning
    signal: depth
    op: ">"
    threshold: 100
    severity: P3
    scenario: dlq
    group: warn
  - name: dlq-elsewhere
    signal: depth
    op: ">"
    threshold: 50
    severity: P3
    scenario: dlq
    group: other
  - name: dlq-rate
    signal: depth
    measure: change_per_minute
    op: ">"
    threshold: 100
    severity: P2
    scenario: dlq
    group: dlq
"""

POLICY = f"""\
version: 1
stack: {{name: t}}
targets:
  q: {{url: "http://127.0.0.1:1", service: workers}}
signals:
  - name: depth
    kind: http
    target: q
    value: messages
    interval: 1s
    timeout: 1s
rules:
{RULES}scenarios:
  dlq:
    title: Restart the workers
    runbook: "Scenario 3: DLQ filling rapidly"
    steps:
      - {{name: restart the workers, action: service.restart, params: {{services: [workers]}}}}
    checklist:
      - {{description: DLQ depth below 100, signal: depth, op: "<", threshold: 100}}
authority:
  P0: {{safe: auto, risky: never, destructive: never}}
  P1: {{safe: auto, risky: {{role: lead, quorum: 1}}, destructive: never, why: "runbook: P1"}}
  P2: {{safe: auto, risky: never, destructive: never}}
  P3: {{safe: never, risky: never, destructive: never}}
"""


@pytest.fixture
def written(tmp_path: Path) -> tuple[Path, Policy]:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY, encoding="utf-8")
    return path, load_policy(path, {})


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


def fired(policy: Policy) -> Finding:
    """dlq-overflow's finding as the evaluator makes it: 6120 > 5000 held for 31 s."""
    evaluator, windows = Evaluator(policy), Windows()
    states: dict[tuple[str, str], RuleState] = {}
    for at in (0.0, 31.0):
        windows.record(Observation("depth", at, 6120.0))
        tick = evaluator.evaluate(windows, states, at)
        states = tick.states
    return next(f for f in tick.active if f.rule == "dlq-overflow")


def facts_of(policy: Policy, finding: Finding, path: Path) -> ExplainFacts:
    plan = plan_for(policy, scenario="dlq", severity=Severity.P1, subject="", params={},
                    why="test")
    opened = 31.0
    return ExplainFacts(
        incident_id=7, key="dlq", severity=Severity.P1, scenario="dlq", subject="",
        state="resolved", reason=finding.reason, opened_at=opened, closed_at=60.0,
        findings=(finding,), plan=plan,
        steps=(StepRun(0, "restart the workers", "service.restart", "safe", "succeeded", 1,
                       32.0, 32.5, "restart: workers (pid 42)"),),
        events=(
            Happened(31.5, "guards", "guards pass: 0/20 actions this hour"),
            Happened(32.0, "step_started", "step 1", {"index": 0, "rung": 0}),
            Happened(32.1, "step_evidence", "what 'restart the workers' saw before acting"),
            Happened(40.0, "verification", "ok: DLQ depth below 100"),
            Happened(60.0, "state", "verifying → resolved: held", {"to": "resolved"}),
        ),
        policy=policy,
        places=policy_places(path, policy),
    )


def test_the_chain_runs_from_what_was_seen_to_what_was_verified_citing_file_and_line(
    written: tuple[Path, Policy],
) -> None:
    path, policy = written
    finding = fired(policy)
    assert finding.value == 6120.0
    told = explain(facts_of(policy, finding, path))
    assert told.stages() == (
        "observed", "rule", "finding", "severity", "authority", "guards", "plan", "step",
        "verification",
    )
    links = {link.stage: link for link in told.links}
    assert links["rule"].heading() == (
        f"rule: dlq-overflow  [{path}:{line_of(POLICY, 'name: dlq-overflow')} "
        "rules[0] dlq-overflow]"
    )
    assert links["observed"].place is not None
    assert links["observed"].place.words() == f"{path}:{line_of(POLICY, '- name: depth')} " \
        "signals[0] depth"
    assert "runbook row 'P1: DLQ overflow (> 5000 messages)'" in links["severity"].lines[0]
    assert "supersedes groups warn" in " ".join(links["severity"].lines)
    assert links["authority"].place is not None
    assert links["authority"].place.words() == f"{path}:{line_of(POLICY, '  P1:')} authority.P1"
    assert "risky approval by lead (quorum 1)" in " ".join(links["authority"].lines)
    assert links["guards"].lines == ("+0.5 s guards: guards pass: 0/20 actions this hour",)
    assert links["guards"].place is None  # the file has no guards: section (the defaults)
    assert links["plan"].place is not None and links["plan"].place.path == "scenarios.dlq"
    assert links["step"].lines[0] == "service.restart [safe]: succeeded (attempt 1, 0.50 s)"
    assert "evidence: what 'restart the workers' saw before acting" in links["step"].lines
    assert links["verification"].lines[-1] == "+29.0 s verifying → resolved: held"
    assert told.notes == ()


def test_near_misses_say_why_each_rule_on_the_same_signal_did_not_fire(
    written: tuple[Path, Policy],
) -> None:
    path, policy = written
    told = explain(facts_of(policy, fired(policy), path))
    kinds = {miss.rule: miss.kind for miss in told.near_misses}
    assert kinds == {
        "dlq-critical": "below threshold",
        "dlq-slow": "for not yet met",
        "dlq-warning": "superseded",
        "dlq-elsewhere": "in another incident",
        "dlq-rate": "no recorded value",
    }
    why = {miss.rule: miss.why for miss in told.near_misses}
    assert why["dlq-critical"] == "recorded 6120 (when dlq-overflow fired) is not > 10000"
    assert "had held 31 s when the incident opened, short of its `for` of 10 m" in why["dlq-slow"]
    assert "superseded by rule dlq-overflow (group 'dlq')" in why["dlq-warning"]
    critical = next(m for m in told.near_misses if m.rule == "dlq-critical")
    assert critical.place is not None
    assert critical.place.words() == f"{path}:{line_of(POLICY, 'dlq-critical')} rules[1] " \
        "dlq-critical"
    assert "near misses (5)" in told.text()


def test_a_policy_without_the_rule_still_explains_from_the_journal_and_says_so(
    written: tuple[Path, Policy], tmp_path: Path
) -> None:
    _, policy = written
    finding = fired(policy)
    moved = tmp_path / "moved.yaml"
    moved.write_text(POLICY.replace("name: dlq-overflow", "name: dlq-renamed"), encoding="utf-8")
    told = explain(facts_of(load_policy(moved, {}), finding, moved))
    assert "the policy no longer has rule 'dlq-overflow'" in told.notes[0]
    rule = next(link for link in told.links if link.stage == "rule")
    assert rule.place is None
    assert rule.lines[0].startswith("as journaled (no longer in the policy): P1")
    # Under the new name the same rule is weighed as any other: it would have fired.
    renamed = next(m for m in told.near_misses if m.rule == "dlq-renamed")
    assert renamed.kind == "not recorded here" and "6120" in renamed.why


def test_without_a_policy_the_journal_alone_and_no_near_misses_weighed(
    written: tuple[Path, Policy],
) -> None:
    path, policy = written
    facts = facts_of(policy, fired(policy), path)
    told = explain(replace(facts, policy=None, places=None))
    assert "no policy given" in told.notes[0]
    assert not told.weighed and told.near_misses == ()
    assert "not weighed: they need the policy (--policy FILE)" in told.text()
    assert all(link.place is None for link in told.links)


def test_a_finding_keeps_its_value_and_an_old_one_without_it_says_so(
    written: tuple[Path, Policy],
) -> None:
    path, policy = written
    finding = fired(policy)
    stored = finding_to_dict(finding)
    assert finding_from_dict(stored) == finding and stored["value"] == 6120.0
    old = {k: v for k, v in stored.items() if k != "value"}
    before = finding_from_dict(old)
    assert before.value is None
    assert "value" not in finding_to_dict(before)  # an old finding is stored as it was
    told = explain(facts_of(policy, before, path))
    critical = next(m for m in told.near_misses if m.rule == "dlq-critical")
    assert critical.kind == "no recorded value"
    assert "journaled without its measured value" in critical.why


@pytest.mark.parametrize("name", ["songnodes.yaml", "compose-generic.yaml"])
def test_every_rule_and_scenario_of_the_shipped_policies_has_its_line(name: str) -> None:
    path = ROOT / "policies" / name
    policy = load_policy(path, {})
    places = policy_places(path, policy)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert set(places.rules) == {rule.name for rule in policy.rules}
    for rule in policy.rules:
        written = lines[places.rules[rule.name].line - 1]
        assert "name:" in written or "for_each:" in written, (rule.name, written)
    for scenario in policy.scenarios:
        assert lines[places.scenarios[scenario].line - 1].strip().startswith(f"{scenario}:")
