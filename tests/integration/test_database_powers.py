"""The database steps cannot be steered outside what the policy declares (issue 13, point 3).

Down files run only from the policy's one migrations folder, `..` and symlinks
resolved; backups reach psql only without a psqlrc, with ON_ERROR_STOP, and after
a scan that refuses every psql meta-command.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_database_actions import (
    DIRS,
    THREE,
    actions,
    apply_ups,
    count,
    step,
    tables,
    write_migrations,
)
from tests.pgserver import PgServer
from watchdog.actions.base import ActionFailed


@pytest.fixture
def db(musicdb: PgServer) -> PgServer:
    return musicdb


@pytest.mark.asyncio
async def test_a_folder_outside_the_migrations_folder_is_refused_before_anything_runs(
    db: PgServer, tmp_path: Path
) -> None:
    write_migrations(tmp_path)
    apply_ups(db.dsn, tmp_path, THREE)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "009_evil_up.sql").write_text("SELECT 1;\n")
    (elsewhere / "009_evil_down.sql").write_text("DROP TABLE tracks CASCADE;\n")

    for folder in ("elsewhere", "sql/migrations/../../elsewhere", str(elsewhere)):
        with pytest.raises(ActionFailed) as refused:
            await actions(db).migrations_down(
                step("migrations.down", migration_dirs=[folder], base_dir=str(tmp_path))
            )
        message = str(refused.value)
        assert message.startswith(f"migration folder {tmp_path / folder}")
        assert f"resolves to {elsewhere}, outside the migrations folder " in message
        assert str((tmp_path / "sql/migrations").resolve()) in message
    assert "tracks" in tables(db.dsn)
    assert count(db.dsn, "down_log") == 0


@pytest.mark.asyncio
async def test_a_symlinked_down_file_leading_out_of_the_folder_is_refused(
    db: PgServer, tmp_path: Path
) -> None:
    write_migrations(tmp_path)
    apply_ups(db.dsn, tmp_path, THREE)
    outside = tmp_path / "outside.sql"
    outside.write_text("DROP TABLE tracks CASCADE;\n")
    down = tmp_path / "sql/migrations/medallion/002_silver_layer_down.sql"
    down.unlink()
    down.symlink_to(outside)

    with pytest.raises(ActionFailed) as refused:
        await actions(db).migrations_down(
            step("migrations.down", migration_dirs=DIRS, base_dir=str(tmp_path))
        )
    message = str(refused.value)
    assert f"migration file {down} resolves to {outside}, outside the migrations folder" in message
    assert "nothing was changed" in message
    assert {"tracks", "silver"} <= tables(db.dsn)


@pytest.mark.asyncio
async def test_a_symlink_staying_inside_the_folder_is_followed(
    db: PgServer, tmp_path: Path
) -> None:
    write_migrations(tmp_path)
    apply_ups(db.dsn, tmp_path, THREE)
    down = tmp_path / "sql/migrations/medallion/002_silver_layer_down.sql"
    kept = tmp_path / "sql/migrations/kept_silver.sql.txt"
    down.rename(kept)
    down.symlink_to(kept)
    outcome = await actions(db).migrations_down(
        step("migrations.down", migration_dirs=DIRS, base_dir=str(tmp_path))
    )
    assert outcome.data["versions"] == ["sql/migrations/medallion/002_silver_layer"]
    assert "silver" not in tables(db.dsn)


@pytest.mark.asyncio
async def test_without_a_declared_migrations_folder_no_down_file_runs(
    db: PgServer, tmp_path: Path
) -> None:
    write_migrations(tmp_path)
    apply_ups(db.dsn, tmp_path, THREE)
    with pytest.raises(ActionFailed) as refused:
        await actions(db, migrations_dir=None).migrations_down(
            step("migrations.down", migration_dirs=DIRS, base_dir=str(tmp_path))
        )
    assert str(refused.value) == (
        "the policy declares no migrations folder (stack.migrations_dir): migration files run "
        "only from it; nothing was changed"
    )
    assert "silver" in tables(db.dsn)
