"""Plans and steps in the SQLite journal: the plan an incident follows and each step's attempts.

A step row is written 'started' before its action runs and finished after, so a
crash in between leaves a started row that recovery finishes as 'unknown'.
`store_plan` and `finish_step` take a connection and no transaction of their own:
an incident's move (`commit_move`) calls them inside its transaction.
"""

from __future__ import annotations

import json
import sqlite3

from watchdog.model import Plan, Risk, Step
from watchdog.store.codec import plan_digest as digest_of
from watchdog.store.codec import plan_from_dict, plan_to_dict
from watchdog.store.records import FINISHED_STEP_STATUSES, StepRecord
from watchdog.store.sqlite_base import (
    SqliteBase,
    dumps,
    insert_event,
    lastrowid,
    require_incident,
)


class SqliteSteps(SqliteBase):
    """An incident's plan, and the started and finished rows of its steps."""

    def save_plan(self, incident_id: int, plan: Plan, *, at: float) -> None:
        with self._transaction() as conn:
            require_incident(conn, incident_id)
            store_plan(conn, incident_id, plan, at=at)

    def plan(self, incident_id: int) -> Plan | None:
        rows = self._read("SELECT body FROM plans WHERE incident_id = ?", (incident_id,))
        return plan_from_dict(json.loads(rows[0]["body"])) if rows else None

    def step_started(
        self, incident_id: int, *, index: int, step: Step, at: float, rung: int = 0
    ) -> int:
        if rung < 0:
            raise ValueError(f"rung {rung}: expected 0 (the first plan) or a later rung")
        with self._transaction() as conn:
            require_incident(conn, incident_id)
            previous = conn.execute(
                "SELECT id, attempt, status FROM steps WHERE incident_id = ? AND idx = ?"
                " ORDER BY attempt DESC LIMIT 1",
                (incident_id, index),
            ).fetchone()
            if previous is not None and previous["status"] == "started":
                raise ValueError(
                    f"step {index + 1} of incident {incident_id} is still started "
                    f"(step row {previous['id']}, attempt {previous['attempt']}); "
                    "finish it (e.g. as 'unknown') before starting it again"
                )
            attempt = 1 if previous is None else previous["attempt"] + 1
            params = step.param_map()
            cursor = conn.execute(
                "INSERT INTO steps (incident_id, idx, name, action, risk, params, status,"
                " attempt, started_at, idempotent, rung)"
                " VALUES (?, ?, ?, ?, ?, ?, 'started', ?, ?, ?, ?)",
                (
                    incident_id,
                    index,
                    step.name,
                    step.action,
                    step.risk.value,
                    dumps(params),
                    attempt,
                    at,
                    step.idempotent,
                    rung,
                ),
            )
            step_id = lastrowid(cursor)
            insert_event(
                conn,
                incident_id,
                at=at,
                kind="step_started",
                summary=(
                    f"step {index + 1} {step.name} (attempt {attempt}"
                    + (f", rung {rung}" if rung else "")
                    + f"): {step.action} [{step.risk.value}]"
                ),
                data={
                    "step_id": step_id,
                    "index": index,
                    "rung": rung,
                    "attempt": attempt,
                    "action": step.action,
                    "risk": step.risk.value,
                    "params": params,
                    "idempotent": step.idempotent,
                },
            )
            return step_id

    def step_finished(self, step_id: int, *, status: str, at: float, output: str) -> None:
        with self._transaction() as conn:
            finish_step(conn, step_id, status=status, at=at, output=output)

    def steps(self, incident_id: int) -> list[StepRecord]:
        rows = self._read("SELECT * FROM steps WHERE incident_id = ? ORDER BY id", (incident_id,))
        return [_step(row) for row in rows]

    def unfinished_steps(self) -> list[StepRecord]:
        rows = self._read("SELECT * FROM steps WHERE status = 'started' ORDER BY id")
        return [_step(row) for row in rows]



def store_plan(conn: sqlite3.Connection, incident_id: int, plan: Plan, *, at: float) -> None:
    """Write (or replace) the incident's plan and its "plan" event, in the caller's transaction."""
    body = plan_to_dict(plan)
    replaced = conn.execute("SELECT 1 FROM plans WHERE incident_id = ?", (incident_id,)).fetchone()
    conn.execute(
        "INSERT INTO plans (incident_id, at, body) VALUES (?, ?, ?)"
        " ON CONFLICT (incident_id) DO UPDATE SET at = excluded.at, body = excluded.body",
        (incident_id, at, dumps(body)),
    )
    auth = plan.authorization
    insert_event(
        conn,
        incident_id,
        at=at,
        kind="plan",
        summary=(
            f"{'replaced by ' if replaced else ''}{plan.title}: "
            f"{len(plan.steps)} steps, {auth.mode.value}: {auth.reason}"
        ),
        data={"replaced": replaced is not None, "plan": body, "digest": digest_of(plan)},
    )


def finish_step(
    conn: sqlite3.Connection, step_id: int, *, status: str, at: float, output: str
) -> None:
    """Finish a started step row once (never a finished one), with its event."""
    if status not in FINISHED_STEP_STATUSES:
        raise ValueError(
            f"step status {status!r} is not one of {', '.join(FINISHED_STEP_STATUSES)}"
        )
    row = conn.execute("SELECT * FROM steps WHERE id = ?", (step_id,)).fetchone()
    if row is None:
        raise KeyError(f"no step with id {step_id}")
    if row["status"] != "started":
        raise ValueError(f"step {step_id} already finished as {row['status']!r}")
    conn.execute(
        "UPDATE steps SET status = ?, finished_at = ?, output = ? WHERE id = ?",
        (status, at, output, step_id),
    )
    first_line = output.strip().splitlines()[0] if output.strip() else ""
    insert_event(
        conn,
        row["incident_id"],
        at=at,
        kind=f"step_{status}",
        summary=(
            f"step {row['idx'] + 1} {row['name']} (attempt {row['attempt']}) {status}"
            + (f": {first_line}" if first_line else "")
        ),
        data={
            "step_id": step_id,
            "index": row["idx"],
            "rung": row["rung"],
            "attempt": row["attempt"],
            "seconds": at - row["started_at"],
        },
    )


def _step(row: sqlite3.Row) -> StepRecord:
    return StepRecord(
        id=row["id"],
        incident_id=row["incident_id"],
        index=row["idx"],
        name=row["name"],
        action=row["action"],
        risk=Risk(row["risk"]),
        params=json.loads(row["params"]),
        status=row["status"],
        attempt=row["attempt"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        output=row["output"],
        idempotent=bool(row["idempotent"]),
        rung=row["rung"],
    )


