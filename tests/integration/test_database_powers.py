"""The database steps cannot be steered outside what the policy declares (issue 13, point 3).

Down files run only from the policy's one migrations folder, `..` and symlinks
resolved; backups reach psql only without a psqlrc, with ON_ERROR_STOP, and after
a scan that refuses every psql meta-command.
"""

from __future__ import annotations

import gzip
import subprocess
from pathlib import Path

import pytest

from tests.integration.test_database_actions import (
    DIRS,
    THREE,
    actions,
    apply_ups,
    count,
    query,
    run,
    step,
    tables,
    write_migrations,
)
from tests.pgserver import PgServer
from watchdog.actions.base import ActionFailed
from watchdog.actions.pgtools import PgTarget, PgTools


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


# ---- backups reach psql only without meta-commands -------------------------------------

PAYLOADS = {
    "shell": "\\! touch {marker}",
    "output to a pipe": "\\o |touch {marker}\nSELECT 1;\n\\o",
    "shell after SQL on one line": "SELECT 1; \\! touch {marker}",
}


@pytest.mark.asyncio
@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
async def test_a_backup_holding_a_psql_meta_command_is_refused_naming_the_line(
    db: PgServer, tmp_path: Path, payload: str
) -> None:
    marker = tmp_path / "ran"
    evil = payload.format(marker=marker)
    psql = PgTools.locate(db.bin_dir).psql
    target = PgTarget.from_dsn(db.dsn)
    argv = [psql, "--no-psqlrc", "-q", "-v", "ON_ERROR_STOP=1", *target.args()]
    # The threat is real: the very psql invocation of a restore runs it. (Its exit code is
    # not the point: `\o |touch` may close the pipe before psql writes to it, exit 3.)
    subprocess.run(argv, input=f"SELECT 1;\n{evil}\n", text=True, env=target.env(), check=False)
    assert marker.exists()
    marker.unlink()

    database = actions(db)
    await database.backup(step("database.backup", backup_dir=str(tmp_path / "good")))
    good = next((tmp_path / "good").iterdir())
    text = gzip.decompress(good.read_bytes()).decode()
    cut = text.index("COPY public.tracks")
    line = text[:cut].count("\n") + 1
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / good.name).write_bytes(
        gzip.compress((text[:cut] + evil + "\n" + text[cut:]).encode())
    )
    run(db.dsn, "DELETE FROM enrichment_status")

    with pytest.raises(ActionFailed) as refused:
        await database.restore(step("database.restore", backup_dir=str(tmp_path / "bad")))

    command = "\\!" if "\\!" in evil.splitlines()[0] else "\\o"
    assert str(refused.value) == (
        f"newest backup {good.name} is refused before psql sees it: line {line} holds the "
        f"psql meta-command {command!r}: only psql runs it, and a backup may not run psql "
        "commands: refusing to restore it"
    )
    assert not marker.exists()
    assert count(db.dsn, "enrichment_status") == 0  # nothing restored either


@pytest.mark.asyncio
async def test_a_real_backup_with_copy_data_escapes_restores(
    db: PgServer, tmp_path: Path
) -> None:
    """Backslashes in COPY data (\\N, escapes) and pg_dump's \\restrict lines pass the scan."""
    run(db.dsn, "CREATE TABLE odd (t text)")
    run(db.dsn, "INSERT INTO odd VALUES (%s), (NULL), (%s)", "\\! not a command", "a\tb\\c")
    database = actions(db)
    await database.backup(step("database.backup", backup_dir=str(tmp_path)))
    text = gzip.decompress(next(tmp_path.iterdir()).read_bytes()).decode()
    assert "\\\\! not a command" in text and "\\N" in text
    run(db.dsn, "DROP TABLE odd")
    outcome = await database.restore(step("database.restore", backup_dir=str(tmp_path)))
    assert outcome.ok
    assert sorted(r[0] or "" for r in query(db.dsn, "SELECT t FROM odd")) == [
        "", "\\! not a command", "a\tb\\c"
    ]
    run(db.dsn, "DROP TABLE odd")
