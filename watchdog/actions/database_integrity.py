"""The policy's read-only integrity queries (`database.integrity`): each must hold.

Each query runs in a READ ONLY transaction with its own statement_timeout, sent with
the extended protocol, which takes exactly one statement.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import DictRow

from watchdog.actions.base import ActionFailed, ActionOutcome
from watchdog.actions.database_base import DatabaseBase
from watchdog.actions.database_words import error_text, ms
from watchdog.model import Step
from watchdog.policy.durations import parse_duration
from watchdog.policy.rules import COMPARE

_OPS = COMPARE


class IntegrityActions(DatabaseBase):
    """`database.integrity`: fail naming each check that does not hold."""

    async def integrity(self, step: Step) -> ActionOutcome:
        """Run the policy's read-only integrity queries; fail naming each check that fails."""
        params = step.param_map()
        checks = _integrity_checks(params.get("checks"))
        timeout = parse_duration(params.get("statement_timeout", self._statement_timeout))
        results: list[dict[str, Any]] = []
        async with self._connection(read_only=True) as conn:
            for check in checks:
                value, problem = await self._measure(conn, check["query"], timeout)
                holds = (
                    problem is None
                    and value is not None
                    and _OPS[check["op"]](value, check["threshold"])
                )
                results.append({**check, "value": value, "ok": holds, "error": problem})
        failing = [r for r in results if not r["ok"]]
        words = [_check_words(r) for r in results]
        if failing:
            raise ActionFailed(
                f"{len(failing)} of {len(results)} integrity check(s) do not hold: "
                + "; ".join(_check_words(r) for r in failing)
            )
        return ActionOutcome(
            True,
            f"all {len(results)} integrity check(s) hold: " + "; ".join(words),
            {"checks": results},
        )

    async def _measure(
        self, conn: psycopg.AsyncConnection[DictRow], query: str, timeout: float
    ) -> tuple[float | None, str | None]:
        """One check's number, in a READ ONLY transaction with its own statement_timeout.

        Sent with the extended protocol (binary results), which takes exactly one
        statement: `SELECT 1; COMMIT; DELETE ...` cannot slip out of the read-only
        transaction.
        """
        try:
            async with conn.transaction():
                await conn.execute(
                    "SELECT set_config('statement_timeout', %s, true)", (ms(timeout),)
                )
                cursor = conn.cursor()
                await cursor.execute(query.encode(), binary=True)
                rows = await cursor.fetchall()
                width = len(cursor.description or ())
        except psycopg.Error as error:
            return None, self._target.scrub(error_text(error))
        if len(rows) != 1 or width != 1:
            shape = f"{len(rows)} row(s) of {width} column(s)"
            return None, f"returned {shape}; expected one row of one number"
        value = next(iter(rows[0].values()))
        if value is None:
            return None, "returned NULL"
        if isinstance(value, bool):
            return float(value), None
        if isinstance(value, int | float | Decimal):
            return float(value), None
        return None, f"returned {value!r}, not a number"



def _integrity_checks(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list | tuple) or not raw:
        raise ActionFailed(
            "database.integrity needs `checks`: a list of {name, query, op, threshold}"
        )
    checks: list[dict[str, Any]] = []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise ActionFailed(f"checks[{index}] is {item!r}, not a mapping")
        name = str(item.get("name") or f"check {index + 1}")
        op = str(item.get("op", ""))
        if op not in _OPS:
            raise ActionFailed(f"check {name!r}: op {op!r}; expected one of {' '.join(_OPS)}")
        if not item.get("query"):
            raise ActionFailed(f"check {name!r} has no query")
        try:
            threshold = float(item["threshold"])
        except (KeyError, TypeError, ValueError):
            raise ActionFailed(f"check {name!r}: threshold must be a number") from None
        checks.append({"name": name, "query": str(item["query"]), "op": op, "threshold": threshold})
    return checks


def _check_words(result: Mapping[str, Any]) -> str:
    expected = f"{result['op']} {_number(result['threshold'])}"
    if result["error"] is not None:
        return f"{result['name']}: {result['error']} (expected {expected})"
    return f"{result['name']} = {_number(result['value'])} (expected {expected})"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
