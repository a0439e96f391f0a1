"""Where each rule, scenario, signal and authority row of a policy file is written.

`watchdog explain` cites every policy link as `policies/songnodes.yaml:421 rules[17]
dlq-overflow`, so a reader can open the file at the line that decided. The lines
come from the YAML node marks (`yaml.compose` keeps each node's start), read here at
the policy-loading edge beside `watchdog.policyfile`; the decision core only gets
the resulting `PolicyPlaces` value. A rule written once with `for_each: target` is
found at that one place for every target it was repeated for.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from watchdog.policy.explainvalues import Place, PolicyPlaces
from watchdog.policy.schema import Policy


def policy_places(path: str | Path, policy: Policy) -> PolicyPlaces:
    """The places of `policy`'s rules, scenarios, signals and authority rows in `path`.

    A file that no longer parses gives no places (the policy was loaded from it a
    moment ago, so this is a race with an editor, not a mistake to stop on).
    """
    source = str(path)
    try:
        root = yaml.compose(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return PolicyPlaces(source)
    if not isinstance(root, yaml.MappingNode):
        return PolicyPlaces(source)
    sections = {key.value: value for key, value in root.value if isinstance(key, yaml.ScalarNode)}
    targets = list(policy.targets)
    rule_lines = _named_items(sections.get("rules"), targets)
    signal_lines = _named_items(sections.get("signals"), targets)
    return PolicyPlaces(
        source,
        rules={
            rule.name: Place(source, rule_lines[rule.name], f"rules[{index}] {rule.name}")
            for index, rule in enumerate(policy.rules)
            if rule.name in rule_lines
        },
        signals={
            signal.name: Place(
                source, signal_lines[signal.name], f"signals[{index}] {signal.name}"
            )
            for index, signal in enumerate(policy.signals)
            if signal.name in signal_lines
        },
        scenarios={
            name: Place(source, line, f"scenarios.{name}")
            for name, line in _keys(sections.get("scenarios")).items()
        },
        authority={
            name: Place(source, line, f"authority.{name}")
            for name, line in _keys(sections.get("authority")).items()
        },
        sections={name: Place(source, line, name) for name, line in _keys(root).items()},
    )


def _named_items(node: yaml.Node | None, targets: list[str]) -> dict[str, int]:
    """A list of mappings with `name:` → the line each item starts on (1-based)."""
    if not isinstance(node, yaml.SequenceNode):
        return {}
    lines: dict[str, int] = {}
    for item in node.value:
        if not isinstance(item, yaml.MappingNode):
            continue
        fields = {k.value: v for k, v in item.value if isinstance(k, yaml.ScalarNode)}
        name = fields.get("name")
        if not isinstance(name, yaml.ScalarNode):
            continue
        line = item.start_mark.line + 1
        each = fields.get("for_each")
        if isinstance(each, yaml.ScalarNode) and each.value == "target":
            for target in targets:
                lines.setdefault(str(name.value).replace("{target}", target), line)
        else:
            lines.setdefault(str(name.value), line)
    return lines


def _keys(node: yaml.Node | None) -> dict[str, int]:
    """A mapping's keys → the line each is written on (1-based)."""
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {
        str(key.value): key.start_mark.line + 1
        for key, _ in node.value
        if isinstance(key, yaml.ScalarNode)
    }
