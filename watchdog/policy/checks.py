"""Checks across a policy's parts, each problem named by its path in the file.

pydantic checks each field on its own; what it cannot see is a rule naming a
signal that does not exist, two signals with one name, a step naming an action no
backend knows, or a threshold no value of its signal can ever cross. Those are
found here, before the daemon starts, and reported the way `watchdog validate`
prints them: path, what was found, what was expected.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Iterator

import jmespath
import jmespath.exceptions

from watchdog.policy.byhand import by_hand_problems, resource_check_problems
from watchdog.policy.catalogue import ACTIONS
from watchdog.policy.contacts import contact_problems
from watchdog.policy.identifiers import EXPECTED as IDENTIFIER_EXPECTED
from watchdog.policy.identifiers import is_table_name
from watchdog.policy.powers import power_problems
from watchdog.policy.problems import Problem
from watchdog.policy.schema import (
    AnySignal,
    Approval,
    DerivedSignal,
    DockerSignal,
    HttpSignal,
    Policy,
    PostgresSignal,
    PrometheusSignal,
    ReenableSpec,
    RuleSpec,
    ScenarioSpec,
)

__all__ = ["Problem", "find_problems"]


def find_problems(policy: Policy) -> list[Problem]:
    """Every cross-reference problem in the policy, in file order."""
    return [
        *_duplicates("signals", (s.name for s in policy.signals)),
        *_duplicates("rules", (r.name for r in policy.rules)),
        *_signal_problems(policy),
        *_rule_problems(policy),
        *_scenario_problems(policy),
        *_authority_problems(policy),
        *contact_problems(policy),
        *_assessment_problems(policy),
        *by_hand_problems(policy),
        *resource_check_problems(policy),
        *power_problems(policy),
    ]


def _assessment_problems(policy: Policy) -> Iterator[Problem]:
    """Signals the checklists before and after a rollback name must be the policy's own."""
    signals = {s.name for s in policy.signals}
    named = [(f"post_rollback[{i}].signal", c.signal) for i, c in enumerate(policy.post_rollback)]
    for name, scenario in policy.scenarios.items():
        named += [
            (f"scenarios.{name}.prechecks[{i}].signal", p.signal)
            for i, p in enumerate(scenario.prechecks)
            if p.fact == "reading"
        ]
        named += [
            (f"scenarios.{name}.skip_post_rollback[{i}]", signal)
            for i, signal in enumerate(scenario.skip_post_rollback)
        ]
    for path, signal in named:
        if signal not in signals:
            yield Problem(path, repr(signal), f"one of the signals {_known(signals)}")


def _duplicates(section: str, names: Iterable[str]) -> Iterator[Problem]:
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in seen:
            yield Problem(
                f"{section}[{index}].name",
                repr(name),
                f"a unique name ({section}[{seen[name]}] already has it)",
            )
        else:
            seen[name] = index


def _signal_problems(policy: Policy) -> Iterator[Problem]:
    names = {s.name for s in policy.signals}
    for index, signal in enumerate(policy.signals):
        target = getattr(signal, "target", None)
        if target is not None and target not in policy.targets:
            yield Problem(
                f"signals[{index}].target",
                repr(target),
                f"one of the targets {_known(policy.targets)}",
            )
        if isinstance(signal, DerivedSignal):
            for position, member in enumerate(signal.of):
                if member not in names:
                    yield Problem(
                        f"signals[{index}].of[{position}]", repr(member), "the name of a signal"
                    )
                elif member == signal.name:
                    yield Problem(
                        f"signals[{index}].of[{position}]", repr(member), "another signal"
                    )
            if signal.op in ("count", "fraction") and signal.where is None:
                yield Problem(f"signals[{index}].where", "nothing", f"a condition for {signal.op}")
        if isinstance(signal, HttpSignal):
            expressions = [("value", signal.value), ("series", signal.series)]
            expressions += [(f"healthy_when[{i}]", e) for i, e in enumerate(signal.healthy_when)]
            for key, expression in expressions:
                problem = _jmespath_problem(expression)
                if problem:
                    yield Problem(f"signals[{index}].{key}", repr(expression), problem)
        rated = isinstance(signal, PrometheusSignal) and signal.mode != "gauge"
        if rated and getattr(signal, "window", 0.0) < 2 * signal.interval:
            yield Problem(
                f"signals[{index}].window",
                f"{getattr(signal, 'window', 0.0):g} s",
                f"at least two intervals ({2 * signal.interval:g} s): a rate needs two scrapes",
            )
        if signal.timeout > signal.interval:
            yield Problem(
                f"signals[{index}].timeout",
                f"{signal.timeout:g} s",
                f"at most the interval ({signal.interval:g} s), so probes never pile up",
            )
        if signal.interval <= 0:
            yield Problem(f"signals[{index}].interval", "0", "a positive duration")
        if isinstance(signal, PostgresSignal) and (signal.check == "query") != bool(signal.query):
            yield Problem(
                f"signals[{index}].query",
                repr(signal.query) if signal.query else "nothing",
                "a read-only SQL query for check: query, and none for check: reachable",
            )


def _rule_problems(policy: Policy) -> Iterator[Problem]:
    signals = {s.name: s for s in policy.signals}
    for index, rule in enumerate(policy.rules):
        path = f"rules[{index}]"
        signal = signals.get(rule.signal)
        if signal is None:
            yield Problem(
                f"{path}.signal", repr(rule.signal), f"one of the signals {_known(signals)}"
            )
        elif rule.measure == "value":
            reason = _impossible(signal, rule.op, rule.threshold)
            if reason:
                yield Problem(f"{path}.threshold", f"{rule.op} {rule.threshold:g}", reason)
        if rule.scenario not in policy.scenarios:
            yield Problem(
                f"{path}.scenario",
                repr(rule.scenario),
                f"one of the scenarios {_known(policy.scenarios)}",
            )
        for placeholder in _placeholders(rule.subject, *rule.params.values()):
            if placeholder not in ("series", "signal", "target", "service", "failing"):
                yield Problem(
                    f"{path}.subject",
                    f"{{{placeholder}}}",
                    "only {series}, {signal}, {target}, {service}, {failing} (the services "
                    "whose input meets a count or share signal's `where`)",
                )
        yield from _after_change_problems(path, rule, policy, signals)
        scenario = policy.scenarios.get(rule.scenario)
        if scenario is not None:
            yield from _scenario_words(path, rule.params, scenario, signals)
            follow_up = scenario.reenable
            if follow_up is not None and follow_up.scenario in policy.scenarios:
                # The follow-up plan is filled from the same finding, plus {undoes}.
                yield from _scenario_words(
                    path,
                    {**rule.params, "undoes": ""},
                    policy.scenarios[follow_up.scenario],
                    signals,
                )


def _after_change_problems(
    path: str, rule: RuleSpec, policy: Policy, signals: dict[str, AnySignal]
) -> Iterator[Problem]:
    """Scenario 1's route: a `changed` Docker signal, and a plan the rule's params fill."""
    spec = rule.after_change
    if spec is None:
        return
    signal = signals.get(spec.signal)
    if not isinstance(signal, DockerSignal) or signal.metric != "changed":
        yield Problem(f"{path}.after_change.signal", repr(spec.signal),
                      "a docker signal with metric: changed")
    scenario = policy.scenarios.get(spec.scenario)
    if scenario is None:
        yield Problem(f"{path}.after_change.scenario", repr(spec.scenario),
                      f"one of the scenarios {_known(policy.scenarios)}")
    else:
        yield from _scenario_words(path, rule.params, scenario, signals)


def _scenario_words(
    path: str, params: dict[str, str], scenario: ScenarioSpec, signals: dict[str, AnySignal]
) -> Iterator[Problem]:
    """A scenario's templates must be fillable from every rule that leads to it."""
    # {incident}: the engine passes every plan its own incident's id.
    known = {"subject", "series", "service", "incident", *params}
    texts = [scenario.title, *scenario.impact]
    for step in scenario.steps:
        texts += [step.name, step.note, *_strings(step.params)]
    for check in scenario.checklist:
        texts += [check.description, check.signal]
        if "{" in check.signal:
            rendered = check.signal.format_map(
                {**params, "subject": "", "series": "", "service": ""}
            )
            if "{" not in rendered and rendered not in signals:
                yield Problem(
                    f"{path}.params", f"{check.signal} = {rendered!r}", "the name of a signal"
                )
    for placeholder in sorted(set(_placeholders(*texts)) - known):
        yield Problem(
            f"{path}.params",
            f"no {placeholder!r} for scenario {scenario.title!r}",
            f"params that fill {{{placeholder}}}",
        )


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)


def _scenario_problems(policy: Policy) -> Iterator[Problem]:
    signals = {s.name: s for s in policy.signals}
    for name, scenario in policy.scenarios.items():
        yield from _duplicates(f"scenarios.{name}.steps", (s.name for s in scenario.steps))
        for index, step in enumerate(scenario.steps):
            path = f"scenarios.{name}.steps[{index}]"
            action = ACTIONS.get(step.action)
            if action is None:
                yield Problem(f"{path}.action", repr(step.action), f"one of {_known(ACTIONS)}")
                continue
            for required in action.required:
                if required not in step.params:
                    yield Problem(
                        f"{path}.params", f"no {required!r}", f"{step.action} needs {required!r}"
                    )
            for given in step.params:
                if given not in action.required and given not in action.optional:
                    allowed = ", ".join((*action.required, *action.optional)) or "none"
                    yield Problem(f"{path}.params.{given}", repr(given), f"one of: {allowed}")
            expect = step.params.get("expect")
            problem = _jmespath_problem(expect) if isinstance(expect, str) else ""
            if problem:
                yield Problem(f"{path}.params.expect", repr(expect), problem)
            table = step.params.get("table")
            if table is not None and not (isinstance(table, str) and is_table_name(table)):
                yield Problem(f"{path}.params.table", repr(table), IDENTIFIER_EXPECTED)
            target = step.params.get("target")
            if isinstance(target, str) and "{" not in target and target not in policy.targets:
                yield Problem(
                    f"{path}.params.target", repr(target), f"one of {_known(policy.targets)}"
                )
        if scenario.next is not None and scenario.next not in policy.scenarios:
            yield Problem(
                f"scenarios.{name}.next", repr(scenario.next),
                f"one of the scenarios {_known(policy.scenarios)}",
            )
        if scenario.reenable is not None:
            yield from _reenable_problems(policy, name, scenario.reenable, signals)
        if scenario.verify_timeout < scenario.verify_for:
            yield Problem(
                f"scenarios.{name}.verify_timeout",
                f"{scenario.verify_timeout:g} s",
                f"at least verify_for ({scenario.verify_for:g} s)",
            )
        for index, check in enumerate(scenario.checklist):
            path = f"scenarios.{name}.checklist[{index}]"
            signal = signals.get(check.signal)
            if "{" in check.signal:
                continue  # a template, filled in from the rule's params when planned
            if signal is None:
                yield Problem(
                    f"{path}.signal", repr(check.signal), f"one of the signals {_known(signals)}"
                )
            elif check.measure == "value":
                reason = _impossible(signal, check.op, check.threshold)
                if reason:
                    yield Problem(f"{path}.threshold", f"{check.op} {check.threshold:g}", reason)


def _reenable_problems(
    policy: Policy, name: str, reenable: ReenableSpec, signals: dict[str, AnySignal]
) -> Iterator[Problem]:
    path = f"scenarios.{name}.reenable"
    if reenable.scenario not in policy.scenarios:
        yield Problem(
            f"{path}.scenario", repr(reenable.scenario),
            f"one of the scenarios {_known(policy.scenarios)}",
        )
    elif reenable.scenario == name:
        yield Problem(f"{path}.scenario", repr(name), "another scenario: the one that undoes it")
    for index, check in enumerate(reenable.healthy):
        if "{" not in check.signal and check.signal not in signals:
            yield Problem(
                f"{path}.healthy[{index}].signal", repr(check.signal),
                f"one of the signals {_known(signals)}",
            )


def _authority_problems(policy: Policy) -> Iterator[Problem]:
    for severity, row in policy.authority.items():
        for risk in ("safe", "risky", "destructive"):
            rule = getattr(row, risk)
            if isinstance(rule, Approval) and rule.role not in policy.roles:
                yield Problem(
                    f"authority.{severity}.{risk}.role",
                    repr(rule.role),
                    f"one of the roles {policy.roles}",
                )
        if row.destructive == "auto":
            yield Problem(
                f"authority.{severity}.destructive",
                "'auto'",
                "approval or never: destructive steps are never automatic",
            )
    for index, role in enumerate(policy.close_roles):
        if role not in policy.roles:
            yield Problem(f"close_roles[{index}]", repr(role), f"one of the roles {policy.roles}")
    for index, item in enumerate(policy.followups):
        if item.owner not in policy.roles:
            yield Problem(
                f"followups[{index}].owner", repr(item.owner), f"one of the roles {policy.roles}"
            )


def _impossible(signal: AnySignal, op: str, threshold: float) -> str:
    """Why a comparison against this signal can never, or always, hold; '' if it can."""
    low, high = signal.value_range()
    never = (
        (op == ">" and threshold >= high)
        or (op == ">=" and threshold > high)
        or (op == "<" and threshold <= low)
        or (op == "<=" and threshold < low)
        or (op == "==" and not low <= threshold <= high)
    )
    always = (
        (op == ">=" and threshold <= low)
        or (op == "<=" and threshold >= high)
        or (op == ">" and threshold < low)
        or (op == "<" and threshold > high)
    )
    if never:
        return (
            f"a threshold that signal {signal.name!r} ({signal.unit}, {low:g}..{high:g}) can reach"
        )
    if always:
        return (
            f"a threshold that signal {signal.name!r} ({signal.unit}, {low:g}..{high:g}) "
            "does not always meet"
        )
    return ""


def _jmespath_problem(expression: str | None) -> str:
    """Why an expression does not compile, or ''."""
    if expression is None:
        return ""
    try:
        jmespath.compile(expression)
    except jmespath.exceptions.JMESPathError as error:
        return f"a JMESPath expression ({' '.join(str(error).split())})"
    return ""


def _placeholders(*templates: str) -> Iterator[str]:
    for template in templates:
        for _, field, _, _ in string.Formatter().parse(template):
            if field:
                yield field


def _known(names: Iterable[str]) -> str:
    listed = sorted(names)
    return "[" + ", ".join(listed) + "]" if listed else "(none defined)"
