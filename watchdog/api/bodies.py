"""Request bodies read with a ceiling: a client cannot make the daemon buffer more,
nor nest deeper than any body it accepts could be.

A JSON route reads its body with `read_json`: the size ceiling first (413), then
a parser that cannot recurse without bound (pydantic-core's, which stops at its
own recursion limit with an error, where the standard library's raised
RecursionError: a 500 for a body of 16,000 `[`), then a nesting-depth limit no
legitimate body comes near. Each refusal says what was wrong and what was expected.
The Alertmanager webhook takes the same two steps its own way, for speed: its
bytes go straight to pydantic-core against a model of fixed depth (4), which
refuses a deeper body at its first level (the depth walk would cost a 1 MiB
webhook 30 ms); tests/api_fuzz.py sends the deep bodies to every JSON route.
"""

from __future__ import annotations

from typing import Any

import pydantic_core
from fastapi import Request

# The deepest body any route takes is Alertmanager's webhook: object → alerts → alert →
# labels → value, depth 4. Eight levels of slack, and nothing near the parser's own limit.
MAX_DEPTH = 12


class BadBody(ValueError):
    """A body refused before it reaches a route's model: `status` 413 or 400, `detail`
    naming what was wrong."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


async def read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is known to exceed `limit` bytes (from its declared
    Content-Length, or while streaming it), before the rest is read."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(
    request: Request, limit: int, *, expected: str, depth: int = MAX_DEPTH, empty: Any = None
) -> Any:
    """The body parsed as JSON (`empty` for a body of only whitespace), or BadBody: 413 over
    `limit` bytes, 400 for a body that is not UTF-8 JSON or nests deeper than `depth`.
    `expected` ends each 400, e.g. 'a JSON object {"comment": "..."}'."""
    raw = await read_limited(request, limit)
    if raw is None:
        raise BadBody(413, f"body larger than {limit} bytes; expected {expected}")
    return parse_json(raw, expected=expected, depth=depth, empty=empty)


def parse_json(raw: bytes, *, expected: str, depth: int = MAX_DEPTH, empty: Any = None) -> Any:
    """`read_json` without the reading: the same refusals for bytes already in hand."""
    if not raw.strip():
        return empty
    try:
        # Strict JSON: no NaN or Infinity, which no route stores and some readers reject.
        value = pydantic_core.from_json(raw, allow_inf_nan=False)
    except ValueError as error:
        raise BadBody(400, f"body: not JSON ({error}); expected {expected}") from None
    deepest = nesting(value, depth)
    if deepest > depth:
        raise BadBody(400, f"body: nested deeper than {depth} levels; expected {expected}")
    return value


def nesting(value: Any, stop: int) -> int:
    """How deep arrays and objects nest in `value` (a scalar is 0), counting no further than
    `stop` + 1; without recursion, so no value can exhaust the stack."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        level += 1
        deepest = max(deepest, level)
        if level > stop:
            return level
        pending.extend((inner, level) for inner in item if isinstance(inner, dict | list))
    return deepest
