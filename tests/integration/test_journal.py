"""The journal contract, run against real files over every backend.

Each test takes the `journal` fixture (or `journal_url` / `open_more` to open more
handles on the same store), parametrised by backend in tests/integration/conftest.py:
SQLite and PostgreSQL (a fresh schema per test on the worker's one server), and the same
contract must hold. Tests that are about one backend (WAL, URL forms) say so.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watchdog.model import (
    Alert,
    AuthMode,
    Authorization,
    Check,
    Finding,
    Observation,
    Plan,
    Risk,
    Severity,
    Step,
)
from watchdog.store import Journal, open_journal
from watchdog.store.alerts import AlertDelivery
from watchdog.store.codec import finding_from_dict, finding_to_dict, plan_from_dict, plan_to_dict
from watchdog.store.render import NO_INCIDENTS, TABLE_COLUMNS, incident_report, incidents_table
from watchdog.store.schema import SCHEMA_VERSION
from watchdog.store.shadow import ShadowDecision

REPO_ROOT = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


# Fixtures ------------------------------------------------------------------------------


@pytest.fixture
def journal(open_more: Callable[[], Journal]) -> Journal:
    return open_more()


# Real values ---------------------------------------------------------------------------


def dlq_finding(*, since: float = T0, depth: int = 6120) -> Finding:
    return Finding(
        rule="dlq_depth_high",
        signal="dlq_depth",
        series="orders",
        severity=Severity.P1,
        scenario="dlq_overflow",
        group="dlq",
        subject="orders",
        since=since,
        reason=f"DLQ depth {depth} > 5000 for 30 s",
        evidence=(f"dlq_depth{{queue=orders}} = {depth}", "threshold 5000 (runbook §4)"),
        params=(("queue", "orders"), ("threshold", "5000")),
        supersedes=("dlq_depth_warning",),
    )


def breaker_finding() -> Finding:
    return Finding(
        rule="breakers_open",
        signal="circuit_breaker",
        series="openai",
        severity=Severity.P0,
        scenario="provider_failure",
        group="providers",
        subject="",
        since=T0 + 5,
        reason="3 circuit breakers open",
        evidence=("openai open", "anthropic open", "mistral open"),
    )


def rollback_plan(*, title: str = "Roll back the gateway configuration") -> Plan:
    return Plan(
        scenario="config_regression",
        title=title,
        steps=(
            Step(
                name="snapshot current configuration",
                action="config.snapshot",
                risk=Risk.SAFE,
                params=(("table", "gateway_config"),),
            ),
            Step(
                name="restore previous configuration",
                action="config.restore",
                risk=Risk.SAFE,
                params=(("table", "gateway_config"), ("versions_back", 1)),
                timeout_seconds=60.0,
                note="from the journal's snapshot",
            ),
            Step(
                name="restart gateway",
                action="docker.restart",
                risk=Risk.RISKY,
                params=(("service", "gateway"), ("ports", (8080, 8443)), ("env", {"A": "1"})),
                idempotent=False,
            ),
        ),
        checklist=(
            Check("error rate back under 1 %", "http_error_ratio", "<", 0.01),
            Check("gateway healthy", "gateway_health", "==", 1.0, measure="min"),
        ),
        verify_for_seconds=120.0,
        verify_timeout_seconds=600.0,
        authorization=Authorization(
            mode=AuthMode.APPROVAL,
            reason="P1 with a risky step: an engineering lead must approve",
            role="lead",
            quorum=1,
        ),
        reason="error ratio rose from 0.2 % to 7 % within 60 s of a configuration change",
        impact=("gateway restarts: about 5 s of refused connections",),
    )


def open_dlq(journal: Journal, *, at: float = T0, key: str = "dlq/orders") -> int:
    return journal.open_incident(
        key=key,
        severity=Severity.P1,
        scenario="dlq_overflow",
        subject="orders",
        state="detected",
        reason="DLQ depth 6120 > 5000 for 30 s",
        at=at,
        findings=[dlq_finding(since=at)],
    )


def step(name: str = "restart gateway", *, idempotent: bool = True) -> Step:
    return Step(
        name=name,
        action="docker.restart",
        risk=Risk.SAFE,
        params=(("service", "gateway"),),
        idempotent=idempotent,
    )


# Incidents -------------------------------------------------------------------------------


def test_open_find_and_refuse_a_duplicate_open_key(journal: Journal) -> None:
    incident_id = open_dlq(journal)

    found = journal.find_open("dlq/orders")
    assert found is not None
    assert found == journal.incident(incident_id)
    assert (found.id, found.key, found.severity, found.scenario) == (
        incident_id,
        "dlq/orders",
        Severity.P1,
        "dlq_overflow",
    )
    assert (found.state, found.opened_at, found.updated_at, found.closed_at) == (
        "detected",
        T0,
        T0,
        None,
    )
    assert journal.find_open("dlq/payments") is None

    with pytest.raises(ValueError, match=r"dlq/orders.*still open"):
        open_dlq(journal, at=T0 + 1)
    assert [record.id for record in journal.open_incidents()] == [incident_id]


def test_a_closed_incident_frees_its_key(journal: Journal) -> None:
    first = open_dlq(journal)
    journal.set_state(first, state="resolved", at=T0 + 60, reason="depth 12 < 5000", closed=True)
    assert journal.find_open("dlq/orders") is None

    second = open_dlq(journal, at=T0 + 120)
    assert second != first
    assert journal.find_open("dlq/orders") == journal.incident(second)
    assert [r.id for r in journal.open_incidents()] == [second]


def test_list_incidents_newest_first_with_limit_and_filter(journal: Journal) -> None:
    ids = [open_dlq(journal, at=T0 + n, key=f"dlq/q{n}") for n in range(4)]
    journal.set_state(ids[3], state="closed", at=T0 + 10, reason="fixed forward", closed=True)

    assert [r.id for r in journal.list_incidents()] == ids[::-1]
    assert [r.id for r in journal.list_incidents(limit=2)] == [ids[3], ids[2]]
    assert [r.id for r in journal.list_incidents(include_closed=False)] == ids[2::-1]
    assert [r.id for r in journal.open_incidents()] == ids[:3]


def test_unknown_ids_raise_key_error_naming_them(journal: Journal) -> None:
    with pytest.raises(KeyError, match="4242"):
        journal.incident(4242)
    with pytest.raises(KeyError, match="4242"):
        journal.add_event(4242, at=T0, kind="note", summary="nobody home")
    with pytest.raises(KeyError, match="4242"):
        journal.set_state(4242, state="verifying", at=T0, reason="no such incident")
    with pytest.raises(KeyError, match="4242"):
        journal.step_finished(4242, status="succeeded", at=T0, output="")
    with pytest.raises(KeyError, match="4242"):
        journal.snapshot(4242)


def test_timeline_in_order_with_state_transitions_and_reasons(journal: Journal) -> None:
    incident_id = open_dlq(journal)
    journal.set_state(incident_id, state="triaged", at=T0 + 1, reason="P1: DLQ > 5000")
    journal.add_event(incident_id, at=T0 + 2, kind="note", summary="operator looking")
    journal.set_state(incident_id, state="executing", at=T0 + 3, reason="auto allowed for safe")
    journal.set_severity(
        incident_id,
        severity=Severity.P0,
        scenario="database_unavailable",
        at=T0 + 4,
        reason="postgres stopped answering",
    )
    journal.set_state(
        incident_id, state="resolved", at=T0 + 9, reason="checklist passed for 120 s", closed=True
    )

    events = journal.timeline(incident_id)
    assert [e.kind for e in events] == ["opened", "state", "note", "state", "escalated", "state"]
    assert [e.at for e in events] == [T0, T0 + 1, T0 + 2, T0 + 3, T0 + 4, T0 + 9]
    assert [e.id for e in events] == sorted(e.id for e in events)
    assert "DLQ depth 6120 > 5000 for 30 s" in events[0].summary
    assert events[1].summary == "detected → triaged: P1: DLQ > 5000"
    assert events[3].summary == "triaged → executing: auto allowed for safe"
    assert events[5].summary == "executing → resolved: checklist passed for 120 s"
    assert events[5].data == {"from": "executing", "to": "resolved", "closed": True}
    assert "P1 dlq_overflow → P0 database_unavailable" in events[4].summary
    assert "postgres stopped answering" in events[4].summary

    record = journal.incident(incident_id)
    assert (record.state, record.severity, record.scenario) == (
        "resolved",
        Severity.P0,
        "database_unavailable",
    )
    assert (record.updated_at, record.closed_at) == (T0 + 9, T0 + 9)
    assert record.reason == "DLQ depth 6120 > 5000 for 30 s"
    assert journal.open_incidents() == []


def test_event_data_is_json_with_other_values_as_strings(journal: Journal) -> None:
    incident_id = open_dlq(journal)
    moment = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    journal.add_event(
        incident_id,
        at=T0 + 1,
        kind="probe",
        summary="raw reading",
        data={"depth": 6120, "at": moment, "path": Path("/srv/x"), "tags": ("a", "b")},
    )
    event = journal.timeline(incident_id)[-1]
    assert event.data == {
        "depth": 6120,
        "at": str(moment),
        "path": "/srv/x",
        "tags": ["a", "b"],
    }


# Findings and plans ----------------------------------------------------------------------


def test_findings_round_trip_exactly(journal: Journal) -> None:
    incident_id = open_dlq(journal)
    journal.add_finding(incident_id, breaker_finding(), T0 + 5)

    assert journal.findings(incident_id) == [dlq_finding(since=T0), breaker_finding()]
    last = journal.timeline(incident_id)[-1]
    assert (last.kind, last.at) == ("finding", T0 + 5)
    assert "3 circuit breakers open" in last.summary


def test_plan_round_trips_exactly_and_saving_again_replaces_it(journal: Journal) -> None:
    incident_id = open_dlq(journal)
    assert journal.plan(incident_id) is None

    journal.save_plan(incident_id, rollback_plan(), at=T0 + 1)
    assert journal.plan(incident_id) == rollback_plan()

    journal.save_plan(incident_id, rollback_plan(title="Restore the database"), at=T0 + 2)
    assert journal.plan(incident_id) == rollback_plan(title="Restore the database")

    plan_events = [e for e in journal.timeline(incident_id) if e.kind == "plan"]
    assert [e.data["replaced"] for e in plan_events] == [False, True]
    assert plan_from_dict(plan_events[0].data["plan"]) == rollback_plan()


# Steps: write-ahead ------------------------------------------------------------------------


def test_a_step_never_finished_survives_a_crash(
    journal: Journal, open_more: Callable[[], Journal]
) -> None:
    incident_id = open_dlq(journal)
    step_id = journal.step_started(incident_id, index=0, step=step(), at=T0 + 1)

    # A second process opening the store while the first never closed it.
    after_crash = open_more()
    [unfinished] = after_crash.unfinished_steps()
    assert (unfinished.id, unfinished.incident_id, unfinished.index) == (step_id, incident_id, 0)
    assert (unfinished.status, unfinished.attempt, unfinished.finished_at) == ("started", 1, None)
    assert (unfinished.name, unfinished.action, unfinished.risk) == (
        "restart gateway",
        "docker.restart",
        Risk.SAFE,
    )
    assert unfinished.params == {"service": "gateway"}
    assert unfinished.idempotent is True

    journal.close()
    after_close = open_more()
    assert [s.id for s in after_close.unfinished_steps()] == [step_id]


def test_a_step_survives_a_killed_process(journal_url: str, journal: Journal) -> None:
    script = textwrap.dedent(
        """
        import os, sys
        from watchdog.model import Risk, Severity, Step
        from watchdog.store import open_journal

        journal = open_journal(sys.argv[1])
        incident_id = journal.open_incident(
            key="db/orders", severity=Severity.P0, scenario="database_unavailable",
            subject="orders", state="executing", reason="postgres down", at=1.0, findings=[],
        )
        journal.step_started(
            incident_id, index=0, step=Step("restore", "pg.restore", Risk.RISKY), at=2.0
        )
        os._exit(137)  # no close, no atexit, no flush: as if killed
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", script, journal_url],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 137, result.stderr

    [unfinished] = journal.unfinished_steps()
    assert (unfinished.name, unfinished.action, unfinished.risk) == (
        "restore",
        "pg.restore",
        Risk.RISKY,
    )
    record = journal.find_open("db/orders")
    assert record is not None
    assert record.state == "executing"


def test_attempts_count_up_and_every_attempt_is_kept(journal: Journal) -> None:
    incident_id = open_dlq(journal)
    first = journal.step_started(incident_id, index=0, step=step(), at=T0 + 1)
    with pytest.raises(ValueError, match="still started"):
        journal.step_started(incident_id, index=0, step=step(), at=T0 + 2)
    journal.step_finished(first, status="unknown", at=T0 + 3, output="daemon restarted")
    second = journal.step_started(incident_id, index=0, step=step(), at=T0 + 4)
    journal.step_finished(second, status="failed", at=T0 + 5, output="exit 1\nno such service")
    third = journal.step_started(incident_id, index=0, step=step(), at=T0 + 6)
    journal.step_finished(third, status="succeeded", at=T0 + 7, output="restarted in 2.1 s")
    other = journal.step_started(incident_id, index=1, step=step("verify"), at=T0 + 8)
    journal.step_finished(other, status="skipped", at=T0 + 8, output="")

    steps = journal.steps(incident_id)
    assert [(s.index, s.attempt, s.status) for s in steps] == [
        (0, 1, "unknown"),
        (0, 2, "failed"),
        (0, 3, "succeeded"),
        (1, 1, "skipped"),
    ]
    assert steps[1].output == "exit 1\nno such service"
    assert (steps[2].started_at, steps[2].finished_at) == (T0 + 6, T0 + 7)
    assert journal.unfinished_steps() == []

    kinds = [e.kind for e in journal.timeline(incident_id) if e.kind.startswith("step_")]
    assert kinds == [
        "step_started",
        "step_unknown",
        "step_started",
        "step_failed",
        "step_started",
        "step_succeeded",
        "step_started",
        "step_skipped",
    ]


def test_step_finish_refuses_bad_status_and_second_finish(journal: Journal) -> None:
    incident_id = open_dlq(journal)
    step_id = journal.step_started(incident_id, index=0, step=step(), at=T0)
    with pytest.raises(ValueError, match="'done'"):
        journal.step_finished(step_id, status="done", at=T0 + 1, output="")
    with pytest.raises(ValueError, match="'started'"):
        journal.step_finished(step_id, status="started", at=T0 + 1, output="")
    journal.step_finished(step_id, status="succeeded", at=T0 + 1, output="ok")
    with pytest.raises(ValueError, match="already finished"):
        journal.step_finished(step_id, status="failed", at=T0 + 2, output="")
    assert journal.steps(incident_id)[0].status == "succeeded"


# Approvals, notifications, guards ----------------------------------------------------------


def test_approvals_are_recorded(journal: Journal) -> None:
    incident_id = open_dlq(journal)
    first = journal.record_approval(
        incident_id, at=T0 + 1, person="alice", role="lead", decision="approve", comment="go"
    )
    second = journal.record_approval(
        incident_id, at=T0 + 2, person="bob", role="oncall", decision="reject"
    )
    with pytest.raises(ValueError, match="'maybe'"):
        journal.record_approval(incident_id, at=T0, person="eve", role="x", decision="maybe")

    approvals = journal.approvals(incident_id)
    assert [(a.id, a.person, a.role, a.decision, a.comment) for a in approvals] == [
        (first, "alice", "lead", "approve", "go"),
        (second, "bob", "oncall", "reject", ""),
    ]
    events = journal.timeline(incident_id)[1:]
    assert [e.kind for e in events] == ["approval", "approval"]
    assert events[0].summary == "alice (lead) approved: go"


def test_action_budget_and_cooldown(journal: Journal) -> None:
    assert journal.actions_since(0.0) == 0
    assert journal.last_action_at("gateway") is None
    for offset, target in [(0, "gateway"), (600, "worker"), (1800, "gateway"), (3500, "db")]:
        journal.record_action(target=target, at=T0 + offset)

    assert journal.actions_since(T0) == 4
    assert journal.actions_since(T0 + 600) == 3
    assert journal.actions_since(T0 + 3501) == 0
    assert journal.last_action_at("gateway") == T0 + 1800
    assert journal.last_action_at("db") == T0 + 3500
    assert journal.last_action_at("cache") is None


def test_flags_are_shared_between_handles(
    journal: Journal, open_more: Callable[[], Journal]
) -> None:
    assert journal.get_flag("paused") is None
    journal.set_flag("paused", "true", at=T0)
    daemon = open_more()
    assert daemon.get_flag("paused") == "true"
    journal.set_flag("paused", "false", at=T0 + 1)
    assert daemon.get_flag("paused") == "false"


# Snapshots ---------------------------------------------------------------------------------


def test_snapshots_are_stored_only_on_change(journal: Journal) -> None:
    rows = [{"key": "timeout", "value": 30}, {"key": "retries", "value": 3}]
    first = journal.save_snapshot("gateway_config", rows, at=T0)
    assert first is not None
    assert (first.table_name, first.at, first.row_count, first.rows) == (
        "gateway_config",
        T0,
        2,
        rows,
    )

    reordered = [{"value": 3, "key": "retries"}, {"value": 30, "key": "timeout"}]
    assert journal.save_snapshot("gateway_config", reordered, at=T0 + 1) is None

    changed = [{"key": "timeout", "value": 5}, {"key": "retries", "value": 3}]
    second = journal.save_snapshot("gateway_config", changed, at=T0 + 2)
    assert second is not None
    assert second.checksum != first.checksum
    assert journal.latest_snapshot("gateway_config") == second
    assert journal.snapshot(first.id) == first
    assert journal.snapshots("gateway_config") == [second, first]
    assert journal.latest_snapshot("providers") is None

    other = journal.save_snapshot("providers", rows, at=T0 + 3)
    assert other is not None
    assert other.checksum == first.checksum  # same rows, another table: stored on its own


def test_a_snapshot_keeps_its_caveat_and_is_stored_again_only_to_drop_it(
    journal: Journal,
) -> None:
    rows = [{"field": "bpm", "first": "musicbrainz"}]
    caveat = "taken while the watchdog had spotify disabled (incident 7)"
    marked = journal.save_snapshot("cfg", rows, at=T0, caveat=caveat)
    assert marked is not None and marked.caveat == caveat
    assert journal.latest_snapshot("cfg") == marked
    # Other words for the same rows are no news; the same rows seen clean are.
    assert journal.save_snapshot("cfg", rows, at=T0 + 1, caveat="other words") is None
    clean = journal.save_snapshot("cfg", rows, at=T0 + 2)
    assert clean is not None and clean.caveat == "" and clean.checksum == marked.checksum
    assert journal.save_snapshot("cfg", rows, at=T0 + 3, caveat=caveat) is None
    assert journal.snapshots("cfg") == [clean, marked]


def test_snapshot_checksum_ignores_row_and_key_order(journal: Journal) -> None:
    a = journal.save_snapshot("t1", [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}], at=T0)
    b = journal.save_snapshot("t2", [{"b": "y", "a": 2}, {"b": "x", "a": 1}], at=T0)
    assert a is not None
    assert b is not None
    assert a.checksum == b.checksum
    assert len(a.checksum) == 64


def test_snapshots_keep_only_the_newest(journal: Journal) -> None:
    saved = [journal.save_snapshot("cfg", [{"version": n}], at=T0 + n, keep=3) for n in range(5)]
    ids = [s.id for s in saved if s is not None]
    assert len(ids) == 5
    assert [s.id for s in journal.snapshots("cfg")] == ids[:1:-1]
    assert [s.rows for s in journal.snapshots("cfg")] == [[{"version": n}] for n in (4, 3, 2)]
    with pytest.raises(KeyError):
        journal.snapshot(ids[0])
    with pytest.raises(ValueError, match="keep"):
        journal.save_snapshot("cfg", [], at=T0, keep=0)


# Threads -----------------------------------------------------------------------------------


def test_concurrent_writers_from_threads(journal: Journal) -> None:
    incident_id = open_dlq(journal)

    def write(worker: int) -> None:
        for n in range(20):
            journal.add_event(incident_id, at=T0 + n, kind="probe", summary=f"{worker}/{n}")
            journal.record_action(target=f"t{worker}", at=T0 + n)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    summaries = [e.summary for e in journal.timeline(incident_id) if e.kind == "probe"]
    assert sorted(summaries) == sorted(f"{w}/{n}" for w in range(6) for n in range(20))
    assert journal.actions_since(T0) == 120


# SQLite specifics --------------------------------------------------------------------------


def test_deliveries_in_one_commit_see_each_other(journal: Journal) -> None:
    """A later delivery of the same transaction ends what an earlier one started, and the
    caller's view of what fires (`firing`) comes back updated in place."""

    def firing(starts: float, status: str = "firing") -> Alert:
        ends = None if status == "firing" else starts + 60
        return Alert("00000000000000aa", status, starts, ends, (("alertname", "X"),))

    view: dict[str, set[float]] = {"00000000000000aa": {100.0}}
    journal.record_alerts(
        [AlertDelivery((firing(100.0),), "g", "r")], at=1.0, firing={}
    )  # the row the view already holds
    first, second, third = journal.record_alerts(
        [
            AlertDelivery((firing(200.0),), "g", "r"),
            AlertDelivery((firing(300.0), firing(200.0)), "g", "r"),
            AlertDelivery((firing(300.0, "resolved"),), "g", "r"),
        ],
        at=2.0,
        firing=view,
    )
    assert (first.accepted, first.ended) == (1, (("00000000000000aa", 100.0),))
    assert (second.accepted, second.duplicates) == (1, 1)
    assert second.ended == (("00000000000000aa", 200.0),)
    assert (third.accepted, third.ended) == (1, (("00000000000000aa", 300.0),))
    assert view == {"00000000000000aa": set()}
    assert journal.firing_alerts() == []


def test_observations_are_kept_read_by_time_and_pruned(journal: Journal) -> None:
    """Replay's history (schema version 4): one batch, ranged reads oldest first, pruning."""
    assert journal.observation_span() == (0, None, None)
    journal.record_observations([
        Observation("dlq_depth", 10.0, 12.0),
        Observation("breaker_state", 10.0, 1.0, series="spotify"),
        Observation("api_health", 20.0, 0.0, error="connection refused", detail="GET /health"),
    ])
    assert journal.observation_span() == (3, 10.0, 20.0)
    assert journal.observations(since=15.0) == [
        Observation("api_health", 20.0, 0.0, error="connection refused", detail="GET /health")
    ]
    assert [o.series for o in journal.observations(until=10.0)] == ["", "spotify"]
    assert journal.prune_observations(15.0) == 2
    assert journal.observation_span() == (1, 20.0, 20.0)


def test_shadow_decisions_are_kept_newest_first(journal: Journal) -> None:
    """A shadow policy's judgements (schema version 5): one batch, newest first, checked."""
    assert journal.shadow_decisions() == []
    live = "P1 dlq_overflow on dlq (auto): 'drain': restart workers (safe)"
    journal.record_shadow_decisions([
        ShadowDecision(10.0, "strict.yaml", "dlq", "live opened", "", live, "live-only",
                       "the shadow policy would have no incident on this key"),
        ShadowDecision(30.0, "strict.yaml", "dlq", "shadow opened", live.replace("P1", "P2"),
                       live, "differs", "severity: P1 → P2"),
    ])
    journal.record_shadow_decisions([])
    newest, oldest = journal.shadow_decisions()
    assert (newest.agreement, newest.how) == ("differs", "severity: P1 → P2")
    assert newest.shadow.startswith("P2 dlq_overflow")
    assert (oldest.at, oldest.shadow, oldest.live) == (10.0, "", live)
    assert journal.shadow_decisions(limit=1) == [newest]
    with pytest.raises(ValueError, match="shadow agreement 'maybe'"):
        ShadowDecision(1.0, "s.yaml", "k", "shadow opened", "", "", "maybe")


def test_sqlite_file_is_in_wal_mode_with_the_current_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    open_journal(str(path)).close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    conn.close()


def test_a_version_1_file_is_migrated_in_place_and_keeps_its_rows(tmp_path: Path) -> None:
    """A journal written before rungs and plan digests gains the columns, rows intact."""
    path = tmp_path / "journal.db"
    journal = open_journal(str(path))
    incident = journal.open_incident(
        key="k",
        severity=Severity.P2,
        scenario="s",
        subject="x",
        state="detected",
        reason="r",
        at=T0,
        findings=[],
    )
    journal.close()
    conn = sqlite3.connect(path)
    with conn:  # back to the version 1 shape: drop what versions 2 and 3 added
        for table, column in (
            ("incidents", "rung"),
            ("steps", "rung"),
            ("approvals", "plan_digest"),
            ("snapshots", "caveat"),
            ("outbox", "claimed_by"),
            ("outbox", "claimed_until"),
        ):
            conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        conn.execute("UPDATE schema_version SET version = 1")
    conn.close()
    reopened = open_journal(str(path))
    try:
        assert reopened.incident(incident).key == "k"
    finally:
        reopened.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        assert conn.execute("SELECT rung FROM incidents").fetchall() == [(0,)]
        assert conn.execute("SELECT claimed_by, claimed_until FROM outbox").fetchall() == []
    conn.close()


def test_sqlite_file_from_a_newer_watchdog_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    open_journal(str(path)).close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    conn.close()
    with pytest.raises(RuntimeError, match=f"schema version {SCHEMA_VERSION + 1}"):
        open_journal(str(path))


def test_sqlite_url_forms_name_the_same_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    relative = open_journal("sqlite:///state/journal.db")
    relative.set_flag("paused", "true", at=T0)
    relative.close()
    for form in (f"sqlite:///{tmp_path}/state/journal.db", str(tmp_path / "state/journal.db")):
        journal = open_journal(form)
        assert journal.get_flag("paused") == "true"
        journal.close()


@pytest.mark.parametrize(
    "url",
    [
        "mysql://h/db",
        "sqlite://",
        "sqlite:///",
        "sqlite:relative.db",
        "",
    ],
)
def test_a_bad_url_is_refused_by_name(url: str) -> None:
    with pytest.raises(ValueError, match="sqlite:///") as caught:
        open_journal(url)
    assert repr(url) in str(caught.value)


def test_a_closed_journal_refuses_calls(tmp_path: Path) -> None:
    journal = open_journal(str(tmp_path / "j.db"))
    journal.close()
    journal.close()  # twice is harmless
    with pytest.raises(RuntimeError, match="closed"):
        journal.get_flag("paused")


# Rendering -------------------------------------------------------------------------------------


def test_incidents_table_has_every_column_and_an_empty_line(journal: Journal) -> None:
    assert incidents_table([], now=T0) == NO_INCIDENTS == "no incidents"

    first = open_dlq(journal)
    journal.open_incident(
        key="providers",
        severity=Severity.P0,
        scenario="provider_failure",
        subject="",
        state="executing",
        reason="3 circuit breakers open",
        at=T0 + 60,
        findings=[breaker_finding()],
    )
    journal.set_state(first, state="resolved", at=T0 + 90, reason="drained", closed=True)
    table = incidents_table(journal.list_incidents(), now=T0 + 3 * 3600 + 125)
    lines = table.splitlines()

    assert lines[0].split() == list(TABLE_COLUMNS)
    assert len(lines) == 3
    assert lines[1].split()[:5] == ["2", "P0", "provider_failure", "providers", "executing"]
    assert lines[1].split()[5:] == ["2023-11-14T22:14:20Z", "3h01m"]
    assert lines[2].split()[1:4] == ["P1", "dlq_overflow", "orders"]
    assert "resolved (closed)" in lines[2]
    assert "2023-11-14T22:13:20Z" in lines[2]
    starts = {line.index(line.split()[2]) for line in lines}
    assert len(starts) == 1, "SCENARIO column not aligned"


def test_incident_report_explains_everything(journal: Journal) -> None:
    incident_id = open_dlq(journal)
    journal.add_finding(incident_id, breaker_finding(), T0 + 0.25)
    journal.save_plan(incident_id, rollback_plan(), at=T0 + 0.5)
    journal.set_state(incident_id, state="awaiting_approval", at=T0 + 1, reason="lead must ok")
    journal.record_approval(
        incident_id, at=T0 + 30, person="alice", role="lead", decision="approve", comment="go"
    )
    journal.set_state(incident_id, state="executing", at=T0 + 31, reason="approved by alice")
    step_id = journal.step_started(incident_id, index=0, step=step(), at=T0 + 31.5)
    journal.step_finished(
        step_id, status="failed", at=T0 + 33.125, output="Error: no such container\nexit 1"
    )

    report = incident_report(
        journal.incident(incident_id),
        events=journal.timeline(incident_id),
        steps=journal.steps(incident_id),
        plan=journal.plan(incident_id),
        findings=journal.findings(incident_id),
        approvals=journal.approvals(incident_id),
    )

    for expected in [
        f"Incident {incident_id}: P1 dlq_overflow",
        "dlq/orders",
        "awaiting_approval → executing: approved by alice",
        "DLQ depth 6120 > 5000 for 30 s",
        "evidence: dlq_depth{queue=orders} = 6120",
        "evidence: threshold 5000 (runbook §4)",
        "3 circuit breakers open",
        "Plan: Roll back the gateway configuration",
        "error ratio rose from 0.2 % to 7 % within 60 s",
        "approval by lead (quorum 1): P1 with a risky step",
        "1. snapshot current configuration [safe] config.snapshot table=gateway_config",
        "3. restart gateway [risky] docker.restart service=gateway",
        "gateway restarts: about 5 s of refused connections",
        "alice (lead) approve: go",
        "lead must ok",
    ]:
        assert expected in report, expected

    timeline = report[report.index("Timeline") :].splitlines()
    assert timeline[1].split()[:3] == ["22:13:20.000", "+0.000s", "opened"]
    failed = next(i for i, line in enumerate(timeline) if " step_failed " in line)
    assert timeline[failed].split()[:3] == ["22:13:53.125", "+33.125s", "step_failed"]
    assert timeline[failed + 1] == "        | Error: no such container"
    assert timeline[failed + 2] == "        | exit 1"


# Properties: the codec is exact ----------------------------------------------------------------

_texts = st.text(max_size=12)
_numbers = st.floats(allow_nan=False)
_scalars = st.none() | st.booleans() | st.integers() | _numbers | _texts
_param_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3).map(tuple) | st.dictionaries(_texts, inner, max_size=3)
    ),
    max_leaves=8,
)
_steps = st.builds(
    Step,
    name=_texts,
    action=_texts,
    risk=st.sampled_from(Risk),
    params=st.lists(st.tuples(_texts, _param_values), max_size=4).map(tuple),
    idempotent=st.booleans(),
    timeout_seconds=_numbers,
    note=_texts,
)
_checks = st.builds(
    Check,
    description=_texts,
    signal=_texts,
    op=st.sampled_from(["<", "<=", ">", ">=", "=="]),
    threshold=_numbers,
    measure=_texts,
    window_seconds=_numbers,
)
plans = st.builds(
    Plan,
    scenario=_texts,
    title=_texts,
    steps=st.lists(_steps, max_size=4).map(tuple),
    checklist=st.lists(_checks, max_size=3).map(tuple),
    verify_for_seconds=_numbers,
    verify_timeout_seconds=_numbers,
    authorization=st.builds(
        Authorization,
        mode=st.sampled_from(AuthMode),
        reason=_texts,
        role=st.none() | _texts,
        quorum=st.integers(0, 5),
    ),
    reason=_texts,
    impact=st.lists(_texts, max_size=3).map(tuple),
)
findings = st.builds(
    Finding,
    rule=_texts,
    signal=_texts,
    series=_texts,
    severity=st.sampled_from(Severity),
    scenario=_texts,
    group=_texts,
    subject=_texts,
    since=_numbers,
    reason=_texts,
    evidence=st.lists(_texts, max_size=3).map(tuple),
    params=st.lists(st.tuples(_texts, _texts), max_size=3).map(tuple),
    supersedes=st.lists(_texts, max_size=3).map(tuple),
    value=st.none() | _numbers,
)


def _through_json(data: dict[str, Any]) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(json.dumps(data, sort_keys=True, default=str))
    return decoded


@given(plans)
def test_plan_codec_round_trips(plan: Plan) -> None:
    assert plan_from_dict(plan_to_dict(plan)) == plan
    assert plan_from_dict(_through_json(plan_to_dict(plan))) == plan
    assert _through_json(plan_to_dict(plan)) == plan_to_dict(plan)


@given(findings)
def test_finding_codec_round_trips(finding: Finding) -> None:
    assert finding_from_dict(finding_to_dict(finding)) == finding
    assert finding_from_dict(_through_json(finding_to_dict(finding))) == finding


def test_generated_plans_round_trip_through_the_journal(journal: Journal) -> None:
    incident_id = open_dlq(journal)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(plans)
    def check(plan: Plan) -> None:
        journal.save_plan(incident_id, plan, at=T0)
        assert journal.plan(incident_id) == plan

    check()
