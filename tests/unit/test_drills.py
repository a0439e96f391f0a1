"""Drills without a daemon: refusing a live stack, the schedule from the policy, the checks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from watchdog.cli import main
from watchdog.drill.schedule import next_runs
from watchdog.policyfile import PolicyError, load_policy

GENERIC = Path(__file__).resolve().parents[2] / "policies" / "compose-generic.yaml"


def policy_file(folder: Path, drills: dict[str, Any], *, drill: bool | None = None) -> Path:
    data = yaml.safe_load(GENERIC.read_text())
    data["stack"] = {"name": "shop", "compose_project": "shop"}
    if drill is not None:
        data["stack"]["drill"] = drill
    data["drills"] = {"scenarios": drills}
    path = folder / "policy.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


KILL_WEB = {"fault": "kill", "service": "web", "timeout": "2m"}


@pytest.mark.parametrize("marked", [None, False])
def test_a_drill_on_a_live_project_is_refused_naming_the_setting_and_touching_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    marked: bool | None,
) -> None:
    path = policy_file(tmp_path, {"q1-service": KILL_WEB}, drill=marked)
    # No engine answers on this socket and no journal exists: a refusal must need neither.
    monkeypatch.setenv("WATCHDOG_ORCHESTRATOR", f"docker+unix://{tmp_path}/no-engine.sock")
    monkeypatch.setenv("WATCHDOG_STATE", str(tmp_path / "no-journal.db"))
    assert main(["drill", "q1-service", "--policy", str(path)]) == 2
    error = capsys.readouterr().err
    assert "refused" in error and "stack.drill: true" in error and "'shop' is live" in error
    assert not (tmp_path / "no-journal.db").exists()


def test_an_unknown_drill_is_bad_input_naming_the_ones_there_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = policy_file(tmp_path, {"q1-service": KILL_WEB}, drill=True)
    monkeypatch.setenv("WATCHDOG_ORCHESTRATOR", "sandbox+http://127.0.0.1:9")
    assert main(["drill", "q9", "--policy", str(path)]) == 2
    error = capsys.readouterr().err
    assert "no drill 'q9'" in error and "(it has: q1-service)" in error


def test_the_schedule_runs_each_quarterly_test_in_its_quarter_and_a_crontab_as_written(
    tmp_path: Path,
) -> None:
    drills = {
        "q1-service": {**KILL_WEB, "schedule": "Q1"},
        "q3-config": {"fault": "sandbox", "kind": "corrupt_config", "schedule": "Q3",
                      "day": 1, "at": "09:30"},
        "weekly": {**KILL_WEB, "schedule": "0 3 * * mon"},
        "staging": {**KILL_WEB, "schedule": "every 6h"},
        "by-hand": KILL_WEB,
    }
    policy = load_policy(policy_file(tmp_path, drills, drill=True))
    runs = next_runs(policy, datetime(2026, 12, 5, 6, 0, tzinfo=UTC), count=2)
    assert set(runs) == {"q1-service", "q3-config", "weekly", "staging"}  # by-hand: never
    assert [t.isoformat() for t in runs["staging"]] == [  # one interval after the start
        "2026-12-05T12:00:00+00:00", "2026-12-05T18:00:00+00:00"]
    assert [t.isoformat() for t in runs["q1-service"]] == [
        "2027-01-15T10:00:00+00:00", "2028-01-15T10:00:00+00:00"]
    assert [t.isoformat() for t in runs["q3-config"]] == [
        "2027-07-01T09:30:00+00:00", "2028-07-01T09:30:00+00:00"]
    assert [t.isoformat() for t in runs["weekly"]] == [
        "2026-12-07T03:00:00+00:00", "2026-12-14T03:00:00+00:00"]


@pytest.mark.parametrize(
    ("drill", "says"),
    [
        ({"fault": "kill"}, "fault kill needs service"),
        ({"fault": "wrong_image", "service": "web"}, "fault wrong_image needs image"),
        ({"fault": "unhealthy"}, "fault unhealthy needs service"),
        ({"fault": "corrupt_config", "table": "config"}, "needs table and column"),
        ({"fault": "corrupt_config", "table": "c; DROP TABLE x", "column": "a"}, "table"),
        ({"fault": "sandbox"}, "fault sandbox needs kind"),
        ({**KILL_WEB, "schedule": "Q5"}, "expected Q1..Q4, a five-field crontab line"),
        ({**KILL_WEB, "schedule": "every soon"}, "'every soon': a duration such as"),
        ({**KILL_WEB, "schedule": "every 500ms"}, "at least 1s between drills"),
        ({**KILL_WEB, "at": "25:00"}, "expected HH:MM"),
    ],
)
def test_a_drill_missing_what_its_fault_needs_is_a_policy_error(
    tmp_path: Path, drill: dict[str, Any], says: str
) -> None:
    with pytest.raises(PolicyError, match="drills") as error:
        load_policy(policy_file(tmp_path, {"broken": drill}, drill=True))
    assert says in str(error.value)


def test_a_crontab_line_apscheduler_cannot_read_is_named(tmp_path: Path) -> None:
    policy = load_policy(policy_file(tmp_path, {"bad": {**KILL_WEB, "schedule": "99 * * * *"}},
                                     drill=True))
    with pytest.raises(ValueError, match="drill schedule '99 \\* \\* \\* \\*'"):
        next_runs(policy, datetime(2026, 12, 5, tzinfo=UTC))


def test_a_scheduled_drill_is_run_by_the_leading_sidecar_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sidecars sharing a journal all schedule the policy's drills; when one is due, the
    followers skip it and the leader runs it: one fault injected, by the one that acts."""
    import asyncio
    from types import SimpleNamespace

    import httpx

    from watchdog.drill import scheduled
    from watchdog.metrics import Metrics
    from watchdog.settings import Settings
    from watchdog.store.journal import open_journal

    path = policy_file(tmp_path, {"q1-service": {**KILL_WEB, "schedule": "Q1"}}, drill=True)
    policy = load_policy(path)
    settings = Settings(orchestrator=f"docker+unix://{tmp_path}/no-engine.sock",
                        state=str(tmp_path / "journal.db"))
    ran: list[str] = []

    def drill_once(_policy: Any, name: str, *_: Any, **__: Any) -> tuple[Any, None]:
        ran.append(name)
        return SimpleNamespace(reason="passed"), None

    monkeypatch.setattr(scheduled, "drill_once", drill_once)
    journal = open_journal(settings.state)

    async def due(leading: bool) -> None:
        async with httpx.AsyncClient() as client:
            drills = scheduled.start_drills(policy, settings, journal, client, Metrics(),
                                            str(path), leading=lambda: leading)
            assert drills is not None
            try:
                job = drills.get_job("drill:q1-service")
                await job.func(*job.args)
            finally:
                drills.shutdown(wait=False)

    try:
        asyncio.run(due(leading=False))
        assert ran == []
        asyncio.run(due(leading=True))
        assert ran == ["q1-service"]
    finally:
        journal.close()


def test_a_drill_whose_fault_cannot_be_injected_fails_and_a_second_failure_pages_no_one_again(
    tmp_path: Path,
) -> None:
    """The staging engine is away when the drill is due: that is a failed drill (paged at
    the policy's severity), and failing again while a person holds it opens nothing new."""
    from watchdog.commands.drillcmd import drill_once
    from watchdog.drill.run import report
    from watchdog.metrics import Metrics
    from watchdog.policy.drillspecs import DrillSpec
    from watchdog.store.journal import open_journal

    policy = load_policy(policy_file(tmp_path, {"q1-service": KILL_WEB}, drill=True))

    def engine_away(_spec: DrillSpec) -> str:
        raise ConnectionError("Docker engine at unix:///run/staging.sock: connection refused")

    journal = open_journal(str(tmp_path / "journal.db"))
    metrics = Metrics.for_policy(policy)
    said: list[str] = []
    try:
        runs = [drill_once(policy, "q1-service", ("Compose project shop", engine_away), journal,
                           outbox=None, metrics=metrics, time_scale=1.0, progress=said.append)
                for _ in range(2)]
        (first, paged), (again, still) = runs
        assert not first.passed and first.state == "not injected"
        assert first.reason == ("the fault could not be injected: Docker engine at "
                                "unix:///run/staging.sock: connection refused")
        assert paged is not None and paged.new
        assert still is not None and not still.new and still.incident == paged.incident
        incident = journal.find_open("drill/q1-service")
        assert incident is not None and incident.id == paged.incident
        assert (incident.severity.value, incident.state) == ("P2", "escalated")
        drills = [e for e in journal.timeline(paged.incident) if e.kind == "drill"]
        assert len(drills) == 2
        assert "Escalated as incident" in report(first, paged)
        assert "Not paged again: still open as incident" in report(again, still)
        assert 'watchdog_drills_total{outcome="failed",scenario="q1-service"} 2.0' in (
            metrics.exposition().decode())
        assert any("not injected: Docker engine" in line for line in said)
    finally:
        journal.close()


def test_scheduled_drills_fire_on_their_interval_and_run_one_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two drills due together each follow 'the first incident after my fault': run at
    once they would claim each other's. The scheduler fires both (every 10 s of policy
    time, at a hundredfold clock) and they run one after the other."""
    import asyncio
    import threading
    import time
    from types import SimpleNamespace

    import httpx

    from watchdog.drill import scheduled
    from watchdog.metrics import Metrics
    from watchdog.settings import Settings
    from watchdog.store.journal import open_journal

    every = {**KILL_WEB, "schedule": "every 10s"}
    path = policy_file(tmp_path, {"a": every, "b": every}, drill=True)
    policy = load_policy(path)
    settings = Settings(orchestrator=f"docker+unix://{tmp_path}/no-engine.sock",
                        state=str(tmp_path / "journal.db"), time_scale=100)
    running: list[str] = []
    spans: list[tuple[str, str]] = []
    lock = threading.Lock()

    def drill_once(_policy: Any, name: str, *_: Any, **__: Any) -> tuple[Any, None]:
        with lock:
            running.append(name)
            spans.append(("start", name) if len(running) == 1 else ("overlap", name))
        time.sleep(0.05)
        with lock:
            running.remove(name)
        return SimpleNamespace(reason="passed"), None

    monkeypatch.setattr(scheduled, "drill_once", drill_once)
    journal = open_journal(settings.state)

    async def a_while() -> None:
        async with httpx.AsyncClient() as client:
            drills = scheduled.start_drills(policy, settings, journal, client, Metrics(),
                                            str(path))
            assert drills is not None
            try:
                for _ in range(100):  # until each ran twice, at most 5 s
                    if sum(1 for _k, n in spans if n == "b") >= 2 and len(spans) >= 4:
                        break
                    await asyncio.sleep(0.05)
            finally:
                drills.shutdown(wait=False)

    try:
        asyncio.run(a_while())
    finally:
        journal.close()
    assert {n for _k, n in spans} == {"a", "b"} and len(spans) >= 4, spans
    assert [k for k, _n in spans if k == "overlap"] == [], spans


def test_each_drills_latest_result_by_hand_or_scheduled_is_a_gauge_read_from_the_journal(
    tmp_path: Path,
) -> None:
    from watchdog.drill.run import DrillResult, record
    from watchdog.drill.scheduled import refresh_results
    from watchdog.metrics import Metrics
    from watchdog.store.journal import open_journal

    drills = {"q1-service": KILL_WEB, "q3-config": KILL_WEB, "never-run": KILL_WEB}
    policy = load_policy(policy_file(tmp_path, drills, drill=True))
    journal = open_journal(str(tmp_path / "journal.db"))
    metrics = Metrics.for_policy(policy)
    try:
        record(journal, DrillResult("q1-service", "sandbox", "kill", "killed web", 1000.0,
                                    None, True, True, True, 2.0, 9.0, "resolved"), at=1010.0)
        record(journal, DrillResult("q3-config", "sandbox", "kill", "killed web", 2000.0),
               at=2300.0)
        refresh_results(policy, journal, metrics)
    finally:
        journal.close()
    text = metrics.exposition().decode()
    assert 'watchdog_drill_last_passed{scenario="q1-service"} 1.0' in text
    assert 'watchdog_drill_last_passed{scenario="q3-config"} 0.0' in text
    assert 'watchdog_drill_last_run_timestamp_seconds{scenario="q1-service"} 1000.0' in text
    assert 'watchdog_drill_last_run_timestamp_seconds{scenario="q3-config"} 2000.0' in text
    assert 'scenario="never-run"} ' not in text.split("watchdog_drill_last_run")[1]


def test_scheduled_drills_can_be_turned_off_and_their_results_are_still_read(
    tmp_path: Path,
) -> None:
    """The demo and the suite's daemons run songnodes.yaml, whose four quarterly drills
    would otherwise fire into their own faults at 10:00 UTC on the 15th."""
    import asyncio

    import httpx

    from watchdog.drill import scheduled
    from watchdog.metrics import Metrics
    from watchdog.settings import Settings
    from watchdog.store.journal import open_journal

    path = policy_file(tmp_path, {"q1-service": {**KILL_WEB, "schedule": "Q1"}}, drill=True)
    policy = load_policy(path)
    jobs: dict[bool, list[str]] = {}
    journal = open_journal(str(tmp_path / "journal.db"))

    async def scheduled_ids(enabled: bool) -> None:
        settings = Settings(orchestrator="sandbox+http://127.0.0.1:9",
                            state=str(tmp_path / "journal.db"), scheduled_drills=enabled)
        async with httpx.AsyncClient() as client:
            drills = scheduled.start_drills(policy, settings, journal, client, Metrics(),
                                            str(path))
            assert drills is not None
            jobs[enabled] = sorted(job.id for job in drills.get_jobs())
            drills.shutdown(wait=False)

    try:
        for enabled in (True, False):
            asyncio.run(scheduled_ids(enabled))
    finally:
        journal.close()
    assert jobs == {True: ["drill-results", "drill:q1-service"], False: ["drill-results"]}
