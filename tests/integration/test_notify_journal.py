"""The journal's outbox: rows written before sending, due in order, and kept across a reopen."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql

from tests.integration.notify_stage import Vendors, open_p1, outbox_for
from watchdog.model import Severity
from watchdog.policy.schema import NotifySpec
from watchdog.store.journal import Journal, open_journal
from watchdog.store.pg_base import split_url
from watchdog.store.records import PageRows
from watchdog.store.sqlite import insert_page_rows
from watchdog.store.sqlite_base import SqliteBase


@pytest.fixture
def journal(open_more: Callable[[], Journal]) -> Journal:
    """These tests are the store contract: over every backend (conftest's `BACKENDS`)."""
    return open_more()

def enqueue(journal: Journal, incident: int, channel: str, event: str, at: float) -> int:
    rows = PageRows(event, "songnodes/1", {channel: {"event": event}}, "test", "pending")
    (row,) = journal.enqueue_page(incident, rows, at=at)
    return row


def test_only_the_oldest_pending_row_per_incident_and_channel_is_due(journal: Journal) -> None:
    incident = open_p1(journal)
    trigger = enqueue(journal, incident, "pagerduty", "trigger", 10.0)
    resolve = enqueue(journal, incident, "pagerduty", "resolve", 11.0)
    slack = enqueue(journal, incident, "slack", "trigger", 12.0)
    assert [d.id for d in journal.due_deliveries(20.0)] == [trigger, slack]
    assert [d.id for d in journal.due_deliveries(10.5)] == [trigger]

    journal.delivery_retry(trigger, at=13.0, next_at=30.0, error="HTTP 500")
    assert [d.id for d in journal.due_deliveries(20.0)] == [slack]  # the resolve waits
    assert journal.pending_deliveries() == {"pagerduty": 2, "slack": 1}

    journal.delivery_sent(trigger, at=30.0, summary="HTTP 202")
    assert [d.id for d in journal.due_deliveries(31.0)] == [resolve, slack]
    row = journal.deliveries(incident)[0]
    assert (row.status, row.attempts, row.finished_at, row.last_error) == (
        "sent",
        2,
        30.0,
        "HTTP 500",
    )


def test_a_rejected_row_is_final_and_on_the_timeline(journal: Journal) -> None:
    incident = open_p1(journal)
    row = enqueue(journal, incident, "opsgenie", "trigger", 10.0)
    journal.delivery_rejected(row, at=11.0, error="HTTP 422: Message can not be empty.")
    assert journal.pending_deliveries() == {}
    assert journal.due_deliveries(99.0) == []
    kinds = [(e.kind, e.summary) for e in journal.timeline(incident)][-2:]
    assert kinds == [
        ("page", "trigger to opsgenie: test"),
        ("page_rejected", "opsgenie trigger not delivered: HTTP 422: Message can not be empty."),
    ]
    with pytest.raises(ValueError, match="already 'rejected'"):
        journal.delivery_sent(row, at=12.0, summary="late")
    with pytest.raises(KeyError, match="no outbox row with id 999"):
        journal.delivery_retry(999, at=1.0, next_at=2.0, error="x")
    with pytest.raises(KeyError, match="no incident with id 404"):
        enqueue(journal, 404, "slack", "trigger", 1.0)


def test_one_page_is_one_transaction_and_one_timeline_event(journal: Journal) -> None:
    incident = open_p1(journal)
    rows = PageRows(
        "trigger", "songnodes/1", {"pagerduty": {"a": 1}, "slack": {"b": 2}}, "P1 opened", "pending"
    )
    ids = journal.enqueue_page(incident, rows, at=10.0)
    assert [(d.id, d.channel, d.body) for d in journal.deliveries(incident)] == [
        (ids[0], "pagerduty", {"a": 1}),
        (ids[1], "slack", {"b": 2}),
    ]
    (page,) = [e for e in journal.timeline(incident) if e.kind == "page"]
    assert page.summary == "trigger to pagerduty, slack: P1 opened"


def test_pending_rows_survive_closing_and_reopening_the_journal(tmp_path: Path) -> None:
    path = str(tmp_path / "journal.db")
    first = open_journal(path)
    incident = open_p1(first)
    row = enqueue(first, incident, "webhook", "trigger", 10.0)
    first.delivery_retry(row, at=11.0, next_at=15.0, error="network error: ConnectError")
    first.close()
    second = open_journal(path)
    try:
        (due,) = second.due_deliveries(15.0)
        assert (due.id, due.attempts, due.body) == (row, 1, {"event": "trigger"})
    finally:
        second.close()


def test_page_rows_commit_with_the_callers_transaction_or_not_at_all(
    journal: Journal,
) -> None:
    assert isinstance(journal, SqliteBase)  # SqliteJournal or PgJournal: both take _transaction()
    incident = open_p1(journal)
    rows = PageRows("trigger", "songnodes/1", {"slack": {"b": 2}}, "P1 opened", "pending")
    with pytest.raises(RuntimeError, match="the move failed"), journal._transaction() as conn:
        insert_page_rows(conn, incident, rows, 10.0)
        raise RuntimeError("the move failed after its page was written")
    assert journal.deliveries(incident) == []
    assert not [e for e in journal.timeline(incident) if e.kind == "page"]
    with journal._transaction() as conn:
        (row,) = insert_page_rows(conn, incident, rows, 10.0)
    assert [d.id for d in journal.due_deliveries(10.0)] == [row]


def test_bad_page_rows_are_refused_naming_what_was_expected(journal: Journal) -> None:
    incident = open_p1(journal)
    with pytest.raises(ValueError, match="'sent' is not one of pending, dry_run"):
        journal.enqueue_page(incident, PageRows("trigger", "k", {"slack": {}}, "r", "sent"), at=1)
    with pytest.raises(ValueError, match="name no channel"):
        journal.enqueue_page(incident, PageRows("trigger", "k", {}, "r", "pending"), at=1)
    assert journal.deliveries(incident) == []


def test_a_dry_run_page_is_journaled_never_due_and_shown_as_would_page(journal: Journal) -> None:
    incident = open_p1(journal)
    bodies: dict[str, dict[str, object]] = {"pagerduty": {}, "slack": {}}
    rows = PageRows("trigger", "songnodes/1", bodies, "P1 opened", "dry_run")
    journal.enqueue_page(incident, rows, at=10.0)
    assert [d.status for d in journal.deliveries(incident)] == ["dry_run", "dry_run"]
    assert journal.due_deliveries(1e12) == [] and journal.pending_deliveries() == {}
    (shown,) = [e for e in journal.timeline(incident) if e.kind == "page_dry_run"]
    assert shown.summary == "would page pagerduty, slack: trigger: P1 opened"


def test_a_row_given_up_writes_its_fallback_or_its_loss_in_the_same_transaction(
    journal: Journal,
) -> None:
    incident = open_p1(journal)
    row = enqueue(journal, incident, "opsgenie", "trigger", 10.0)
    (page,) = [e for e in journal.timeline(incident) if e.kind == "page"]
    fallback = PageRows("trigger", "songnodes/1", {"slack": {}}, "fallback: x", "pending")
    (moved,) = journal.delivery_rejected(
        row, at=11.0, error="HTTP 401", fallback=fallback, fallback_of=page.id
    )
    assert [(d.id, d.channel, d.status) for d in journal.deliveries(incident)] == [
        (row, "opsgenie", "rejected"),
        (moved, "slack", "pending"),
    ]
    last = journal.timeline(incident)[-1]
    assert (last.kind, last.data["fallback_of"], last.data["reason"]) == (
        "page",
        page.id,
        "fallback: x",
    )
    assert journal.delivery_rejected(moved, at=12.0, error="HTTP 404", lost="slack lost") == []
    assert [(e.kind, e.summary) for e in journal.timeline(incident)][-2:] == [
        ("page_rejected", "slack trigger not delivered: HTTP 404"),
        ("page_lost", "slack lost"),
    ]


# ---- claims: two daemons on one journal send each row once (issue 17 point 3) ------


def enqueue_many(journal: Journal, incidents: int) -> set[int]:
    """Rows due at 10.0: a trigger to two channels for each of `incidents` incidents."""
    rows: set[int] = set()
    for n in range(incidents):
        incident = open_p1(journal, key=f"dlq-{n}")
        bodies: dict[str, dict[str, object]] = {"pagerduty": {}, "slack": {}}
        page = PageRows("trigger", f"songnodes/{incident}", bodies, "P1 opened", "pending")
        rows.update(journal.enqueue_page(incident, page, at=10.0))
    return rows


def test_two_daemons_claiming_at_once_never_get_the_same_row(
    journal: Journal, open_more: Callable[[], Journal]
) -> None:
    rows = enqueue_many(journal, 4)
    handles = {"a": journal, "b": open_more()}
    start = threading.Barrier(len(handles))
    claimed: dict[str, list[int]] = {holder: [] for holder in handles}

    def claim_all(holder: str) -> None:
        start.wait()
        while got := handles[holder].claim_deliveries(holder, 20.0, lease=30.0, limit=3):
            claimed[holder] += [d.id for d in got]
            assert {d.claimed_by for d in got} == {holder}

    with ThreadPoolExecutor(len(handles)) as pool:
        list(pool.map(claim_all, handles))
    assert not set(claimed["a"]) & set(claimed["b"])
    assert sorted(claimed["a"] + claimed["b"]) == sorted(rows)
    # Claimed rows stay due to the plain read (views and tests), pending, and unsent.
    assert {d.id for d in journal.due_deliveries(20.0)} == rows


def test_a_claim_whose_holder_died_is_taken_after_its_lease_not_before(
    journal: Journal, open_more: Callable[[], Journal]
) -> None:
    rows = enqueue_many(journal, 1)
    other = open_more()
    assert {d.id for d in journal.claim_deliveries("a", 10.0, lease=20.0)} == rows
    assert other.claim_deliveries("b", 29.9, lease=20.0) == []  # a may still be sending
    taken = other.claim_deliveries("b", 30.0, lease=20.0)  # a's lease has passed: a died
    assert {(d.id, d.claimed_by, d.claimed_until) for d in taken} == {
        (row, "b", 50.0) for row in rows
    }
    first = min(rows)
    with pytest.raises(ValueError, match=r"claimed by 'b' until 50\.0, not by 'a'"):
        journal.delivery_sent(first, at=31.0, summary="HTTP 202", holder="a")  # a woke up
    other.delivery_sent(first, at=31.0, summary="HTTP 202", holder="b")
    (sent,) = [d for d in journal.deliveries(journal.open_incidents()[0].id) if d.id == first]
    assert (sent.status, sent.claimed_by) == ("sent", "b")


def test_a_row_claimed_by_another_live_holder_is_refused_and_a_retry_frees_it(
    journal: Journal,
) -> None:
    incident = open_p1(journal)
    row = enqueue(journal, incident, "slack", "trigger", 10.0)
    (claimed,) = journal.claim_deliveries("a", 10.0, lease=20.0)
    assert claimed.id == row and journal.claim_deliveries("b", 11.0, lease=20.0) == []
    refusals = [
        lambda: journal.delivery_sent(row, at=12.0, summary="202", holder="b"),
        lambda: journal.delivery_retry(row, at=12.0, next_at=13.0, error="x", holder="b"),
        lambda: journal.delivery_rejected(row, at=12.0, error="HTTP 400", holder="b"),
        lambda: journal.delivery_sent(row, at=12.0, summary="202"),  # no holder: a human
    ]
    for refused in refusals:
        with pytest.raises(ValueError, match=r"claimed by 'a' until 30\.0, not by"):
            refused()
    journal.delivery_retry(row, at=12.0, next_at=14.0, error="HTTP 500", holder="a")
    assert journal.claim_deliveries("b", 13.0, lease=20.0) == []  # not due yet
    (again,) = journal.claim_deliveries("b", 14.0, lease=20.0)  # the retry freed the claim
    assert (again.id, again.claimed_by, again.attempts) == (row, "b", 1)
    journal.delivery_rejected(row, at=15.0, error="HTTP 400", holder="b")
    (done,) = journal.deliveries(incident)
    assert (done.status, done.claimed_by, done.claimed_until) == ("rejected", None, None)


def test_claims_of_holders_known_dead_are_released_at_once_and_no_others(
    journal: Journal,
) -> None:
    first, second, third, fourth = sorted(enqueue_many(journal, 2))
    for holder in ("gone#1", "alive#2", "gone#3"):  # one row each, oldest first
        journal.claim_deliveries(holder, 10.0, lease=60.0, limit=1)
    journal.delivery_sent(third, at=11.0, summary="202", holder="gone#3")  # settled: kept
    asked: list[str] = []

    def dead(holder: str) -> bool:
        asked.append(holder)
        return holder.startswith("gone")

    assert journal.release_claims(dead) == ["gone#1"]
    assert asked == ["alive#2", "gone#1"]  # holders of pending rows, each asked once
    taken = journal.claim_deliveries("new#4", 12.0, lease=60.0)
    assert [d.id for d in taken] == [first, fourth]
    rows = [d for incident in journal.open_incidents() for d in journal.deliveries(incident.id)]
    assert {d.id: d.claimed_by for d in rows} == {
        first: "new#4", second: "alive#2", third: "gone#3", fourth: "new#4"
    }


@pytest.mark.asyncio
async def test_a_restarted_outbox_takes_at_once_the_rows_its_hosts_exited_process_held(
    fakes: Vendors, journal: Journal
) -> None:
    exited = subprocess.Popen(["true"])
    exited.wait()
    spec = NotifySpec(routes={Severity.P1: ["slack"]})
    async with httpx.AsyncClient() as client:
        outbox = outbox_for(fakes, journal, client, spec=spec)  # holder: host#pid
        here, there = (open_p1(journal, key=f"dlq-{n}") for n in range(2))
        for incident in (here, there):
            outbox.incident_moved(incident, "triaged", "awaiting_approval", "needs a lead")
        now = time.time()  # the outbox's clock (outbox_for)
        journal.claim_deliveries(f"{socket.gethostname()}#{exited.pid}", now, lease=60, limit=1)
        journal.claim_deliveries("another-host#1", now, lease=60.0)
        stop = asyncio.Event()
        running = asyncio.create_task(outbox.run(stop))
        try:
            deadline = time.monotonic() + 10  # far below the 60 s lease: not waited out
            while journal.deliveries(here)[0].status == "pending":
                assert time.monotonic() < deadline, "the exited process's row was not taken"
                await asyncio.sleep(0.02)
        finally:
            stop.set()
            await running
    (sent,), (held,) = journal.deliveries(here), journal.deliveries(there)
    assert (sent.status, sent.claimed_by) == ("sent", f"{socket.gethostname()}#{os.getpid()}")
    assert (held.status, held.claimed_by) == ("pending", "another-host#1")  # lease waited
    assert len(fakes.slack.messages()) == 1


@pytest.mark.parametrize("journal_url", ["postgresql"], indirect=True)
def test_a_postgresql_claim_skips_the_rows_another_transaction_has_locked(
    journal: Journal, journal_url: str
) -> None:
    """SKIP LOCKED, not the journal-wide write lock, keeps claims apart on PostgreSQL."""
    rows = sorted(enqueue_many(journal, 2))
    dsn, schema = split_url(journal_url)
    outbox = sql.Identifier(schema, "outbox")
    with ThreadPoolExecutor(1) as pool, psycopg.connect(dsn) as other:
        other.execute(sql.SQL("SELECT id FROM {} WHERE id = %s FOR UPDATE").format(outbox),
                      (rows[0],))  # held until `other` ends: a claim waiting on it would hang
        claim = pool.submit(journal.claim_deliveries, "a", 20.0, lease=30.0)
        assert sorted(d.id for d in claim.result(timeout=10)) == rows[1:]


@pytest.mark.parametrize("journal_url", ["postgresql"], indirect=True)
@pytest.mark.asyncio
async def test_two_outboxes_on_one_postgresql_journal_send_each_page_once(
    fakes: Vendors, open_more: Callable[[], Journal]
) -> None:
    first, second = open_more(), open_more()
    spec = NotifySpec(routes={Severity.P1: ["slack"]})
    async with httpx.AsyncClient() as client:
        daemons = [
            outbox_for(fakes, handle, client, spec=spec, holder=name)
            for handle, name in ((first, "a"), (second, "b"))
        ]
        incidents = [open_p1(first, key=f"dlq-{n}") for n in range(3)]
        for incident in incidents:
            daemons[0].incident_moved(incident, "triaged", "awaiting_approval", "needs a lead")
        stop = asyncio.Event()
        running = [asyncio.create_task(daemon.run(stop)) for daemon in daemons]
        try:
            await drain_by_others(first)
        finally:
            stop.set()
            await asyncio.gather(*running)
    messages = [m["text"] for m in fakes.slack.messages()]
    assert len(messages) == len(incidents), messages  # before claims: every page twice
    rows = [d for incident in incidents for d in first.deliveries(incident)]
    assert {(d.status, d.claimed_by in ("a", "b")) for d in rows} == {("sent", True)}


async def drain_by_others(journal: Journal, seconds: float = 10.0) -> None:
    """Wait (polling the journal) until the running outboxes have nothing pending."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while journal.pending_deliveries():
        if loop.time() > deadline:
            raise AssertionError(f"still pending after {seconds} s: {journal.pending_deliveries()}")
        await asyncio.sleep(0.02)
