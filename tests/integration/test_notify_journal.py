"""The journal's outbox: rows written before sending, due in order, and kept across a reopen."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.notify_stage import open_p1
from watchdog.store.journal import Journal, open_journal


def enqueue(journal: Journal, incident: int, channel: str, event: str, at: float) -> int:
    (row,) = journal.enqueue_page(
        incident,
        event=event,
        dedup_key="dlq",
        bodies={channel: {"event": event}},
        reason="test",
        at=at,
    )
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
    ids = journal.enqueue_page(
        incident,
        event="trigger",
        dedup_key="dlq",
        bodies={"pagerduty": {"a": 1}, "slack": {"b": 2}},
        reason="P1 opened",
        at=10.0,
    )
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
