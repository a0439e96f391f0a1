"""The journal in one SQLite file: the embedded default backend.

Durability comes from SQLite itself: WAL mode with `synchronous=FULL`, and every
write method runs in its own `BEGIN IMMEDIATE … COMMIT` before it returns, so a
row is on disk before the daemon acts on it, and a read-then-write (the
from-state of a transition, the attempt number of a step) cannot interleave with
another writer, even one in another process. One connection is shared by every
thread behind a lock, so the asyncio daemon may call in from a worker thread;
each call is a handful of indexed statements.

Rows hold primitives and JSON (`json.dumps(..., sort_keys=True, default=str)`:
anything not JSON-able is stored as its string); they are converted to records
and model values here, at the store's edge.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from watchdog.model import Alert, Finding, Plan, Risk, Severity, Step
from watchdog.policy.lifecycle import FINAL
from watchdog.store import alerts as alert_rows
from watchdog.store import crashpoints
from watchdog.store import undo as undo_rows
from watchdog.store.alerts import AlertDelivery, AlertReceipt, FiringStarts
from watchdog.store.codec import (
    finding_from_dict,
    finding_to_dict,
    plan_from_dict,
    plan_to_dict,
)
from watchdog.store.codec import plan_digest as digest_of
from watchdog.store.records import (
    CLOSED_BY_HUMAN,
    DECISIONS,
    FINISHED_STEP_STATUSES,
    PAGE_ROW_STATUSES,
    ApprovalRecord,
    DeliveryRecord,
    EventRecord,
    IncidentRecord,
    MoveRecord,
    PageRows,
    SnapshotRecord,
    StepRecord,
)
from watchdog.store.schema import ensure_schema
from watchdog.store.undo import UndoRecord

BUSY_TIMEOUT_MS = 5000


JOURNAL_MODE = 0o600


def _create_private(path: Path) -> None:
    """Create the journal file readable by its owner only, before SQLite opens it.

    It holds incidents' evidence, step outputs and before-images of configuration rows;
    SQLite gives its -wal and -shm files the mode of the database file, so they are
    private too. An existing journal keeps the mode its operator gave it.
    """
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, JOURNAL_MODE)
    except FileExistsError:
        return
    try:
        os.fchmod(descriptor, JOURNAL_MODE)  # whatever the umask
    finally:
        os.close(descriptor)


def dumps(value: Any) -> str:
    """The one JSON encoding of the journal: sorted keys, anything else as a string."""
    return json.dumps(value, sort_keys=True, default=str)


def rows_checksum(rows: Sequence[dict[str, Any]]) -> str:
    """sha256 of the rows as canonical JSON, independent of the order of rows and keys."""
    canonical = sorted(json.dumps(row, sort_keys=True, default=str) for row in rows)
    return hashlib.sha256(("[" + ",".join(canonical) + "]").encode()).hexdigest()


class SqliteJournal:
    """The `Journal` over one SQLite file, created with its schema on first open."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _create_private(self.path)
        self._lock = threading.Lock()
        self._closed = False
        self._crash = crashpoints.CrashPoints.from_environment()  # the crash matrix only
        self._conn = sqlite3.connect(
            self.path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
            check_same_thread=False,
        )
        try:
            self._conn.row_factory = sqlite3.Row
            self._configure()
            self._create_schema()
        except BaseException:
            self._conn.close()
            raise

    # Connection and transactions ---------------------------------------------

    def _configure(self) -> None:
        mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise RuntimeError(
                f"journal {self.path}: SQLite would not switch to WAL mode (got {mode!r}); "
                "put the journal on a local filesystem"
            )
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

    def _create_schema(self) -> None:
        with self._transaction() as conn:
            ensure_schema(conn, where=str(self.path))

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise RuntimeError(f"journal {self.path} is closed")
        return self._conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed before the caller returns."""
        with self._lock:
            conn = self._connection()
            site = crashpoints.write_site() if self._crash else ""
            conn.execute("BEGIN IMMEDIATE")
            changes = conn.total_changes
            try:
                yield conn
                number = 0
                if self._crash and conn.total_changes != changes:
                    number = crashpoints.before_commit(self._crash, site)
                conn.execute("COMMIT")
                if self._crash and number:
                    crashpoints.after_commit(self._crash, site, number)
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._connection().execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    # Incidents -----------------------------------------------------------------

    def open_incident(
        self,
        *,
        key: str,
        severity: Severity,
        scenario: str,
        subject: str,
        state: str,
        reason: str,
        at: float,
        findings: Sequence[Finding],
    ) -> int:
        severity = Severity(severity)
        with self._transaction() as conn:
            existing = conn.execute(
                "SELECT id FROM incidents WHERE key = ? AND closed_at IS NULL", (key,)
            ).fetchone()
            if existing is not None:
                raise ValueError(f"incident {existing['id']} with key {key!r} is still open")
            cursor = conn.execute(
                "INSERT INTO incidents (key, severity, scenario, subject, state, reason,"
                " opened_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key, severity.value, scenario, subject, state, reason, at, at),
            )
            incident_id = _lastrowid(cursor)
            for finding in findings:
                _insert_finding(conn, incident_id, finding, at)
            _insert_event(
                conn,
                incident_id,
                at=at,
                kind="opened",
                summary=f"{severity.value} {scenario} on {subject or key} ({state}): {reason}",
                data={
                    "key": key,
                    "severity": severity.value,
                    "scenario": scenario,
                    "subject": subject,
                    "state": state,
                    "findings": [finding.rule for finding in findings],
                },
            )
            return incident_id

    def find_open(self, key: str) -> IncidentRecord | None:
        rows = self._read("SELECT * FROM incidents WHERE key = ? AND closed_at IS NULL", (key,))
        return _incident(rows[0]) if rows else None

    def open_incidents(self) -> list[IncidentRecord]:
        rows = self._read("SELECT * FROM incidents WHERE closed_at IS NULL ORDER BY opened_at, id")
        return [_incident(row) for row in rows]

    def incident(self, incident_id: int) -> IncidentRecord:
        rows = self._read("SELECT * FROM incidents WHERE id = ?", (incident_id,))
        if not rows:
            raise KeyError(f"no incident with id {incident_id}")
        return _incident(rows[0])

    def list_incidents(
        self, *, limit: int = 50, include_closed: bool = True
    ) -> list[IncidentRecord]:
        where = "" if include_closed else "WHERE closed_at IS NULL"
        rows = self._read(
            f"SELECT * FROM incidents {where} ORDER BY opened_at DESC, id DESC LIMIT ?",
            (limit,),
        )
        return [_incident(row) for row in rows]

    def set_state(
        self, incident_id: int, *, state: str, at: float, reason: str, closed: bool = False
    ) -> None:
        with self._transaction() as conn:
            _change_state(conn, incident_id, state=state, at=at, reason=reason, closed=closed)

    def commit_move(self, incident_id: int, move: MoveRecord) -> None:
        """Write one lifecycle decision whole: states, plan, rung, budget, steps, events, pages."""
        with self._transaction() as conn:
            _require_incident(conn, incident_id)
            for finding in move.findings:
                _add_finding(conn, incident_id, finding, move.at)
            if move.severity is not None:
                severity, scenario, why = move.severity
                _change_severity(conn, incident_id, severity, scenario, at=move.at, reason=why)
            for step_id, output in move.unknown_steps:
                _finish_step(conn, step_id, status="unknown", at=move.at, output=output)
            if move.plan is not None:
                _store_plan(conn, incident_id, move.plan, at=move.at)
            if move.climb is not None:
                rung, scenario = move.climb
                conn.execute(
                    "UPDATE incidents SET rung = ?, scenario = ? WHERE id = ?",
                    (rung, scenario, incident_id),
                )
            for event in move.events:
                _insert_event(
                    conn, incident_id, at=move.at, kind=event.kind, summary=event.summary,
                    data=event.data,
                )
            last = len(move.states) - 1
            for index, (state, reason) in enumerate(move.states):
                _change_state(
                    conn, incident_id, state=state, at=move.at, reason=reason,
                    closed=move.closed and index == last,
                )
            for target in move.actions:
                conn.execute("INSERT INTO actions (target, at) VALUES (?, ?)", (target, move.at))
            for page in move.pages:
                insert_page_rows(conn, incident_id, page, move.at)

    def close_by_human(
        self, incident_id: int, *, person: str, role: str, comment: str, at: float
    ) -> IncidentRecord:
        with self._transaction() as conn:
            before = _require_incident(conn, incident_id)
            if before["closed_at"] is not None or before["state"] in FINAL:
                raise ValueError(
                    f"incident {incident_id} is already {before['state']}"
                    f"{'' if before['state'] == 'closed' else ' (final)'}; expected an "
                    f"incident not yet final ({', '.join(sorted(FINAL))})"
                )
            conn.execute(
                "UPDATE incidents SET state = 'closed', updated_at = ?, closed_at = ? WHERE id = ?",
                (at, at, incident_id),
            )
            _insert_event(
                conn,
                incident_id,
                at=at,
                kind=CLOSED_BY_HUMAN,
                summary=f"{before['state']} → closed by {person} ({role}): {comment}",
                data={
                    "from": before["state"],
                    "to": "closed",
                    "person": person,
                    "role": role,
                    "comment": comment,
                },
            )
            return _incident(_require_incident(conn, incident_id))

    def set_severity(
        self, incident_id: int, *, severity: Severity, scenario: str, at: float, reason: str
    ) -> None:
        with self._transaction() as conn:
            _change_severity(conn, incident_id, Severity(severity), scenario, at=at, reason=reason)

    # Findings and timeline -------------------------------------------------------

    def add_finding(self, incident_id: int, finding: Finding, at: float) -> None:
        with self._transaction() as conn:
            _require_incident(conn, incident_id)
            _add_finding(conn, incident_id, finding, at)

    def findings(self, incident_id: int) -> list[Finding]:
        rows = self._read(
            "SELECT body FROM findings WHERE incident_id = ? ORDER BY id", (incident_id,)
        )
        return [finding_from_dict(json.loads(row["body"])) for row in rows]

    def add_event(
        self,
        incident_id: int,
        *,
        at: float,
        kind: str,
        summary: str,
        data: dict[str, Any] | None = None,
    ) -> int:
        with self._transaction() as conn:
            _require_incident(conn, incident_id)
            return _insert_event(conn, incident_id, at=at, kind=kind, summary=summary, data=data)

    def timeline(self, incident_id: int) -> list[EventRecord]:
        rows = self._read("SELECT * FROM events WHERE incident_id = ? ORDER BY id", (incident_id,))
        return [
            EventRecord(
                id=row["id"],
                incident_id=row["incident_id"],
                at=row["at"],
                kind=row["kind"],
                summary=row["summary"],
                data=json.loads(row["data"]),
            )
            for row in rows
        ]

    # Plans and steps ---------------------------------------------------------------

    def save_plan(self, incident_id: int, plan: Plan, *, at: float) -> None:
        with self._transaction() as conn:
            _require_incident(conn, incident_id)
            _store_plan(conn, incident_id, plan, at=at)

    def plan(self, incident_id: int) -> Plan | None:
        rows = self._read("SELECT body FROM plans WHERE incident_id = ?", (incident_id,))
        return plan_from_dict(json.loads(rows[0]["body"])) if rows else None

    def step_started(
        self, incident_id: int, *, index: int, step: Step, at: float, rung: int = 0
    ) -> int:
        if rung < 0:
            raise ValueError(f"rung {rung}: expected 0 (the first plan) or a later rung")
        with self._transaction() as conn:
            _require_incident(conn, incident_id)
            previous = conn.execute(
                "SELECT id, attempt, status FROM steps WHERE incident_id = ? AND idx = ?"
                " ORDER BY attempt DESC LIMIT 1",
                (incident_id, index),
            ).fetchone()
            if previous is not None and previous["status"] == "started":
                raise ValueError(
                    f"step {index} of incident {incident_id} is still started "
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
            step_id = _lastrowid(cursor)
            _insert_event(
                conn,
                incident_id,
                at=at,
                kind="step_started",
                summary=(
                    f"step {index} {step.name} (attempt {attempt}"
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
            _finish_step(conn, step_id, status=status, at=at, output=output)

    def steps(self, incident_id: int) -> list[StepRecord]:
        rows = self._read("SELECT * FROM steps WHERE incident_id = ? ORDER BY id", (incident_id,))
        return [_step(row) for row in rows]

    def unfinished_steps(self) -> list[StepRecord]:
        rows = self._read("SELECT * FROM steps WHERE status = 'started' ORDER BY id")
        return [_step(row) for row in rows]

    # Approvals and notifications ------------------------------------------------------

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
            _require_incident(conn, incident_id)
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
            approval_id = _lastrowid(cursor)
            verb = "approved" if decision == "approve" else "rejected"
            _insert_event(
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

    # Snapshots -----------------------------------------------------------------------------

    def save_snapshot(
        self,
        table: str,
        rows: list[dict[str, Any]],
        *,
        at: float,
        keep: int = 10,
        caveat: str = "",
    ) -> SnapshotRecord | None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        checksum = rows_checksum(rows)
        body = dumps(rows)
        with self._transaction() as conn:
            newest = conn.execute(
                "SELECT checksum, caveat FROM snapshots WHERE table_name = ?"
                " ORDER BY id DESC LIMIT 1",
                (table,),
            ).fetchone()
            # The same rows again are news only when they were under a caveat and are
            # now seen clean: the clean version is what a restore should say it is.
            if (
                newest is not None
                and newest["checksum"] == checksum
                and (caveat or not newest["caveat"])
            ):
                return None
            cursor = conn.execute(
                "INSERT INTO snapshots (table_name, at, checksum, row_count, rows, caveat)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (table, at, checksum, len(rows), body, caveat),
            )
            snapshot_id = _lastrowid(cursor)
            conn.execute(
                "DELETE FROM snapshots WHERE table_name = ? AND id NOT IN"
                " (SELECT id FROM snapshots WHERE table_name = ? ORDER BY id DESC LIMIT ?)",
                (table, table, keep),
            )
        return SnapshotRecord(
            id=snapshot_id,
            table_name=table,
            at=at,
            checksum=checksum,
            row_count=len(rows),
            rows=json.loads(body),
            caveat=caveat,
        )

    def latest_snapshot(self, table: str) -> SnapshotRecord | None:
        rows = self._read(
            "SELECT * FROM snapshots WHERE table_name = ? ORDER BY id DESC LIMIT 1", (table,)
        )
        return _snapshot(rows[0]) if rows else None

    def snapshots(self, table: str) -> list[SnapshotRecord]:
        rows = self._read("SELECT * FROM snapshots WHERE table_name = ? ORDER BY id DESC", (table,))
        return [_snapshot(row) for row in rows]

    def snapshot(self, snapshot_id: int) -> SnapshotRecord:
        rows = self._read("SELECT * FROM snapshots WHERE id = ?", (snapshot_id,))
        if not rows:
            raise KeyError(f"no snapshot with id {snapshot_id}")
        return _snapshot(rows[0])

    # Undo records, written ahead of the change ----------------------------------------------

    def intend_undo(
        self,
        incident_id: int,
        *,
        step: str,
        action: str,
        table: str,
        before: Sequence[Mapping[str, Any]],
        after: Sequence[Mapping[str, Any]],
        at: float,
    ) -> int:
        with self._transaction() as conn:
            _require_incident(conn, incident_id)
            undo_id = undo_rows.intend(
                conn, incident_id, step=step, action=action, table=table,
                before=before, after=after, at=at,
            )
            _insert_event(
                conn,
                incident_id,
                at=at,
                kind="undo",
                summary=f"undo record {undo_id} written ahead of {step!r}: the before-images "
                f"of {len(before)} row(s) of {table}",
                data={"undo": undo_id, "status": "intended"},
            )
            return undo_id

    def settle_undo(self, undo_id: int, *, status: str, at: float, reason: str) -> None:
        with self._transaction() as conn:
            settled = undo_rows.settle(conn, undo_id, status=status, at=at, reason=reason)
            if settled is not None:
                _insert_event(
                    conn,
                    settled.incident_id,
                    at=at,
                    kind="undo",
                    summary=f"undo record {undo_id} {status.replace('_', ' ')}: {reason}",
                    data={"undo": undo_id, "status": status},
                )

    def undo_records(self, incident_id: int) -> list[UndoRecord]:
        return [
            undo_rows.record(r) for r in self._read(undo_rows.SELECT_FOR_INCIDENT, (incident_id,))
        ]

    # Alertmanager's alerts -------------------------------------------------------------------

    def record_alerts(
        self, deliveries: Sequence[AlertDelivery], *, at: float, firing: FiringStarts
    ) -> list[AlertReceipt]:
        with self._transaction() as conn:
            return [
                alert_rows.record(
                    conn,
                    d.alerts,
                    at=at,
                    group_key=d.group_key,
                    receiver=d.receiver,
                    firing=firing,
                )
                for d in deliveries
            ]

    def firing_alerts(self) -> list[Alert]:
        return alert_rows.firing(self._read(alert_rows.FIRING_UNSETTLED))

    def settle_alerts(self, keys: Sequence[tuple[str, float]], *, at: float, by: str) -> None:
        with self._transaction() as conn:
            alert_rows.settle(conn, keys, at=at, by=by)


    # Outbox ---------------------------------------------------------------------------

    def enqueue_page(self, incident_id: int, rows: PageRows, *, at: float) -> list[int]:
        with self._transaction() as conn:
            return insert_page_rows(conn, incident_id, rows, at)

    def due_deliveries(self, now: float, *, limit: int = 20) -> list[DeliveryRecord]:
        rows = self._read(
            "SELECT * FROM outbox AS o WHERE o.status = 'pending' AND o.next_at <= ?"
            " AND NOT EXISTS (SELECT 1 FROM outbox AS e WHERE e.status = 'pending'"
            " AND e.incident_id = o.incident_id AND e.channel = o.channel AND e.id < o.id)"
            " ORDER BY o.next_at, o.id LIMIT ?",
            (now, limit),
        )
        return [_delivery(row) for row in rows]

    def delivery_sent(self, delivery_id: int, *, at: float, summary: str) -> None:
        with self._transaction() as conn:
            row = _require_pending(conn, delivery_id)
            conn.execute(
                "UPDATE outbox SET status = 'sent', attempts = attempts + 1, finished_at = ?"
                " WHERE id = ?",
                (at, delivery_id),
            )
            _insert_event(
                conn,
                row["incident_id"],
                at=at,
                kind="page_sent",
                summary=f"{row['channel']} {row['event']} sent: {summary}",
                data=_delivery_data(row, attempts=row["attempts"] + 1),
            )

    def delivery_retry(self, delivery_id: int, *, at: float, next_at: float, error: str) -> None:
        with self._transaction() as conn:
            _require_pending(conn, delivery_id)
            conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_at = ?, last_error = ?"
                " WHERE id = ?",
                (next_at, error, delivery_id),
            )

    def delivery_rejected(
        self,
        delivery_id: int,
        *,
        at: float,
        error: str,
        fallback: PageRows | None = None,
        fallback_of: int | None = None,
        lost: str = "",
    ) -> list[int]:
        with self._transaction() as conn:
            row = _require_pending(conn, delivery_id)
            conn.execute(
                "UPDATE outbox SET status = 'rejected', attempts = attempts + 1,"
                " finished_at = ?, last_error = ? WHERE id = ?",
                (at, error, delivery_id),
            )
            data = _delivery_data(row, attempts=row["attempts"] + 1)
            _insert_event(
                conn,
                row["incident_id"],
                at=at,
                kind="page_rejected",
                summary=f"{row['channel']} {row['event']} not delivered: {error}",
                data=data,
            )
            if lost:
                _insert_event(
                    conn,
                    row["incident_id"],
                    at=at,
                    kind="page_lost",
                    summary=lost,
                    data={**data, "error": error},
                )
            if fallback is None:
                return []
            return insert_page_rows(
                conn, row["incident_id"], fallback, at, fallback_of=fallback_of
            )

    def deliveries(self, incident_id: int) -> list[DeliveryRecord]:
        rows = self._read("SELECT * FROM outbox WHERE incident_id = ? ORDER BY id", (incident_id,))
        return [_delivery(row) for row in rows]

    def pending_deliveries(self) -> dict[str, int]:
        rows = self._read(
            "SELECT channel, COUNT(*) AS n FROM outbox WHERE status = 'pending' GROUP BY channel"
        )
        return {row["channel"]: row["n"] for row in rows}


# Rows in, rows out -----------------------------------------------------------------------


def insert_page_rows(
    conn: sqlite3.Connection,
    incident_id: int,
    rows: PageRows,
    at: float,
    *,
    fallback_of: int | None = None,
) -> list[int]:
    """Write one page's outbox rows (due at `at`) and its timeline event; return the row ids.

    No transaction of its own: `enqueue_page` wraps it in one, and an incident move
    calls it inside the move's transaction, so the move and its page commit together.
    A dry-run page is journaled as 'dry_run' rows, never due, shown as "would page".
    `fallback_of` names the page event this page stands in for (a channel refused it).
    """
    if rows.status not in PAGE_ROW_STATUSES:
        raise ValueError(
            f"page rows status {rows.status!r} is not one of {', '.join(PAGE_ROW_STATUSES)}"
        )
    if not rows.bodies:
        raise ValueError(f"page rows for incident {incident_id} name no channel")
    _require_incident(conn, incident_id)
    insert = (
        "INSERT INTO outbox (incident_id, channel, event, dedup_key, body, status, created_at,"
        " next_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    )
    key, status = rows.dedup_key, rows.status
    ids = [
        _lastrowid(
            conn.execute(
                insert, (incident_id, channel, rows.event, key, dumps(body), status, at, at)
            )
        )
        for channel, body in rows.bodies.items()
    ]
    channels = ", ".join(rows.bodies)
    dry = rows.status == "dry_run"
    data: dict[str, Any] = {
        "event": rows.event,
        "channels": list(rows.bodies),
        "delivery_ids": ids,
        "reason": rows.reason,
    }
    if fallback_of is not None:
        data["fallback_of"] = fallback_of
    _insert_event(
        conn,
        incident_id,
        at=at,
        kind="page_dry_run" if dry else "page",
        summary=(
            f"would page {channels}: {rows.event}: {rows.reason}"
            if dry
            else f"{rows.event} to {channels}: {rows.reason}"
        ),
        data=data,
    )
    return ids


def _lastrowid(cursor: sqlite3.Cursor) -> int:
    row_id = cursor.lastrowid
    if row_id is None:  # only after statements that insert nothing
        raise RuntimeError("SQLite reported no id for an inserted row")
    return row_id


def _require_incident(conn: sqlite3.Connection, incident_id: int) -> sqlite3.Row:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM incidents WHERE id = ?", (incident_id,)
    ).fetchone()
    if row is None:
        raise KeyError(f"no incident with id {incident_id}")
    return row


def _require_pending(conn: sqlite3.Connection, delivery_id: int) -> sqlite3.Row:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM outbox WHERE id = ?", (delivery_id,)
    ).fetchone()
    if row is None:
        raise KeyError(f"no outbox row with id {delivery_id}")
    if row["status"] != "pending":
        raise ValueError(f"outbox row {delivery_id} is already {row['status']!r}, not pending")
    return row


def _delivery_data(row: sqlite3.Row, *, attempts: int) -> dict[str, Any]:
    return {
        "delivery_id": row["id"],
        "channel": row["channel"],
        "event": row["event"],
        "attempts": attempts,
    }


def _insert_finding(
    conn: sqlite3.Connection, incident_id: int, finding: Finding, at: float
) -> None:
    conn.execute(
        "INSERT INTO findings (incident_id, at, body) VALUES (?, ?, ?)",
        (incident_id, at, dumps(finding_to_dict(finding))),
    )


def _insert_event(
    conn: sqlite3.Connection,
    incident_id: int,
    *,
    at: float,
    kind: str,
    summary: str,
    data: dict[str, Any] | None,
) -> int:
    cursor = conn.execute(
        "INSERT INTO events (incident_id, at, kind, summary, data) VALUES (?, ?, ?, ?, ?)",
        (incident_id, at, kind, summary, dumps(data or {})),
    )
    return _lastrowid(cursor)


def _add_finding(conn: sqlite3.Connection, incident_id: int, finding: Finding, at: float) -> None:
    _insert_finding(conn, incident_id, finding, at)
    _insert_event(
        conn,
        incident_id,
        at=at,
        kind="finding",
        summary=f"{finding.rule}: {finding.reason}",
        data={
            "rule": finding.rule,
            "signal": finding.signal,
            "series": finding.series,
            "severity": finding.severity.value,
            "scenario": finding.scenario,
        },
    )


def _change_severity(
    conn: sqlite3.Connection, incident_id: int, severity: Severity, scenario: str, *,
    at: float, reason: str,
) -> None:
    before = _require_incident(conn, incident_id)
    conn.execute(
        "UPDATE incidents SET severity = ?, scenario = ?, updated_at = ? WHERE id = ?",
        (severity.value, scenario, at, incident_id),
    )
    _insert_event(
        conn,
        incident_id,
        at=at,
        kind="escalated",
        summary=(
            f"{before['severity']} {before['scenario']} → {severity.value} {scenario}: {reason}"
        ),
        data={
            "from_severity": before["severity"],
            "to_severity": severity.value,
            "from_scenario": before["scenario"],
            "to_scenario": scenario,
        },
    )


def _change_state(
    conn: sqlite3.Connection, incident_id: int, *, state: str, at: float, reason: str,
    closed: bool,
) -> None:
    before = _require_incident(conn, incident_id)
    conn.execute(
        "UPDATE incidents SET state = ?, updated_at = ?,"
        " closed_at = CASE WHEN ? THEN COALESCE(closed_at, ?) ELSE closed_at END"
        " WHERE id = ?",
        (state, at, closed, at, incident_id),
    )
    _insert_event(
        conn,
        incident_id,
        at=at,
        kind="state",
        summary=f"{before['state']} → {state}: {reason}",
        data={"from": before["state"], "to": state, "closed": closed},
    )


def _store_plan(conn: sqlite3.Connection, incident_id: int, plan: Plan, *, at: float) -> None:
    body = plan_to_dict(plan)
    replaced = conn.execute("SELECT 1 FROM plans WHERE incident_id = ?", (incident_id,)).fetchone()
    conn.execute(
        "INSERT INTO plans (incident_id, at, body) VALUES (?, ?, ?)"
        " ON CONFLICT (incident_id) DO UPDATE SET at = excluded.at, body = excluded.body",
        (incident_id, at, dumps(body)),
    )
    auth = plan.authorization
    _insert_event(
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


def _finish_step(
    conn: sqlite3.Connection, step_id: int, *, status: str, at: float, output: str
) -> None:
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
    _insert_event(
        conn,
        row["incident_id"],
        at=at,
        kind=f"step_{status}",
        summary=(
            f"step {row['idx']} {row['name']} (attempt {row['attempt']}) {status}"
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


def _incident(row: sqlite3.Row) -> IncidentRecord:
    return IncidentRecord(
        id=row["id"],
        key=row["key"],
        severity=Severity(row["severity"]),
        scenario=row["scenario"],
        subject=row["subject"],
        state=row["state"],
        reason=row["reason"],
        opened_at=row["opened_at"],
        updated_at=row["updated_at"],
        closed_at=row["closed_at"],
        rung=row["rung"],
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


def _snapshot(row: sqlite3.Row) -> SnapshotRecord:
    return SnapshotRecord(
        id=row["id"],
        table_name=row["table_name"],
        at=row["at"],
        checksum=row["checksum"],
        row_count=row["row_count"],
        rows=json.loads(row["rows"]),
        caveat=row["caveat"],
    )


def _delivery(row: sqlite3.Row) -> DeliveryRecord:
    return DeliveryRecord(
        id=row["id"],
        incident_id=row["incident_id"],
        channel=row["channel"],
        event=row["event"],
        dedup_key=row["dedup_key"],
        body=json.loads(row["body"]),
        status=row["status"],
        attempts=row["attempts"],
        created_at=row["created_at"],
        next_at=row["next_at"],
        finished_at=row["finished_at"],
        last_error=row["last_error"],
    )
