"""`watchdog run` start-up mistakes end in one line and exit 2 (issue 16, point 5).

A busy port used to log "listening" and "daemon_started", then ~940 lines of asyncio
tracebacks and exit 3; a second daemon on the same SQLite journal used to start and
take over the first one's incidents. Both are refused before the daemon claims to
listen. A lock left by a SIGKILLed daemon never blocks its restart (the crash matrix).
The daemons here guard one closed loopback port (`tiny_policy`): no sandbox needed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_keys import tiny_policy
from watchdog.demo import DaemonProcess, free_port
from watchdog.store.sqlite_base import DaemonLock, JournalLocked

pytestmark = pytest.mark.slow


def run(tmp_path: Path, policy: Path, listen: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "WATCHDOG_LOG_FORMAT": "json",
           "WATCHDOG_STATE": str(tmp_path / "journal.db"), "WATCHDOG_LISTEN": listen}
    return subprocess.run(
        [sys.executable, "-m", "watchdog.cli", "run", "--policy", str(policy)],
        env=env, capture_output=True, text=True, timeout=30, check=False,
    )


def test_a_busy_port_is_one_line_before_claiming_to_listen(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run(tmp_path, tiny_policy(tmp_path), f"127.0.0.1:{port}")
    assert done.returncode == 2, done.stderr[-2000:]
    output = (done.stdout + done.stderr).splitlines()
    assert output == [f"watchdog run: cannot listen on 127.0.0.1:{port}: the address is "
                      "already in use (--listen / WATCHDOG_LISTEN)"], output


def test_a_second_daemon_on_the_same_journal_names_the_first_ones_pid(tmp_path: Path) -> None:
    policy = tiny_policy(tmp_path)
    first = DaemonProcess(None, tmp_path, policy=policy).start()
    try:
        second = run(tmp_path, policy, f"127.0.0.1:{free_port()}")
        pid = first._process.pid if first._process else 0
    finally:
        assert first.stop() == 0
    assert second.returncode == 2, second.stderr[-2000:]
    assert (second.stdout + second.stderr).splitlines() == [
        f"watchdog run: another watchdog (pid {pid}) is already running on the journal "
        f"{tmp_path / 'journal.db'}; stop it first, or give this one its own --state"
    ]


def test_a_lock_held_by_a_killed_process_does_not_block_the_restart(tmp_path: Path) -> None:
    journal = tmp_path / "journal.db"
    with subprocess.Popen(
        [sys.executable, "-c",
         "import sys, pathlib; from watchdog.store.sqlite_base import DaemonLock; "
         f"DaemonLock(pathlib.Path({str(journal)!r})).acquire(); print('held', flush=True); "
         "sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    ) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "held\n"
            with pytest.raises(JournalLocked, match=f"pid {holder.pid}"):
                DaemonLock(journal).acquire()
        finally:
            holder.send_signal(signal.SIGKILL)
            holder.wait()
    with DaemonLock(journal) as lock:  # the kernel let go of the dead one's lock
        assert lock.path.read_text() == f"{os.getpid()}\n"
