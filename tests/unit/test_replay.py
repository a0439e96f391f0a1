"""Replay: a recorded songnodes history through a stricter and an identical policy.

The history is recorded the daemon's way (`Recorder`: changes and one sample per
interval, one write per tick) into an in-process SQLite journal; `replay` then reads
it and runs both policies in the pure core. Cheap: 20 minutes of history, no daemon.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.replayhistory import Fault, history, stricter
from tests.unit.helpers import SONGNODES, songnodes
from watchdog.commands.replaycmd import ReplayInput, replay
from watchdog.engine.recording import TIME_SCALE_FLAG, Recorder
from watchdog.store.journal import open_journal

T0 = 1_800_000_000.0
FAULTS = (
    Fault("dlq_depth", 6000.0, T0 + 300, 120),  # P1 dlq-overflow; P2 dlq-filling joins it
    Fault("dlq_manager_health", 0.0, T0 + 700, 90),  # P2 dlq-manager-down after 20 s
)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 minutes of songnodes with two faults, recorded as the daemon records."""
    path = tmp_path_factory.mktemp("replay") / "journal.db"
    policy = songnodes()
    journal = open_journal(str(path))
    recorder = Recorder(journal, {s.name: s.interval for s in policy.signals})
    recorder.start(policy, T0)
    tick = T0 + 1
    for observation in history(policy, T0, 1200, FAULTS):
        while observation.at > tick:
            recorder.flush(tick)
            tick += 1
        recorder.add([observation])
    recorder.flush(tick)
    assert 0 < recorder.kept < recorder.seen  # unchanged health readings were thinned
    journal.close()
    return path


def test_a_stricter_policy_opens_fewer_incidents_and_the_diff_says_so(
    recorded: Path, tmp_path: Path
) -> None:
    strict = tmp_path / "strict.yaml"
    strict.write_text(stricter(SONGNODES.read_text()))
    diff, header = replay(str(recorded), str(strict))
    assert "baseline: the policy as the journal's daemon last ran it" in header
    old = {(i.key, i.severity.value) for i in diff.baseline.incidents}
    new = {(i.key, i.severity.value) for i in diff.new.incidents}
    assert old == {("dlq", "P1"), ("service_failure/dlq-manager", "P2")}
    assert new == {("dlq", "P2")}  # DLQ growth alone, below the stricter overflow
    text = diff.text()
    assert "service_failure/dlq-manager (from" in text
    assert "not opened under the new policy (baseline: P2 new_service_failure" in text
    assert "dlq (from" in text and "  severity: P1 → P2\n" in text
    assert text.startswith("where the policies decide differently (baseline → new):")
    assert diff.summary() == (
        "2 incident(s) under the baseline, 1 under the new policy: 1 not opened under the "
        "new policy, 1 decided differently; 0 the same"
    )


def test_an_identical_policy_reports_no_difference(recorded: Path) -> None:
    diff, _ = replay(str(recorded), str(SONGNODES), baseline_file=str(SONGNODES),
                     since=str(T0 + 250), until=str(T0 + 1200))
    assert len(diff.baseline.incidents) == 2
    assert diff.text() == "2 incident(s) under the baseline, 2 under the new policy: " \
        "no difference"


def test_retention_prunes_and_errors_name_the_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    journal = open_journal(str(path))
    try:
        with pytest.raises(ReplayInput, match="no daemon that records observations"):
            replay(str(path), str(SONGNODES))
        policy = songnodes()
        recorder = Recorder(journal, {s.name: s.interval for s in policy.signals},
                            retention_seconds=600)
        recorder.start(policy, T0)
        recorder.add(history(policy, T0, 1000))
        recorder.flush(T0 + 1000)
        count, first, last = journal.observation_span()
        assert count > 0 and first is not None and last is not None
        assert first >= T0 + 400 and last > T0 + 990
    finally:
        journal.close()
    with pytest.raises(ReplayInput, match=r"--from 'yesterday' does not parse"):
        replay(str(path), str(SONGNODES), since="yesterday")
    with pytest.raises(ReplayInput, match="none between"):
        replay(str(path), str(SONGNODES), since="2020-01-01", until="2020-01-02")


def test_a_journal_recorded_at_a_time_scale_replays_the_new_policy_at_it(
    recorded: Path, tmp_path: Path
) -> None:
    """A demo or drill journal (WATCHDOG_TIME_SCALE=10): an unscaled policy file is weighed
    at the daemon's scale unless --time-scale says otherwise, and the header says so."""
    copy = tmp_path / "scaled.db"
    shutil.copy(recorded, copy)
    journal = open_journal(str(copy))
    journal.set_flag(TIME_SCALE_FLAG, "10.0", at=T0)
    journal.close()
    _, header = replay(str(copy), str(SONGNODES))
    assert header.endswith("at time scale 10, as the journal's daemon ran (--time-scale 1 to "
                           "weigh the new policy's durations as written)")
    diff, header = replay(str(copy), str(SONGNODES), time_scale=1.0)
    assert "time scale" not in header
    assert diff.text().endswith("no difference")
