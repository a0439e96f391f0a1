"""Running `psql` and `pg_dump` against the guarded database, safely.

Why a module of its own: the client tools are the one place a password could leak
onto a command line (visible to every user in `ps`) or into an error message. Here
the DSN is taken apart once: host, port, user and database become arguments, the
password travels only in the child's `PGPASSWORD`, and every word the tools print
is scrubbed before it reaches an exception. Children are started without a shell,
in a session of their own (a Ctrl-C meant for the daemon does not reach them), and
a child whose caller gives up (cancellation, a failed feed) is killed, never left
to finish on its own: for `psql` reading a restore, an end of input would mean
COMMIT.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import re
import shutil
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

from watchdog.actions.base import ActionFailed
from watchdog.postgres import scrub

#: DSN keys that libpq also reads from the environment: passed on that way.
_ENV_OF = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL",
    "sslnegotiation": "PGSSLNEGOTIATION",
    "requiressl": "PGREQUIRESSL",
    "gssencmode": "PGGSSENCMODE",
    "channel_binding": "PGCHANNELBINDING",
    "krbsrvname": "PGKRBSRVNAME",
    "service": "PGSERVICE",
    "passfile": "PGPASSFILE",
    "hostaddr": "PGHOSTADDR",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "load_balance_hosts": "PGLOADBALANCEHOSTS",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "application_name": "PGAPPNAME",
}
_KEEP_HEAD = 16_384
_KEEP_TAIL = 16_384


@dataclass(frozen=True, slots=True)
class PgTools:
    """Where `psql` and `pg_dump` are; `locate()` finds them."""

    psql: str
    pg_dump: str

    @classmethod
    def locate(cls, bin_dir: str | Path | None = None) -> PgTools:
        """The newest client tools: `bin_dir`, else Debian's highest /usr/lib/postgresql/N/bin,
        else PATH.

        pg_dump refuses a server newer than itself, so the highest installed version
        wins over whatever PATH holds first.
        """
        folders: list[Path] = []
        if bin_dir is not None:
            folders.append(Path(bin_dir))
        else:
            folders += sorted(
                (Path(f) for f in glob.glob("/usr/lib/postgresql/*/bin")),
                key=lambda f: tuple(int(n) for n in re.findall(r"\d+", f.parent.name)) or (0,),
                reverse=True,
            )
        for folder in folders:
            psql, pg_dump = folder / "psql", folder / "pg_dump"
            if os.access(psql, os.X_OK) and os.access(pg_dump, os.X_OK):
                return cls(str(psql), str(pg_dump))
        if bin_dir is None:
            psql_on_path, pg_dump_on_path = shutil.which("psql"), shutil.which("pg_dump")
            if psql_on_path and pg_dump_on_path:
                return cls(psql_on_path, pg_dump_on_path)
        where = str(bin_dir) if bin_dir is not None else "/usr/lib/postgresql/*/bin nor on PATH"
        raise ActionFailed(
            f"psql and pg_dump not found in {where}: install postgresql-client "
            "(the same major version as the server, or newer)"
        )


@dataclass(frozen=True, slots=True)
class PgTarget:
    """The database a DSN names, as client-tool arguments and environment."""

    dsn: str
    host: str | None
    port: str | None
    user: str | None
    dbname: str | None
    password: str | None
    options: str
    extra_env: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_dsn(cls, dsn: str) -> PgTarget:
        try:
            parts = conninfo_to_dict(dsn)
        except psycopg.Error as error:
            raise ActionFailed(
                f"the database DSN does not parse: {scrub(str(error), dsn)}"
            ) from None

        def text(key: str) -> str | None:
            value = parts.get(key)
            return None if value is None or value == "" else str(value)

        extra = {env: str(parts[key]) for key, env in _ENV_OF.items() if parts.get(key)}
        return cls(
            dsn=dsn,
            host=text("host"),
            port=text("port"),
            user=text("user"),
            dbname=text("dbname"),
            password=text("password"),
            options=text("options") or "",
            extra_env=extra,
        )

    def args(self) -> list[str]:
        """-h/-p/-U/-d plus --no-password: never a password prompt, never a password here."""
        args = ["--no-password"]
        if self.host:
            args += ["-h", self.host]
        if self.port:
            args += ["-p", self.port]
        if self.user:
            args += ["-U", self.user]
        if self.dbname and not _looks_like_conninfo(self.dbname):
            args += ["-d", self.dbname]
        return args

    def env(self, *, options: str = "") -> dict[str, str]:
        """The child's environment: ours, the DSN's extras, PGPASSWORD, PGOPTIONS."""
        env = dict(os.environ)
        env.update(self.extra_env)
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        if self.dbname and _looks_like_conninfo(self.dbname):
            # As -d, a name with '=' or a URI prefix would be parsed as a connection string.
            env["PGDATABASE"] = self.dbname
        combined = " ".join(part for part in (self.options, options) if part)
        if combined:
            env["PGOPTIONS"] = combined
        env.setdefault("PGAPPNAME", "watchdog")
        return env

    def scrub(self, text: str) -> str:
        return scrub(text, self.dsn)

    @property
    def where(self) -> str:
        return f"{self.host or 'localhost'}:{self.port or 5432}/{self.dbname or self.user or ''}"


@dataclass(frozen=True, slots=True)
class ToolResult:
    returncode: int
    stderr: str
    fed: int


async def run_tool(
    argv: list[str],
    env: Mapping[str, str],
    *,
    feed: AsyncGenerator[bytes, None] | None = None,
) -> ToolResult:
    """Run a client tool to its end, feeding it `feed` on stdin if given.

    stderr is collected while the child runs (a full pipe would stall it) and kept to
    its first and last 16 KB. stdout is discarded: psql prints the dump's SELECTs.
    Standard input is closed (an end of input) only after the whole feed went in; if
    the feed fails or the caller is cancelled, the child is killed instead.
    """
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if feed is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env),
            start_new_session=True,
        )
    except OSError as error:
        if feed is not None:
            await feed.aclose()
        raise ActionFailed(f"cannot run {argv[0]}: {error.strerror or error}") from None
    assert process.stderr is not None
    errors = asyncio.create_task(_collect(process.stderr))
    fed = 0
    finished = False
    try:
        if feed is not None:
            assert process.stdin is not None
            try:
                async for chunk in feed:
                    process.stdin.write(chunk)
                    await process.stdin.drain()
                    fed += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the child stopped reading: its exit status and stderr say why
            else:
                process.stdin.close()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    await process.stdin.wait_closed()
        returncode = await process.wait()
        stderr = await errors
        finished = True
        return ToolResult(returncode, stderr, fed)
    finally:
        if not finished:
            if process.returncode is None:
                process.kill()
                await asyncio.shield(process.wait())
            errors.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await errors
        if process.stdin is not None and not process.stdin.is_closing():
            process.stdin.close()
        if feed is not None:
            await feed.aclose()


async def _collect(stream: asyncio.StreamReader) -> str:
    head = bytearray()
    tail = bytearray()
    dropped = False
    while chunk := await stream.read(65_536):
        room = _KEEP_HEAD - len(head)
        if room > 0:
            head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            tail += chunk
            if len(tail) > _KEEP_TAIL:
                del tail[: len(tail) - _KEEP_TAIL]
                dropped = True
    gap = b"\n[...]\n" if dropped else b""
    return (bytes(head) + gap + bytes(tail)).decode("utf-8", errors="replace")


def summarize(stderr: str, limit: int = 800) -> str:
    """The lines that say what went wrong (ERROR, FATAL, error:), else the last ones."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    telling = [
        line for line in lines if re.search(r"\b(ERROR|FATAL|PANIC)\b|error:|DETAIL|HINT", line)
    ]
    text = " / ".join(telling or lines[-5:]) or "(no message)"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _looks_like_conninfo(dbname: str) -> bool:
    return "=" in dbname or dbname.startswith(("postgresql://", "postgres://"))
