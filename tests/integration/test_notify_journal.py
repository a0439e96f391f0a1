"""The journal's outbox: rows written before sending, due in order, and kept across a reopen."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.notify_stage import open_p1
from watchdog.store.journal import Journal, open_journal
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
