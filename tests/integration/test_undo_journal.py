"""The journal's undo records: written ahead, settled once, read back in order."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from watchdog.model import Severity
from watchdog.store.journal import Journal, open_journal

BEFORE = [{"metadata_field": "bpm", "priority_1_provider": "spotify"}]
AFTER = [{"metadata_field": "bpm", "priority_1_provider": None}]



@pytest.fixture
def journal(open_more: Callable[[], Journal]) -> Journal:
    """These tests are the store contract: over every backend (conftest's `BACKENDS`)."""
    return open_more()

def incident(journal: Journal) -> int:
    return journal.open_incident(
        key="provider/spotify", severity=Severity.P2, scenario="provider_failure",
        subject="spotify", state="executing", reason="test", at=1.0, findings=(),
    )


def intend(journal: Journal, incident_id: int, at: float = 2.0) -> int:
    return journal.intend_undo(
        incident_id, step="take spotify out", action="provider.disable",
        table="metadata_enrichment_config", before=BEFORE, after=AFTER, at=at,
    )


def test_an_intent_is_stored_with_its_images_and_put_on_the_timeline(journal: Journal) -> None:
    opened = incident(journal)
    undo = intend(journal, opened)
    (record,) = journal.undo_records(opened)
    assert (record.id, record.status, record.step, record.table_name) == (
        undo, "intended", "take spotify out", "metadata_enrichment_config"
    )
    assert (record.before, record.after, record.intended_at, record.settled_at) == (
        BEFORE, AFTER, 2.0, None
    )
    (event,) = [e for e in journal.timeline(opened) if e.kind == "undo"]
    assert event.data == {"undo": undo, "status": "intended"}
    assert "before-images of 1 row(s) of metadata_enrichment_config" in event.summary


def test_settling_marks_once_and_a_repeat_is_harmless(journal: Journal) -> None:
    opened = incident(journal)
    undo = intend(journal, opened)
    journal.settle_undo(undo, status="applied", at=3.0, reason="1 row(s) written")
    journal.settle_undo(undo, status="applied", at=4.0, reason="again")
    (record,) = journal.undo_records(opened)
    assert (record.status, record.reason, record.settled_at) == (
        "applied", "1 row(s) written", 3.0
    )
    events = [e.summary for e in journal.timeline(opened) if e.kind == "undo"]
    assert events[1:] == [f"undo record {undo} applied: 1 row(s) written"]
    with pytest.raises(ValueError, match=f"undo record {undo} is already 'applied'"):
        journal.settle_undo(undo, status="not_applied", at=5.0, reason="no")


def test_bad_input_names_what_was_expected(journal: Journal) -> None:
    opened = incident(journal)
    undo = intend(journal, opened)
    with pytest.raises(ValueError, match="expected one of applied, not_applied"):
        journal.settle_undo(undo, status="intended", at=3.0, reason="")
    with pytest.raises(KeyError, match="no undo record with id 99"):
        journal.settle_undo(99, status="applied", at=3.0, reason="")
    with pytest.raises(KeyError, match="no incident with id 42"):
        intend(journal, 42)
    assert [r.status for r in journal.undo_records(opened)] == ["intended"]


def test_records_come_back_oldest_first_per_incident(journal: Journal) -> None:
    first, second = incident(journal), journal.open_incident(
        key="provider/lastfm", severity=Severity.P2, scenario="provider_failure",
        subject="lastfm", state="executing", reason="test", at=1.0, findings=(),
    )
    ids = [intend(journal, first, at=2.0), intend(journal, second), intend(journal, first, 3.0)]
    assert [r.id for r in journal.undo_records(first)] == [ids[0], ids[2]]
    assert [r.id for r in journal.undo_records(second)] == [ids[1]]


def test_a_journal_from_before_undo_records_gains_the_table(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    open_journal(str(path)).close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE undo")
    reopened = open_journal(str(path))
    try:
        assert reopened.undo_records(incident(reopened)) == []
    finally:
        reopened.close()
