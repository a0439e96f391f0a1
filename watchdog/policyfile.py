"""Reading a policy file: YAML, `${VAR:-default}` from the environment, validation.

This is the one place a policy enters the program, so it is where every mistake
in one is turned into a `PolicyError` that names the file, the path to the bad
key, what was found and what was expected. Reading files and the environment is
I/O, which is why this module is not imported by the decision core; the core gets
a validated `Policy` value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from watchdog.policy.checks import Problem, find_problems
from watchdog.policy.schema import Policy

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SIGNAL_KINDS = {"http", "prometheus", "tcp", "host", "table", "derived", "alert"}


class PolicyError(Exception):
    """A policy that cannot be used, with every problem found in it."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {problem}" for problem in problems))


def load_policy(path: str | Path, environ: Mapping[str, str] | None = None) -> Policy:
    """Read, interpolate and validate one policy file."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise PolicyError(
            source, [Problem("(file)", error.strerror or str(error), "a readable file")]
        ) from error
    return parse_policy(text, source, os.environ if environ is None else environ)


def parse_policy(text: str, source: str, environ: Mapping[str, str]) -> Policy:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "(yaml)"
        problem = getattr(error, "problem", None) or str(error)
        raise PolicyError(source, [Problem(where, str(problem), "well-formed YAML")]) from error
    if not isinstance(raw, dict):
        raise PolicyError(source, [Problem("(top)", type(raw).__name__, "a mapping of sections")])
    missing: list[Problem] = []
    interpolated = expand_targets(_interpolate(raw, environ, "", missing))
    if missing:
        raise PolicyError(source, missing)
    try:
        policy = Policy.model_validate(interpolated)
    except ValidationError as error:
        raise PolicyError(source, [_problem(item) for item in error.errors()]) from error
    problems = find_problems(policy)
    if problems:
        raise PolicyError(source, problems)
    return policy


def expand_targets(raw: dict[str, Any]) -> dict[str, Any]:
    """Repeat `for_each: target` signals and rules once per target.

    This is what lets one generic policy guard any Compose stack: list the
    services under `targets`, and every per-service signal, rule and list entry
    written with `{target}` is repeated for each. Elsewhere, a list item that
    contains `{target}` becomes one item per target (`of: ["{target}_health"]`), and
    an item `{unless_targets: X}` becomes X only in a policy without targets (what a
    generic policy reads instead when services are discovered from labels).
    """
    targets = (
        list((raw.get("targets") or {}).keys()) if isinstance(raw.get("targets"), dict) else []
    )

    def fill(value: Any, target: str) -> Any:
        if isinstance(value, str):
            return value.replace("{target}", target)
        if isinstance(value, dict):
            return {k: fill(v, target) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v, target) for v in value]
        return value

    def spread(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: spread(v) for k, v in value.items()}
        if isinstance(value, list):
            items: list[Any] = []
            for item in value:
                if isinstance(item, dict) and item.get("for_each") == "target":
                    body = {k: v for k, v in item.items() if k != "for_each"}
                    items += [fill(body, t) for t in targets]
                elif isinstance(item, dict) and list(item) == ["unless_targets"]:
                    items += [] if targets else [spread(item["unless_targets"])]
                elif isinstance(item, str) and "{target}" in item:
                    items += [item.replace("{target}", t) for t in targets]
                else:
                    items.append(spread(item))
            return items
        return value

    expanded: dict[str, Any] = spread(raw)
    return expanded


def _interpolate(value: Any, environ: Mapping[str, str], path: str, missing: list[Problem]) -> Any:
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            missing.append(
                Problem(path or "(top)", f"${{{name}}}", f"environment variable {name} set")
            )
            return ""

        return _VARIABLE.sub(substitute, value)
    if isinstance(value, dict):
        return {
            k: _interpolate(v, environ, f"{path}.{k}" if path else str(k), missing)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_interpolate(v, environ, f"{path}[{i}]", missing) for i, v in enumerate(value)]
    return value


def _problem(error: Any) -> Problem:
    """One pydantic error as a path, what was found and what was expected."""
    location = list(error["loc"])
    path = ""
    for index, part in enumerate(location):
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in _SIGNAL_KINDS and index > 0 and isinstance(location[index - 1], int):
            continue  # pydantic names the union member; the file does not
        elif part in ("literal['auto', 'never']", "Approval"):
            continue
        else:
            path += f".{part}" if path else str(part)
    if error["type"] == "union_tag_invalid":  # a signal's `kind`: name it, never the whole dict
        context = error.get("ctx", {})
        tags = str(context.get("expected_tags", "")).replace("'", "")
        key = str(context.get("discriminator", "kind")).strip("'")
        return Problem(f"{path}.{key}", repr(context.get("tag")), f"one of {tags}")
    found = "nothing" if error["type"] == "missing" else repr(error.get("input"))
    if len(found) > 80:
        found = found[:77] + "..."
    expected = str(error["msg"])
    for prefix in ("Value error, ", "Input should be "):
        expected = expected.removeprefix(prefix)
    if error["type"] == "extra_forbidden":
        expected = "no such key (check its spelling)"
    return Problem(path or "(top)", found, expected)
