"""Down migrations against the real database (`migrations.down`).

The pure `plan_down` works out which down files undo the database to a version
over the whole chain, so a migration without a down file or an ambiguous version
stops the rollback before the first file runs; then each down file runs in its own
transaction together with the removal of its schema_migrations row.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.errors import Diagnostic
from psycopg.pq import TransactionStatus

from watchdog.actions.base import ActionFailed, ActionOutcome
from watchdog.actions.database_base import DatabaseBase
from watchdog.actions.database_words import error_text, ms, optional_str
from watchdog.model import Step
from watchdog.policy.migrations import Refusal, plan_down

_SCRIPT_TXN = re.compile(
    r"^\s*(BEGIN(\s+(WORK|TRANSACTION))?|START\s+TRANSACTION|COMMIT(\s+(WORK|TRANSACTION))?)"
    r"\s*;\s*(--.*)?$",
    re.IGNORECASE,
)
_DOLLAR = re.compile(r"\$[A-Za-z_][A-Za-z_0-9]*\$|\$\$")


class MigrationActions(DatabaseBase):
    """`migrations.down`: down files newest first, each with its row in one transaction."""

    async def migrations_down(self, step: Step) -> ActionOutcome:
        """Apply down migrations newest first, each with its row removal in one transaction."""
        params = step.param_map()
        files = migration_files(params, self._migrations_dir)
        applied = await self._applied_migrations()
        result = plan_down(files, applied, optional_str(params.get("target_version")))
        if isinstance(result, Refusal):
            raise ActionFailed(f"{result.reason}; nothing was changed")
        if not result.steps:
            return ActionOutcome(True, result.reason, {"applied": []})
        base = base_dir_of(params)
        home = migrations_home(base, self._migrations_dir)
        scripts = [
            (version, path, label, _down_script(inside(home, resolve_in(base, path), "down file")))
            for (version, path), label in zip(result.steps, result.labels, strict=True)
        ]
        table = self._migrations_identifier()
        delete = sql.SQL("DELETE FROM {} WHERE version = %s").format(table)
        done: list[str] = []
        notices: list[str] = []
        for index, (version, path, label, script) in enumerate(scripts):
            try:
                async with self._connection(autocommit=True) as conn:
                    conn.add_notice_handler(_collect_notice(notices))
                    await conn.execute(
                        "SELECT set_config('lock_timeout', %s, false)",
                        (ms(self._lock_timeout),),
                    )
                    async with conn.transaction():
                        # First, under the session's own search_path: the file may change it.
                        await conn.execute(delete, (version,))
                        await conn.execute(script.encode())
                        if conn.info.transaction_status != TransactionStatus.INTRANS:
                            raise _EndedTransaction(
                                f"{path} ended the transaction itself (COMMIT or ROLLBACK "
                                "inside the file): what it did before is committed"
                            )
            except (psycopg.Error, _EndedTransaction, ActionFailed) as error:
                rest = [label for _, _, label, _ in scripts[index + 1 :]]
                before = f"applied before it: {', '.join(done)}" if done else "nothing was changed"
                raise ActionFailed(
                    f"down migration {label} ({path}) failed and was rolled back: "
                    f"{self._target.scrub(error_text(error))}; {before}"
                    + (f"; not attempted: {', '.join(rest)}" if rest else "")
                ) from None
            done.append(label)
        said = f"; notices: {' | '.join(notices)}" if notices else ""
        return ActionOutcome(
            True,
            f"applied {len(done)} down migration(s), newest first, each in its own transaction: "
            + ", ".join(path for _, path, _, _ in scripts)
            + said,
            {"applied": [path for _, path, _, _ in scripts], "versions": [v for v, *_ in scripts]},
        )


def migration_files(params: Mapping[str, Any], root: str | Path | None) -> list[tuple[str, str]]:
    """(folder, name) of every file in the step's `migration_dirs`, all inside `root`.

    `root` is the policy's one migrations folder (`stack.migrations_dir`). A folder
    or a file that resolves outside it (`..`, a symlink out) refuses the whole step
    before anything runs, naming the file and the folder: a down file is SQL run
    read-write, and the files on disk are not trusted the way the policy is.
    """
    raw = params.get("migration_dirs") or []
    folders = [raw] if isinstance(raw, str) else [str(d) for d in raw]
    if not folders:
        raise ActionFailed("migration_dirs names no folder")
    base = base_dir_of(params)
    home = migrations_home(base, root)
    files: list[tuple[str, str]] = []
    for folder in folders:
        real = inside(home, resolve_in(base, folder), "migration folder")
        try:
            names = sorted(entry.name for entry in os.scandir(real) if entry.is_file())
        except OSError as error:
            raise ActionFailed(
                f"migration folder {real} cannot be listed: {error.strerror}"
            ) from None
        for name in names:
            inside(home, real / name, "migration file")
        files += [(folder, name) for name in names]
    return files


def migrations_home(base: Path, root: str | Path | None) -> Path:
    """The declared migrations folder, resolved; ActionFailed if none is declared or there."""
    if root is None or str(root) == "":
        raise ActionFailed(
            "the policy declares no migrations folder (stack.migrations_dir): migration files "
            "run only from it; nothing was changed"
        )
    home = resolve_in(base, str(root)).resolve()
    if not home.is_dir():
        raise ActionFailed(
            f"the migrations folder {home} (stack.migrations_dir) is not a folder; "
            "nothing was changed"
        )
    return home


def inside(home: Path, path: Path, what: str) -> Path:
    """`path` with `..` and symlinks resolved, if that is inside `home`; else ActionFailed."""
    real = path.resolve()
    if not real.is_relative_to(home):
        raise ActionFailed(
            f"{what} {path} resolves to {real}, outside the migrations folder {home} "
            "(stack.migrations_dir): refusing to run anything from it; nothing was changed"
        )
    return real


def base_dir_of(params: Mapping[str, Any]) -> Path:
    base = params.get("base_dir")
    return Path(str(base)) if base else Path.cwd()


def resolve_in(base: Path, path: str) -> Path:
    candidate = Path(path)
    return candidate if candidate.is_absolute() else base / candidate


def _down_script(path: Path) -> str:
    """A down file ready to run inside our transaction, or ActionFailed before anything ran.

    Its own BEGIN/COMMIT lines (outside dollar-quoted bodies) are dropped: the
    transaction is ours, so that the file and its schema_migrations row go together.
    psql meta-commands cannot run through a driver and are refused.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ActionFailed(
            f"down file {path} cannot be read: {error}; nothing was changed"
        ) from None
    kept: list[str] = []
    quote: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if quote is None:
            if _SCRIPT_TXN.match(line):
                kept.append(f"-- (watchdog: {line.strip()} dropped, the transaction is ours)")
                continue
            if line.lstrip().startswith("\\"):
                raise ActionFailed(
                    f"down file {path}:{number} uses the psql meta-command "
                    f"{line.strip()[:30]!r}, which only psql can run; nothing was changed"
                )
        for tag in _DOLLAR.findall(line):
            if quote is None:
                quote = tag
            elif tag == quote:
                quote = None
        kept.append(line)
    return "\n".join(kept) + "\n"


class _EndedTransaction(Exception):
    pass


def _collect_notice(notices: list[str]) -> Callable[[Diagnostic], None]:
    def handler(diagnostic: Diagnostic) -> None:
        if diagnostic.message_primary:
            notices.append(diagnostic.message_primary)

    return handler
