"""Reading values out of JSON bodies with JMESPath, and saying why a read failed.

A health rule such as `connections.database == 'healthy'` is only useful in a
page if the page also says what the field held, so each compiled expression
keeps the plain field paths it mentions (`connections.database`) and a failed
check is reported as `connections.database = 'unhealthy: connection refused'`.
Numbers come from numbers, booleans (1/0) or words mapped through `states`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Converted(NamedTuple):
    """A number, or why the value is not one, worded to follow its path (`x` is ...)."""

    value: float | None
    problem: str = ""


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled JMESPath with the field paths it reads, for evidence."""

    text: str
    compiled: ParsedResult
    fields: tuple[tuple[str, ParsedResult], ...]

    def search(self, body: Any) -> tuple[Any, str]:
        """(result, "") or (None, why the expression could not be evaluated)."""
        try:
            return self.compiled.search(body), ""
        except JMESPathError as exc:
            return None, str(exc)

    def evidence(self, body: Any) -> str:
        """`path = value` for each field the expression reads, as the body has them."""
        shown = []
        for path, compiled in self.fields:
            try:
                shown.append(f"{path} = {render(compiled.search(body))}")
            except JMESPathError:
                shown.append(f"{path} = (unreadable)")
        return ", ".join(shown)


def compile_expression(text: str, *, signal: str) -> Expression:
    """Compile once, when the probe is built; a malformed expression is a policy error."""
    try:
        compiled = jmespath.compile(text)
    except JMESPathError as exc:
        raise ValueError(f"signal {signal!r}: invalid JMESPath {text!r}: {exc}") from exc
    paths = dict.fromkeys(_field_paths(compiled.parsed))
    fields = tuple((path, jmespath.compile(path)) for path in paths)
    return Expression(text, compiled, fields or ((text, compiled),))


def _field_paths(node: Mapping[str, Any]) -> list[str]:
    """The longest plain dotted paths (`a.b.c`) inside a parsed expression."""
    path = _as_path(node)
    if path is not None:
        return [path]
    found: list[str] = []
    for child in node.get("children", []):
        if isinstance(child, Mapping):
            found.extend(_field_paths(child))
    return found


def _as_path(node: Mapping[str, Any]) -> str | None:
    if node.get("type") == "field":
        name = str(node["value"])
        return name if _IDENTIFIER.match(name) else json.dumps(name)
    if node.get("type") == "subexpression":
        parts = [_as_path(child) for child in node["children"]]
        if all(part is not None for part in parts):
            return ".".join(part for part in parts if part is not None)
    return None


def is_truthy(value: Any) -> bool:
    """JMESPath's truth: only null, false and empty strings, arrays and objects are false."""
    if value is None or value is False:
        return False
    return not (isinstance(value, str | list | dict) and not value)


def render(value: Any) -> str:
    """A value as evidence: strings quoted, absent fields named as such."""
    if value is None:
        return "missing"
    if isinstance(value, str):
        return repr(value)
    return json.dumps(value, separators=(",", ":"), default=str)[:120]


def json_type(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    return "a number"


def as_number(raw: Any, states: Mapping[str, float]) -> Converted:
    """A number from a JSON value: numbers as they are, booleans 1/0, words via `states`."""
    if isinstance(raw, bool):
        return Converted(1.0 if raw else 0.0)
    if isinstance(raw, int | float):
        return Converted(float(raw))
    if isinstance(raw, str):
        if raw in states:
            return Converted(states[raw])
        if states:
            known = ", ".join(states)
            return Converted(None, f"is {raw!r}, not a known state (expected one of {known})")
        return Converted(None, f"is the string {raw!r} (expected a number)")
    if raw is None:
        return Converted(None, "is missing (expected a number)")
    return Converted(None, f"is {json_type(raw)} (expected a number)")
