"""A second provider disable changes nothing, and an undo record left 'intended' is
settled from the live rows: the pure row arithmetic behind both."""

from __future__ import annotations

from typing import Any

import pytest

from watchdog.policy.configrows import assess_intent, disable_provider


def row(field: str, *providers: str, enabled: bool = True, by: str = "seed") -> dict[str, Any]:
    values: dict[str, Any] = {"metadata_field": field, "enabled": enabled, "updated_by": by}
    for n in range(1, 5):
        name = providers[n - 1] if n <= len(providers) else None
        values[f"priority_{n}_provider"] = name
        values[f"priority_{n}_confidence"] = 0.9 if name else None
    return values


TABLE = [
    row("bpm", "spotify", "musicbrainz"),
    row("isrc", "spotify"),
    row("genre", "lastfm"),
    row("key", "spotify", enabled=False, by="watchdog"),
]


@pytest.mark.parametrize("mode", ["runbook", "surgical"])
def test_a_second_disable_over_the_first_ones_result_changes_no_row(mode: Any) -> None:
    first = disable_provider(TABLE, "spotify", mode)
    assert first.before and len(first.before) == len(first.after)
    second = disable_provider(first.rows, "spotify", mode)
    assert (second.before, second.after) == ([], [])
    assert second.rows == first.rows
    assert "0 field(s) rerouted, 0 disabled" in second.summary


def test_a_row_the_disable_would_leave_as_it_is_gets_no_before_image() -> None:
    change = disable_provider(TABLE, "spotify", "runbook")
    assert [r["metadata_field"] for r in change.before] == ["bpm", "isrc"]
    assert "2 disabled [bpm, isrc]" in change.summary


def test_intent_is_applied_when_the_rows_hold_the_after_image() -> None:
    change = disable_provider(TABLE, "spotify", "surgical")
    outcome = assess_intent(change.rows, change.before, change.after)
    assert outcome.status == "applied"
    assert outcome.reason == "3 row(s) hold the change's after-image, so it was committed"


def test_intent_is_not_applied_when_every_row_holds_its_before_image() -> None:
    change = disable_provider(TABLE, "spotify", "surgical")
    outcome = assess_intent(TABLE, change.before, change.after)
    assert outcome.status == "not_applied"
    assert "all 3 row(s) still hold their before-image" in outcome.reason


def test_one_row_with_our_image_proves_the_commit_even_if_another_was_edited_since() -> None:
    change = disable_provider(TABLE, "spotify", "surgical")
    live = [dict(r) for r in change.rows]
    live[0]["priority_1_provider"] = "discogs"  # bpm edited by hand since
    outcome = assess_intent(live, change.before, change.after)
    assert outcome.status == "applied" and "1 other(s) changed since" in outcome.reason


def test_rows_edited_beyond_both_images_keep_the_record_as_applied() -> None:
    change = disable_provider(TABLE, "spotify", "surgical")
    live = [dict(r, updated_by="someone") for r in change.rows]
    outcome = assess_intent(live, change.before, change.after)
    assert outcome.status == "applied" and "hold neither image" in outcome.reason
