"""The down-migration chain: which files undo what, newest first, or why nothing may run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchdog.policy.migrations import (
    DownPlan,
    DownStep,
    Migration,
    Refusal,
    discover,
    matches,
    plan_down,
)

MAIN = "sql/migrations"
MEDALLION = "sql/migrations/medallion"

# The real stack's folders, in miniature: 001 twice in the main folder and again in
# medallion, 007 without a down file, helper files that are not migrations.
FILES = [
    (MAIN, "000_schema_migrations_up.sql"),
    (MAIN, "000_schema_migrations_down.sql"),
    (MAIN, "001_visualization_metadata_up.sql"),
    (MAIN, "001_visualization_metadata_down.sql"),
    (MAIN, "001_enhanced_observability.sql"),
    (MAIN, "007_enrichment_cooldown_queue_up.sql"),
    (MAIN, "008_enrichment_metadata_fields_up.sql"),
    (MAIN, "008_enrichment_metadata_fields_down.sql"),
    (MAIN, "README.md"),
    (MAIN, "add_unique_song_constraint.sql"),
    (MEDALLION, "001_bronze_layer_up.sql"),
    (MEDALLION, "001_bronze_layer_down.sql"),
    (MEDALLION, "002_silver_layer_up.sql"),
    (MEDALLION, "002_silver_layer_down.sql"),
    (MEDALLION, "003_gold_layer_up.sql"),
    (MEDALLION, "003_gold_layer_down.sql"),
    (MEDALLION, "quick_reference.sql"),
]


def plan(
    applied: list[tuple[str, float | None]],
    target: str | None = None,
    files: list[tuple[str, str]] | None = None,
) -> DownPlan:
    result = plan_down(FILES if files is None else files, applied, target)
    assert isinstance(result, DownPlan), result.reason
    return result


def refusal(
    applied: list[tuple[str, float | None]],
    target: str | None = None,
    files: list[tuple[str, str]] | None = None,
) -> Refusal:
    result = plan_down(FILES if files is None else files, applied, target)
    assert isinstance(result, Refusal), result.reason
    return result


# ---- discovery -------------------------------------------------------------------


def test_discovery_pairs_up_and_down_files_per_folder_and_stem() -> None:
    found = {(m.directory, m.stem): m for m in discover(FILES)}
    assert found[(MAIN, "008_enrichment_metadata_fields")].down == (
        "008_enrichment_metadata_fields_down.sql"
    )
    assert found[(MAIN, "007_enrichment_cooldown_queue")].down is None
    # a plain NNN_name.sql is an up file without a down
    plain = found[(MAIN, "001_enhanced_observability")]
    assert (plain.up, plain.down) == ("001_enhanced_observability.sql", None)
    assert found[(MEDALLION, "001_bronze_layer")].down_path == (
        "sql/migrations/medallion/001_bronze_layer_down.sql"
    )
    # README, unnumbered helpers: not migrations
    assert all(m.stem[0].isdigit() for m in found.values())
    assert len(found) == 8


def test_the_same_folder_written_twice_is_one_folder() -> None:
    files = [(MAIN, "008_x_up.sql"), ("./sql/migrations/", "008_x_down.sql")]
    (only,) = discover(files)
    assert (only.up, only.down) == ("008_x_up.sql", "008_x_down.sql")


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("001_bronze_layer", True),
        ("medallion/001_bronze_layer", True),
        ("sql/migrations/medallion/001_bronze_layer", True),
        ("/srv/songnodes/sql/migrations/medallion/001_bronze_layer", True),
        ("001_bronze_layer_up.sql", True),
        ("001_bronze_layer.sql", True),
        ("001", True),
        ("1", True),
        ("medallion/001", True),
        ("migrations/001_bronze_layer", False),
        ("gold/001_bronze_layer", False),
        ("002_bronze_layer", False),
        ("001_bronze", False),
    ],
)
def test_versions_name_a_migration_in_every_form_the_stack_writes(
    version: str, expected: bool
) -> None:
    bronze = Migration(MEDALLION, "001", "001_bronze_layer", "001_bronze_layer_up.sql")
    assert matches(version, bronze) is expected


# ---- the chain -------------------------------------------------------------------


def test_without_a_target_only_the_newest_applied_migration_is_undone() -> None:
    result = plan([("008_enrichment_metadata_fields", 100.0), ("medallion/001_bronze_layer", 50.0)])
    assert result.steps == (
        DownStep(
            "008_enrichment_metadata_fields",
            "sql/migrations/008_enrichment_metadata_fields_down.sql",
        ),
    )
    assert "newest applied migration, 008_enrichment_metadata_fields" in result.reason


def test_everything_applied_after_the_target_is_undone_newest_first_and_the_target_stays() -> None:
    applied: list[tuple[str, float | None]] = [
        ("000_schema_migrations", 1.0),
        ("medallion/001_bronze_layer", 10.0),
        ("008_enrichment_metadata_fields", 20.0),  # applied between medallion 001 and 002
        ("sql/migrations/medallion/002_silver_layer", 30.0),
        ("003", 40.0),  # only medallion has a 003
    ]
    result = plan(applied, target="medallion/001_bronze_layer")
    assert [step.version for step in result.steps] == [
        "003",
        "sql/migrations/medallion/002_silver_layer",
        "008_enrichment_metadata_fields",
    ]
    assert [step.path for step in result.steps] == [
        "sql/migrations/medallion/003_gold_layer_down.sql",
        "sql/migrations/medallion/002_silver_layer_down.sql",
        "sql/migrations/008_enrichment_metadata_fields_down.sql",
    ]
    assert result.reason == (
        "undo the 3 migration(s) applied after medallion/001_bronze_layer "
        "(medallion/001_bronze_layer stays), newest first: "
        "003_gold_layer (sql/migrations/medallion), 002_silver_layer (sql/migrations/medallion), "
        "008_enrichment_metadata_fields (sql/migrations)"
    )


def test_applied_at_decides_the_order_not_the_number_and_ties_fall_back_to_the_version() -> None:
    applied: list[tuple[str, float | None]] = [
        ("medallion/003_gold_layer", 5.0),
        ("medallion/002_silver_layer", 5.0),
        ("medallion/001_bronze_layer", 9.0),
        ("000_schema_migrations", 1.0),
    ]
    result = plan(applied, target="000_schema_migrations")
    assert [s.version for s in result.steps] == [
        "medallion/001_bronze_layer",
        "medallion/003_gold_layer",
        "medallion/002_silver_layer",
    ]


def test_applied_at_may_be_a_datetime() -> None:
    start = datetime(2025, 6, 1, tzinfo=UTC)
    result = plan_down(
        FILES,
        [
            ("medallion/001_bronze_layer", start),
            ("medallion/002_silver_layer", start + timedelta(1)),
        ],
        None,
    )
    assert isinstance(result, DownPlan)
    assert [s.version for s in result.steps] == ["medallion/002_silver_layer"]


def test_rows_without_applied_at_count_as_the_oldest() -> None:
    result = plan([("000_schema_migrations", None), ("medallion/001_bronze_layer", 3.0)])
    assert [s.version for s in result.steps] == ["medallion/001_bronze_layer"]


def test_a_target_may_be_written_in_another_form_than_the_table_has_it() -> None:
    applied: list[tuple[str, float | None]] = [
        ("medallion/001_bronze_layer", 1.0),
        ("medallion/002_silver_layer", 2.0),
    ]
    result = plan(applied, target="sql/migrations/medallion/001_bronze_layer")
    assert [s.version for s in result.steps] == ["medallion/002_silver_layer"]


def test_nothing_to_undo_is_a_plan_with_no_steps_and_says_so() -> None:
    assert plan([]).steps == ()
    assert "nothing to undo" in plan([]).reason
    newest = plan(
        [("008_enrichment_metadata_fields", 1.0)], target="008_enrichment_metadata_fields"
    )
    assert newest.steps == ()
    assert (
        newest.reason == "008_enrichment_metadata_fields is the newest applied migration: "
        "nothing to undo"
    )


def test_older_versions_without_a_file_do_not_block_a_rollback() -> None:
    result = plan(
        [("baseline", 1.0), ("008", 2.0), ("medallion/001_bronze_layer", 3.0)], target="008"
    )
    assert [s.version for s in result.steps] == ["medallion/001_bronze_layer"]


# ---- refusals --------------------------------------------------------------------


def test_a_migration_without_a_down_file_refuses_the_whole_chain_up_front() -> None:
    applied: list[tuple[str, float | None]] = [
        ("000_schema_migrations", 1.0),
        ("007_enrichment_cooldown_queue", 2.0),
        ("008_enrichment_metadata_fields", 3.0),  # has a down file, but comes first
        ("medallion/001_bronze_layer", 4.0),
    ]
    result = refusal(applied, target="000_schema_migrations")
    assert result.reason == (
        "cannot roll back past 007_enrichment_cooldown_queue (sql/migrations): it has no down file"
    )
    assert result.version == "007_enrichment_cooldown_queue"
    # the one above it would be fine alone
    assert plan(applied, target="007_enrichment_cooldown_queue").steps[-1].version == (
        "008_enrichment_metadata_fields"
    )


def test_every_migration_without_a_down_file_is_named() -> None:
    applied: list[tuple[str, float | None]] = [
        ("000_schema_migrations", 1.0),
        ("001_enhanced_observability", 2.0),
        ("007_enrichment_cooldown_queue", 3.0),
    ]
    result = refusal(applied, target="000_schema_migrations")
    assert result.reason == (
        "cannot roll back past 007_enrichment_cooldown_queue (sql/migrations): it has no down "
        "file; nor past 001_enhanced_observability (sql/migrations)"
    )


def test_a_number_that_several_files_carry_is_ambiguous() -> None:
    result = refusal([("001", 1.0)])
    assert result.version == "001"
    assert set(result.candidates) == {
        "001_visualization_metadata (sql/migrations)",
        "001_enhanced_observability (sql/migrations)",
        "001_bronze_layer (sql/migrations/medallion)",
    }
    assert "001 is ambiguous: it matches" in result.reason
    assert "refusing to guess" in result.reason


def test_the_same_stem_in_two_folders_is_ambiguous_without_its_folder() -> None:
    files = [
        (MAIN, "004_x_up.sql"),
        (MAIN, "004_x_down.sql"),
        (MEDALLION, "004_x_up.sql"),
        (MEDALLION, "004_x_down.sql"),
    ]
    assert set(refusal([("004_x", 1.0)], files=files).candidates) == {
        "004_x (sql/migrations)",
        "004_x (sql/migrations/medallion)",
    }
    assert plan([("medallion/004_x", 1.0)], files=files).steps == (
        DownStep("medallion/004_x", "sql/migrations/medallion/004_x_down.sql"),
    )


def test_a_version_with_no_file_is_refused_with_the_files_of_its_number() -> None:
    result = refusal([("008_enrichment_metadata", 1.0)])
    assert result.version == "008_enrichment_metadata"
    assert result.candidates == ("008_enrichment_metadata_fields (sql/migrations)",)
    assert result.reason == (
        "schema_migrations version 008_enrichment_metadata matches no migration file in "
        "sql/migrations, sql/migrations/medallion; files with that number: "
        "008_enrichment_metadata_fields (sql/migrations): refusing to guess what to undo"
    )
    assert "no migration files found" in refusal([("x", 1.0)], files=[]).reason


def test_two_versions_naming_one_migration_are_refused() -> None:
    result = refusal([("008", 1.0), ("008_enrichment_metadata_fields", 2.0), ("000", 0.5)], "000")
    assert "both name 008_enrichment_metadata_fields (sql/migrations)" in result.reason


def test_a_target_that_is_not_applied_is_refused() -> None:
    result = refusal([("008", 1.0)], target="medallion/002_silver_layer")
    assert result.reason == (
        "target version medallion/002_silver_layer is not among the applied migrations "
        "(applied: 008): refusing to guess how far to roll back"
    )
    assert "(applied: none)" in refusal([], target="008").reason


# ---- the chain, for any history ----------------------------------------------------


@given(
    st.lists(st.integers(0, 10**6), min_size=1, max_size=12, unique=True),
    st.data(),
)
def test_the_plan_is_every_row_newer_than_the_target_in_reverse_order(
    times: list[int], data: st.DataObject
) -> None:
    files = [
        (MAIN, f"{n:03d}_m{n}_{kind}.sql") for n in range(len(times)) for kind in ("up", "down")
    ]
    applied: list[tuple[str, float | None]] = [
        (f"{n:03d}_m{n}", float(at)) for n, at in enumerate(times)
    ]
    target = data.draw(st.sampled_from([v for v, _ in applied]))
    target_at = dict(applied)[target]
    assert target_at is not None
    result = plan(applied, target, files)
    newer = sorted(
        ((at, v) for v, at in applied if at is not None and at > target_at), reverse=True
    )
    assert [s.version for s in result.steps] == [v for _, v in newer]
    assert all(s.path.endswith(f"{s.version}_down.sql") for s in result.steps)
