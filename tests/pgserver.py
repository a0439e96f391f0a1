"""A real, throwaway PostgreSQL server for the tests.

Why not a mock: the configuration restore has to survive what only PostgreSQL
enforces (foreign keys that cascade, CHECK constraints, transactions, locks), and the
backup and migration paths call the real client tools. So the suite runs Debian's
server binaries on a data folder of its own under /tmp, listening on 127.0.0.1 at a
free port, tuned for speed (no fsync), and deletes everything at the end.

- As root (these machines), initdb and pg_ctl refuse to run, so they run as the
  `postgres` system user through `runuser`, on a folder chowned to it.
- The folder name is short on purpose: the unix socket lives in it and a socket path
  must stay under 108 bytes.
- Clients connect the way the real stack's services do: `musicdb_user` with a
  password (scram-sha-256) over TCP, owner of database `musicdb`. The superuser
  `postgres` connects through the unix socket with no password (`admin_dsn`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql

from tests import pg_schema

SYSTEM_USER = "postgres"
SUPERUSER = "postgres"
USER = "musicdb_user"
DATABASE = "musicdb"
HOST = "127.0.0.1"
MISSING = (
    "PostgreSQL server binaries not found: apt-get install postgresql "
    "(run `make test`, which provisions it)"
)
_BINARIES = ("initdb", "pg_ctl", "postgres")


def find_bin_dir() -> Path:
    """The folder holding initdb, pg_ctl and postgres: from PATH, else Debian's newest.

    Debian keeps the server binaries out of PATH (in /usr/lib/postgresql/N/bin), so the
    versioned folders are searched too, highest major version first.
    """
    on_path = shutil.which("initdb")
    candidates: list[Path] = []
    if on_path is not None:
        candidates.append(Path(os.path.realpath(on_path)).parent)
    versioned = glob.glob("/usr/lib/postgresql/*/bin")

    def version(folder: str) -> tuple[int, ...]:
        name = Path(folder).parent.name
        return tuple(int(part) for part in re.findall(r"\d+", name)) or (0,)

    candidates += [Path(folder) for folder in sorted(versioned, key=version, reverse=True)]
    for folder in candidates:
        if all(os.access(folder / name, os.X_OK) for name in _BINARIES):
            return folder
    raise RuntimeError(MISSING)


def free_port() -> int:
    """A port nothing listens on right now (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _ensure_system_user() -> pwd.struct_passwd:
    """The `postgres` account, created when a machine lacks it (a package normally does)."""
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home",
             "--shell", "/usr/sbin/nologin", SYSTEM_USER],
            check=True, capture_output=True,
        )
        return pwd.getpwnam(SYSTEM_USER)


class PgServer:
    """One postgres on its own data folder; `start()` makes the role and the database.

    Attributes after start: `host`, `port`, `password` (musicdb_user's, random),
    `dsn` (libpq URI for musicdb_user over TCP), `admin_dsn` (superuser over the
    socket), `bin_dir`, `folder`, `socket_dir`, `log_path`.
    """

    def __init__(self, folder: Path) -> None:
        self.bin_dir = find_bin_dir()
        self.folder = folder
        self.data = folder / "data"
        self.socket_dir = folder
        self.log_path = folder / "server.log"
        self.host = HOST
        self.port = free_port()
        self.password = secrets.token_hex(16)
        self.dsn = f"postgresql://{USER}:{self.password}@{HOST}:{self.port}/{DATABASE}"
        self.admin_dsn = self.admin_dsn_for(DATABASE)
        self._as_root = os.geteuid() == 0
        self._running = False

    def admin_dsn_for(self, dbname: str) -> str:
        """The superuser's conninfo for one database, through the unix socket."""
        return f"host={self.socket_dir} port={self.port} user={SUPERUSER} dbname={dbname}"

    # ------------------------------------------------------------ processes

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a server binary, as the postgres user when we are root."""
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self._as_root:
            command = ["runuser", "-u", SYSTEM_USER, "--", *command]
        return subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False,
            cwd=self.folder, stdin=subprocess.DEVNULL,
        )

    def _log_tail(self, size: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError as exc:
            return f"(no server log: {exc})"

    def _init_cluster(self) -> None:
        if self._as_root:
            account = _ensure_system_user()
            os.chown(self.folder, account.pw_uid, account.pw_gid)
        self.folder.chmod(0o700)
        done = self._run(
            "initdb", "-D", str(self.data), "-U", SUPERUSER, "-E", "UTF8", "--locale=C",
            "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync",
            "--no-instructions",
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        # Appending and truncating keep the files' owner (postgres), even as root.
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# tests/pgserver.py: loopback only, its own socket folder, no durability\n"
                f"listen_addresses = '{HOST}'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                "fsync = off\n"
                "synchronous_commit = off\n"
                "full_page_writes = off\n"
                "password_encryption = 'scram-sha-256'\n"
            )
        (self.data / "pg_hba.conf").write_text(
            "# tests/pgserver.py: the superuser through the socket, everyone else by password\n"
            "local all all trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
        )

    def start(self) -> PgServer:
        """initdb, start, then create musicdb_user and musicdb; errors carry the log tail."""
        try:
            self._init_cluster()
            # Running from here on for stop(): pg_ctl may give up waiting on a live server.
            self._running = True
            done = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log_path),
                             "-w", "-t", "30", "start")
            if done.returncode != 0:
                said = " ".join(f"{done.stdout} {done.stderr}".split())
                raise RuntimeError(f"postgres did not start (pg_ctl: {said}); its log ends:\n"
                                   f"{self._log_tail()}")
            self._create_database()
        except BaseException:
            self.stop()
            raise
        return self

    def _create_database(self) -> None:
        # Utility statements take no bind parameters, hence Literal for the password.
        with psycopg.connect(self.admin_dsn_for("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(USER), sql.Literal(self.password)))
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(DATABASE), sql.Identifier(USER)))

    def stop(self) -> None:
        """Fast shutdown (open sessions are disconnected); idempotent, and quiet when the
        server never came up, so a failed start reports its own error."""
        if not self._running:
            return
        self._running = False
        done = self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30",
                         "stop")
        # No postmaster.pid means no server (it never came up): nothing left to stop.
        if done.returncode != 0 and (self.data / "postmaster.pid").exists():
            raise RuntimeError(f"pg_ctl stop failed: {done.stdout}{done.stderr}")

    @property
    def running(self) -> bool:
        return self._running

    def start_again(self) -> None:
        """Start a server that stop() stopped, on the same data folder and port: a
        database restart under its clients (tests/integration/ha_stage.py)."""
        if self._running:
            return
        self._running = True
        done = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log_path),
                         "-w", "-t", "30", "start")
        if done.returncode != 0:
            raise RuntimeError(f"postgres did not start again: {done.stdout}{done.stderr}\n"
                               f"{self._log_tail()}")

    # ------------------------------------------------------------ test helpers

    def reset_musicdb(self, extra_config_rows: int = 0) -> None:
        """Schema public of musicdb as tests/pg_schema.py seeds it, as musicdb_user."""
        pg_schema.load(self.dsn, extra_config_rows)

    def __enter__(self) -> PgServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def postgres_server() -> Iterator[PgServer]:
    """A started server with an empty musicdb; stopped and its folder deleted at the end."""
    folder = Path(tempfile.mkdtemp(prefix="wdpg", dir="/tmp"))
    try:
        with PgServer(folder) as server:
            yield server
    finally:
        shutil.rmtree(folder, ignore_errors=True)

