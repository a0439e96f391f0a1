"""What is PostgreSQL's own in the journal: versions, the masked password, one daemon per stack.

The store contract itself runs over PostgreSQL in test_journal.py and the other
*_journal.py files (conftest's `BACKENDS`); here is what SQLite has no counterpart
for, and one daemon end to end on a PostgreSQL journal.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
from psycopg import sql

from tests.integration.daemon_stage import staged_daemon
from watchdog.demo import POLICY, DaemonProcess, free_port, wait_for
from watchdog.engine.alerts import AlertIntake
from watchdog.model import Alert, Severity
from watchdog.policyfile import load_policy
from watchdog.store.journal import open_journal
from watchdog.store.pg_base import Fenced, JournalUnavailable
from watchdog.store.pg_lease import Lease, Term
from watchdog.store.schema import SCHEMA_VERSION


@pytest.fixture
def pg_url(journal_database: str) -> Iterator[str]:
    """A journal URL naming a fresh schema, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    yield f"{journal_database}?schema={schema}"
    with psycopg.connect(journal_database, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def schema_of(url: str) -> str:
    return urlsplit(url).query.removeprefix("schema=")


def masked_form(url: str) -> str:
    parts = urlsplit(url)
    return f"postgresql://{parts.username}:***@{parts.hostname}:{parts.port}{parts.path}"


def test_versions_are_recorded_and_a_newer_journal_is_refused_without_the_password(
    pg_url: str, journal_database: str
) -> None:
    open_journal(pg_url).close()
    open_journal(pg_url).close()  # a second open applies nothing again
    schema = schema_of(pg_url)
    with psycopg.connect(journal_database, autocommit=True) as conn:
        table = sql.Identifier(schema, "schema_versions")
        versions = conn.execute(sql.SQL("SELECT version FROM {} ORDER BY 1").format(table))
        assert [v for (v,) in versions.fetchall()] == list(range(1, SCHEMA_VERSION + 1))
        conn.execute(sql.SQL("INSERT INTO {} (version) VALUES (99)").format(table))
    with pytest.raises(RuntimeError) as caught:
        open_journal(pg_url)
    message = str(caught.value)
    assert message == (
        f"journal {masked_form(pg_url)}?schema={schema} (schema {schema}) has schema version "
        f"99, newer than the {SCHEMA_VERSION} this watchdog understands; upgrade watchdog"
    )
    assert str(urlsplit(pg_url).password) not in message


def test_a_refused_connection_names_the_url_with_its_password_masked(pg_url: str) -> None:
    wrong = pg_url.replace(f":{urlsplit(pg_url).password}@", ":not-the-password-4711@")
    with pytest.raises(RuntimeError, match="cannot open the journal") as caught:
        open_journal(wrong)
    assert masked_form(pg_url) in str(caught.value)
    assert "not-the-password-4711" not in str(caught.value)
    with pytest.raises(ValueError, match="not a plain lower-case name"):
        open_journal(pg_url.split("?", maxsplit=1)[0] + "?schema=Bad-Name")


def expire(url: str, stack: str) -> None:
    """What a kill -9 or a SIGSTOP leaves behind, without waiting: the lease runs out."""
    with psycopg.connect(url.split("?", maxsplit=1)[0], autocommit=True) as conn:
        conn.execute(
            sql.SQL("UPDATE {}.leadership SET expires_at = 0 WHERE stack = %s").format(
                sql.Identifier(schema_of(url))), (stack,))


def test_one_leader_per_stack_and_a_stale_leader_s_writes_are_refused(pg_url: str) -> None:
    open_journal(pg_url).close()  # the schema, its lease tables and fence
    first, second = Lease(pg_url, "songnodes", "wd-a"), Lease(pg_url, "songnodes", "wd-b")
    other = Lease(pg_url, "other-stack", "wd-c")
    try:
        term = first.claim()
        assert (term.leading, term.token, term.began, term.clean) == (True, 1, True, True)
        assert first.claim() == Term(True, 1, "wd-a", term.since)  # renewed: same term
        assert second.claim() == Term(False, 1, "wd-a", term.since)  # follows
        first.refuse_other_stacks()
        with pytest.raises(ValueError, match=r"holds stack 'songnodes'; stack 'other-stack' "
                           r"needs a \?schema= of its own"):
            other.refuse_other_stacks()  # a schema's incidents carry no stack
        leader = open_journal(pg_url, fence=("songnodes", 1))
        kept = leader.open_incident(
            key="k/1", severity=Severity.P2, scenario="s", subject="a", state="detected",
            reason="before the take-over", at=1.0, findings=())
        expire(pg_url, "songnodes")  # the leader froze past its lease
        taken = second.claim()
        assert (taken.leading, taken.token, taken.began) == (True, 2, True)
        assert (taken.clean, taken.previous) == (False, "wd-a")
        with pytest.raises(Fenced, match=r"^fenced: a write for stack songnodes at token 1 is "
                           r"refused: wd-b leads it at token 2$"):
            leader.open_incident(
                key="k/2", severity=Severity.P2, scenario="s", subject="b", state="detected",
                reason="after the take-over", at=2.0, findings=())
        assert leader.fenced is not None and leader.fenced.startswith("fenced:")
        assert not first.claim().leading  # and it knows it at its next claim
        reader = open_journal(pg_url)
        assert [i.key for i in reader.list_incidents(limit=5)] == ["k/1"]
        reader.close()
        with psycopg.connect(pg_url.split("?", maxsplit=1)[0], autocommit=True) as conn:
            stamped = conn.execute(sql.SQL(
                "SELECT DISTINCT fence_token FROM {}.events WHERE incident_id = %s").format(
                    sql.Identifier(schema_of(pg_url))), (kept,)).fetchall()
            log = conn.execute(sql.SQL(
                "SELECT token, instance, previous_instance, clean FROM {}.leadership_log"
                " WHERE stack = 'songnodes' ORDER BY id").format(
                    sql.Identifier(schema_of(pg_url)))).fetchall()
        assert stamped == [(1,)]
        second.release()  # a clean stop hands over
        again = first.claim()
        assert (again.token, again.clean, again.previous) == (3, True, "wd-b")
        assert log == [(1, "wd-a", None, True), (2, "wd-b", "wd-a", False)]
        leader.close()
    finally:
        for lease in (first, second, other):
            lease.close()


@pytest.mark.slow
def test_the_daemon_on_a_pg_journal_handles_a_crash_and_a_second_one_follows(
    tmp_path: Path, pg_url: str
) -> None:
    with staged_daemon(tmp_path, state=pg_url) as stage:
        assert httpx.get(stage.url + "/healthz").json()["role"] == "leader"
        incident = stage.inject_and_follow("crash", service="dlq-manager")
        assert incident["state"] == "resolved", incident["timeline"]
        assert [(s["name"], s["status"]) for s in incident["steps"]] == [
            ("restart the failed service", "succeeded")
        ]
        (tmp_path / "second").mkdir()
        second = DaemonProcess(stage.stack, tmp_path / "second", environment={
            "WATCHDOG_STATE": pg_url, "WATCHDOG_INSTANCE": "second"}).start()
        try:
            wait_for(lambda: httpx.get(second.url + "/healthz").json()["leader"], 10,
                     "the second daemon to see who leads")
            seen = httpx.get(second.url + "/healthz").json()
            assert (seen["role"], seen["token"], seen["instance"]) == ("follower", None, "second")
            leader = httpx.get(stage.url + "/healthz").json()
            assert seen["leader"] == leader["instance"] and leader["token"] == 1
            metrics = httpx.get(second.url + "/metrics").text
            assert "\nwatchdog_leader 0.0\n" in metrics
            page = httpx.get(second.url + "/ui/",
                             headers={"Authorization": f"Bearer {second.read_token}"})
            assert page.status_code == 200, page.text[:500]
            assert f"leader: {leader['instance']} at token 1" in page.text  # from either one
        finally:
            second.stop()
        env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "WATCHDOG_STATE": pg_url,
               "WATCHDOG_LISTEN": f"127.0.0.1:{free_port()}", "WATCHDOG_LOG_FORMAT": "json"}
        logged = (tmp_path / "second" / "daemon.log").read_text()
        assert str(urlsplit(pg_url).password) not in logged
    assert not (tmp_path / "journal.db").exists()  # the whole journal is in PostgreSQL
    listed = subprocess.run(
        [sys.executable, "-m", "watchdog.cli", "incidents", "--state", pg_url],
        env=env, capture_output=True, text=True, timeout=30, check=False,
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    [row] = [line.split() for line in listed.stdout.splitlines() if line.startswith(
        f"{incident['id']} ")]
    assert row[1:5] == ["P2", "service_failure", "dlq-manager", "resolved"]
    journal = open_journal(pg_url)
    try:
        stored = journal.incident(incident["id"])
        assert (stored.state, stored.key) == ("resolved", "service_failure/dlq-manager")
        assert [s.status for s in journal.steps(incident["id"])] == ["succeeded"]
    finally:
        journal.close()


def test_a_leader_frozen_inside_a_write_cannot_keep_the_journal_from_a_take_over(
    pg_url: str,
) -> None:
    """SIGSTOP between two statements of a write holds the journal's write lock, which a
    take-over must wait for: a second, then it ends that session (the server would end the
    idle transaction after 3 s) and the lock with it."""
    first, second = Lease(pg_url, "songnodes", "wd-a"), Lease(pg_url, "songnodes", "wd-b")
    leader = open_journal(pg_url, fence=("songnodes", 1))
    try:
        assert first.claim().token == 1
        frozen = leader._pg  # type: ignore[attr-defined]  # what a frozen leader left open
        frozen.execute("BEGIN")
        frozen.execute("SELECT pg_advisory_xact_lock(%s)", (leader._write_key,))  # type: ignore[attr-defined]
        expire(pg_url, "songnodes")
        taken = second.claim()  # waits for the lock, then ends the frozen session
        assert (taken.leading, taken.token, taken.clean) == (True, 2, False)
        def write() -> int:
            return leader.open_incident(
                key="k/late", severity=Severity.P2, scenario="s", subject="late",
                state="detected", reason="woken", at=3.0, findings=())

        with pytest.raises(psycopg.errors.AdminShutdown):
            write()  # the take-over ended its session; the handle connects again ...

        def refused() -> bool:
            try:
                write()
            except JournalUnavailable:  # ... in the background, failing at once meanwhile
                return False
            except Fenced as error:  # ... and, connected, its write is refused
                return "wd-b leads it at token 2" in str(error)
            return False

        wait_for(refused, 10, "the woken leader's write refused as fenced")
    finally:
        leader.close()
        first.close()
        second.close()


def test_a_leader_frozen_mid_pipeline_is_ended_by_the_take_over(pg_url: str) -> None:
    """A write sent as a pipeline (psycopg's executemany) and frozen before its Sync leaves
    its session 'active', reading the rest: neither idle_in_transaction_session_timeout nor
    statement_timeout ends it, and it holds the journal's write lock for as long as the
    process stays frozen (a CI run saw a follower wait 50 s). The take-over waits a
    second for the lock, then ends the session that has held it longer than that."""
    open_journal(pg_url).close()
    first, second = Lease(pg_url, "songnodes", "wd-a"), Lease(pg_url, "songnodes", "wd-b")
    dsn = pg_url.split("?", maxsplit=1)[0]
    frozen = psycopg.connect(dsn, autocommit=True)
    try:
        assert first.claim().token == 1
        pipeline = frozen.pgconn
        pipeline.enter_pipeline_mode()
        pipeline.send_query_params(b"BEGIN", None)
        pipeline.send_query_params(b"SELECT pg_advisory_xact_lock($1::bigint)",
                                   [str(first._write_key).encode()])
        pipeline.flush()  # ... and no Sync: the process froze here
        session = pipeline.backend_pid

        def state() -> str | None:
            with psycopg.connect(dsn, autocommit=True) as conn:
                row = conn.execute("SELECT state FROM pg_stat_activity WHERE pid = %s",
                                   (session,)).fetchone()
            return None if row is None else str(row[0])

        wait_for(lambda: state() == "active", 5, "the pipeline's session holding the lock")
        expire(pg_url, "songnodes")
        taken = second.claim()
        assert (taken.leading, taken.token, taken.clean) == (True, 2, False)
        assert state() is None  # the frozen session was ended, and its lock with it
    finally:
        frozen.close()
        first.close()
        second.close()


def test_an_alert_a_follower_takes_in_is_seen_by_the_leader(pg_url: str) -> None:
    """Alertmanager may send to any sidecar: the leader reads the shared journal's firings."""
    policy = load_policy(POLICY)
    follower_side, leader_side = open_journal(pg_url), open_journal(pg_url)
    try:
        follower = AlertIntake(policy, follower_side, lambda: 50.0)
        leader = AlertIntake(policy, leader_side, lambda: 50.0)
        breach = Alert(fingerprint="f1", status="firing", starts_at=40.0, ends_at=None,
                       labels=(("alertname", "Intrusion"), ("category", "security")))
        asyncio.run(follower.receive([breach], group_key="g", receiver="wd", truncated=0))
        assert leader.active == []  # what the leader's intake held when it started
        leader.reload()
        assert leader.active == [breach]
        [seen] = [o for o in leader.observations(50.0) if o.signal == "security_alert"]
        assert (seen.series, seen.value) == ("Intrusion", 1.0)
    finally:
        follower_side.close()
        leader_side.close()


def test_sidecars_opening_a_new_journal_together_all_open_it(pg_url: str) -> None:
    """Two or more sidecars started together create the schema, tables and fence once."""
    gate = threading.Barrier(4)

    def opened(_: int) -> str:
        gate.wait()
        journal = open_journal(pg_url)
        journal.close()
        return "ok"

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(opened, range(4))) == ["ok"] * 4
