"""The status strip's verdict (issue 16, point 1): facts and a moment in, lines out.

Table-driven over the situations an on-call engineer must tell apart at a glance:
live or dry-run, paused (since when, by whom), pagers on and how their last delivery
went, nobody to page (red), and a daemon that stopped or whose heartbeat is stale.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from watchdog.policy.statusview import (
    DaemonRow,
    LastDelivery,
    StatusFacts,
    ago,
    hhmm,
    judge_status,
)

T0 = 1_796_440_320.0  # 03:12:00 UTC
ROW = DaemonRow(
    stack="songnodes", pid=41, host="sidecar", started_at=T0 - 600, heartbeat_at=T0 - 2,
    heartbeat_seconds=5.0, dry_run=False, journal="/state/journal.db",
    policy_name="songnodes", policy_version="version 1, digest 0123456789ab",
    channels=("pagerduty", "slack"), p0_routes=("pagerduty", "opsgenie", "slack"),
)
SENT = LastDelivery("pagerduty", ok=True, at=T0 - 120)
FAILED = LastDelivery("slack", ok=False, at=T0 - 60, error="HTTP 500")
RETRYING = LastDelivery("slack", ok=None, at=T0 - 60, error="timed out")

CASES = [
    # (name, facts, expected level, running, nobody paged, {line key: (level, words)})
    ("live, pagers fine", StatusFacts(ROW, deliveries=(SENT,)), "ok", True, False,
     {"mode": ("ok", "LIVE"), "pause": ("ok", "not paused"),
      "pagers": ("ok", "pagerduty ok 03:10 UTC, slack (nothing sent yet)"),
      "daemon": ("ok", "heartbeat 2 s ago"), "role": ("ok", "single instance"),
      "policy": ("ok", "policy songnodes (version 1, digest 0123456789ab)"),
      "journal": ("ok", "journal /state/journal.db")}),
    ("dry-run", StatusFacts(replace(ROW, dry_run=True)), "warn", True, False,
     {"mode": ("warn", "DRY-RUN: steps and pages are journaled, nothing is touched or sent")}),
    ("paused by alice", StatusFacts(ROW, paused=True, paused_at=T0 - 125, paused_by="alice"),
     "warn", True, False,
     {"pause": ("warn", "PAUSED since 03:09 UTC (2 min 5 s ago) by alice")}),
    ("paused, author unknown", StatusFacts(ROW, paused=True), "warn", True, False,
     {"pause": ("warn", "PAUSED: no automatic action")}),
    ("a pager failed", StatusFacts(ROW, deliveries=(SENT, FAILED)), "warn", True, False,
     {"pagers": ("warn", "pagerduty ok 03:10 UTC, slack FAILED 03:11 UTC (HTTP 500)")}),
    ("a pager retrying", StatusFacts(ROW, deliveries=(RETRYING,)), "warn", True, False,
     {"pagers": ("warn", "slack RETRYING since 03:11 UTC (timed out)")}),
    ("no pager", StatusFacts(replace(ROW, channels=())), "alert", True, True,
     {"pagers": ("alert", "NOBODY CAN BE PAGED: no pager on for P0 (pagers on: none; "
                 "P0 routes to: pagerduty, opsgenie, slack)")}),
    ("pagers on, none routed for P0",
     StatusFacts(replace(ROW, channels=("webhook",), p0_routes=("pagerduty",))),
     "alert", True, True, {"pagers": ("alert", "pagers on: webhook; P0 routes to: pagerduty")}),
    ("stale heartbeat", StatusFacts(replace(ROW, heartbeat_at=T0 - 130)), "alert", False, False,
     {"daemon": ("alert", "daemon heartbeat 2 min 10 s old (limit 15 s): is it running? "
                 "(pid 41 on sidecar)")}),
    ("stopped cleanly", StatusFacts(replace(ROW, stopped_at=T0 - 30)), "alert", False, False,
     {"daemon": ("alert", "daemon stopped at 03:11 UTC (30 s ago): nothing is watching")}),
    ("no daemon ever wrote", StatusFacts(None, paused=True, paused_by="bob"), "alert", False,
     False, {"daemon": ("alert", "no daemon has written its status"),
             "pause": ("warn", "by bob"), "journal": ("ok", "journal /j.db")}),
]


@pytest.mark.parametrize(("facts", "level", "running", "nobody", "expected"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_the_verdict(
    facts: StatusFacts, level: str, running: bool, nobody: bool,
    expected: dict[str, tuple[str, str]],
) -> None:
    verdict = judge_status(facts, T0, journal="/j.db")
    assert (verdict.level, verdict.running, verdict.nobody_paged) == (level, running, nobody)
    for key, (line_level, words) in expected.items():
        line = verdict.line(key)
        assert line is not None, key
        assert line.level == line_level and words in line.text, line
    assert verdict.as_dict()["lines"][0]["key"] == "daemon"


def test_without_a_daemon_only_what_the_journal_knows_is_said() -> None:
    verdict = judge_status(StatusFacts(None), T0, journal="/j.db")
    assert [line.key for line in verdict.lines] == ["daemon", "pause", "journal"]


def test_a_given_stale_limit_overrides_the_three_intervals() -> None:
    facts = StatusFacts(replace(ROW, heartbeat_at=T0 - 10))
    assert judge_status(facts, T0).running
    assert not judge_status(facts, T0, stale_after=9).running


def test_text_marks_the_worst_lines_and_short_keeps_the_four_that_matter() -> None:
    verdict = judge_status(StatusFacts(replace(ROW, channels=()), paused=True), T0)
    text = verdict.text().splitlines()
    assert text[0].startswith("   daemon running") and len(text) == len(verdict.lines)
    assert any(line.startswith("!! NOBODY CAN BE PAGED") for line in text)
    assert any(line.startswith(" ! PAUSED") for line in text)
    assert [line.split()[0] for line in verdict.short().splitlines()] == [
        "daemon", "LIVE:", "!", "!!"]


@pytest.mark.parametrize(("seconds", "words"), [
    (0, "0 s"), (0.4, "0 s"), (59, "59 s"), (60, "1 min"), (125, "2 min 5 s"),
    (3 * 3600 + 720, "3 h 12 min"), (2 * 86400 + 4 * 3600, "2 d 4 h"), (-3, "0 s"),
])
def test_durations_read_as_words(seconds: float, words: str) -> None:
    assert ago(seconds) == words


def test_times_of_day_are_utc() -> None:
    assert hhmm(T0) == "03:12 UTC" and hhmm(T0 + 86400 - 1) == "03:11 UTC"
