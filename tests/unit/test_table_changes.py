"""Pure row arithmetic: how a table differs from a snapshot, and what an undo may write."""

from __future__ import annotations

import pytest

from watchdog.policy.configrows import disable_provider, undo_plan
from watchdog.policy.identifiers import is_table_name, split_table
from watchdog.policy.tablediff import diff_rows, key_column, render_diff

GOOD = [
    {"metadata_field": "bpm", "priority_1_provider": "spotify", "enabled": True},
    {"metadata_field": "genre", "priority_1_provider": "lastfm", "enabled": True},
    {"metadata_field": "isrc", "priority_1_provider": "spotify", "enabled": True},
]


def test_diff_names_rows_and_columns_old_to_new() -> None:
    live = [
        {"metadata_field": "bpm", "priority_1_provider": None, "enabled": True},
        {"metadata_field": "genre", "priority_1_provider": "lastfm", "enabled": True},
        {"metadata_field": "key", "priority_1_provider": "beatport", "enabled": True},
    ]
    differences = diff_rows(GOOD, live)
    assert [(d.key, d.kind) for d in differences] == [
        ("bpm", "changed"),
        ("isrc", "removed"),
        ("key", "added"),
    ]
    assert differences[0].columns == (("priority_1_provider", "spotify", None),)
    text = render_diff(differences, old="snapshot 3", new="the live table")
    assert "3 row(s) differ (snapshot 3 → the live table)" in text
    assert "priority_1_provider: spotify → NULL" in text
    assert "- isrc (removed in the live table)" in text
    same = render_diff([], old="snapshot 3", new="the live table")
    assert same.endswith("identical to snapshot 3")


def test_the_key_is_the_first_column_unique_in_both_versions() -> None:
    rows = [{"enabled": True, "name": "a"}, {"enabled": True, "name": "b"}]
    assert key_column(rows, rows) == "name"
    with pytest.raises(ValueError, match="--key"):
        key_column([{"enabled": True}, {"enabled": True}])


def test_undo_writes_before_images_except_rows_changed_since() -> None:
    change = disable_provider(GOOD, "spotify", "runbook")
    assert [r["metadata_field"] for r in change.after] == ["bpm", "isrc"]
    live = [dict(r) for r in change.rows]
    live[2]["updated_by"] = "oncall"  # isrc edited again after our change
    live[1]["priority_1_provider"] = "discogs"  # genre: not ours, edited: irrelevant
    plan = undo_plan(live, change.before, change.after)
    assert [r["metadata_field"] for r in plan.rows] == ["bpm"]
    assert plan.rows[0] == GOOD[0]
    assert plan.conflicts == ["isrc"] and plan.conflicts_before == [GOOD[2]]


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("metadata_enrichment_config", True),
        ("public.tracks", True),
        ("Tracks", False),
        ("tracks; DROP TABLE x", False),
        ('a"b', False),
        ("a.b.c", False),
        ("", False),
    ],
)
def test_table_names_are_plain_identifiers(name: str, ok: bool) -> None:
    assert is_table_name(name) is ok
    if ok:
        assert ".".join(split_table(name)) == name
    else:
        with pytest.raises(ValueError, match="plain SQL name"):
            split_table(name)
