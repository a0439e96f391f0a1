"""Approvals, actions and flags in the SQLite journal: what the guards of a plan consult.

An approval binds a person's decision to the digest of the plan as shown; the
actions table holds the changes per target that the hourly budget and the
cool-downs weigh; flags are named values (the pause switch, marks of work done once).
"""

from __future__ import annotations

import json

from watchdog.store.codec import plan_digest as digest_of
from watchdog.store.codec import plan_from_dict
from watchdog.store.records import DECISIONS, ApprovalRecord
from watchdog.store.sqlite_base import SqliteBase, insert_event, lastrowid, require_incident


class SqliteGuards(SqliteBase):
    """Approvals of plans, the count of actions per target, and flags."""

    def record_approval(
        self,
        incident_id: int,
        *,
        at: float,
        person: str,
        role: str,
        decision: str,
        comment: str = "",
        plan_digest: str | None = None,
    ) -> int:
        if decision not in DECISIONS:
            raise ValueError(f"decision {decision!r} is not one of {', '.join(DECISIONS)}")
        with self._transaction() as conn:
            require_incident(conn, incident_id)
            if plan_digest is None:  # the plan as stored now is the plan as shown
                stored = conn.execute(
                    "SELECT body FROM plans WHERE incident_id = ?", (incident_id,)
                ).fetchone()
                plan_digest = (
                    digest_of(plan_from_dict(json.loads(stored["body"]))) if stored else ""
                )
            cursor = conn.execute(
                "INSERT INTO approvals (incident_id, at, person, role, decision, comment,"
                " plan_digest) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (incident_id, at, person, role, decision, comment, plan_digest),
            )
            approval_id = lastrowid(cursor)
            verb = "approved" if decision == "approve" else "rejected"
            insert_event(
                conn,
                incident_id,
                at=at,
                kind="approval",
                summary=f"{person} ({role}) {verb}" + (f": {comment}" if comment else ""),
                data={
                    "approval_id": approval_id,
                    "person": person,
                    "role": role,
                    "decision": decision,
                },
            )
            return approval_id

    def approvals(self, incident_id: int) -> list[ApprovalRecord]:
        rows = self._read(
            "SELECT * FROM approvals WHERE incident_id = ? ORDER BY id", (incident_id,)
        )
        return [
            ApprovalRecord(
                id=row["id"],
                incident_id=row["incident_id"],
                at=row["at"],
                person=row["person"],
                role=row["role"],
                decision=row["decision"],
                comment=row["comment"],
                plan_digest=row["plan_digest"],
            )
            for row in rows
        ]

    # Guards ------------------------------------------------------------------------------

    def record_action(self, *, target: str, at: float) -> None:
        with self._transaction() as conn:
            conn.execute("INSERT INTO actions (target, at) VALUES (?, ?)", (target, at))

    def actions_since(self, at: float, *, target: str | None = None) -> int:
        if target is None:
            rows = self._read("SELECT COUNT(*) FROM actions WHERE at >= ?", (at,))
        else:
            rows = self._read(
                "SELECT COUNT(*) FROM actions WHERE at >= ? AND target = ?", (at, target)
            )
        count: int = rows[0][0]
        return count

    def last_action_at(self, target: str) -> float | None:
        rows = self._read("SELECT MAX(at) FROM actions WHERE target = ?", (target,))
        last: float | None = rows[0][0]
        return last

    def set_flag(self, name: str, value: str, *, at: float) -> None:
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO flags (name, value, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value,"
                " updated_at = excluded.updated_at",
                (name, value, at),
            )

    def get_flag(self, name: str) -> str | None:
        rows = self._read("SELECT value FROM flags WHERE name = ?", (name,))
        return str(rows[0]["value"]) if rows else None

