"""A day of songnodes history recorded the daemon's way, then replayed through two policies.

Issue 18 point 2: `watchdog replay` runs a day of the songnodes policy's history (its
signals at their own intervals) in under a minute on this machine. The history is
synthetic but realistic (tests/replayhistory.py: jittered intervals, wandering latencies
and rates, steady health flags) with seven faults over the day. It is recorded through
the daemon's own `Recorder` (changes, and one sample per interval when unchanged) into a
SQLite journal, one write transaction per daemon tick for the first hour (the cost a
daemon pays per tick is measured there), then one per minute (same rows, fewer fsyncs,
to keep the bench short). Then `replay` (read + both simulations + diff) over the day,
with the stricter policy of the tests as the new one.

Figures, printed with their settings, never asserted. Run: .venv/bin/python bench/replay.py
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.replayhistory import Fault, history, stricter
from tests.unit.helpers import SONGNODES, songnodes
from watchdog.commands.replaycmd import replay
from watchdog.engine.recording import DEFAULT_RETENTION_SECONDS, Recorder
from watchdog.policy.replay import tick_seconds_for
from watchdog.policy.rules import Evaluator, RuleState
from watchdog.policy.triage import triage
from watchdog.policy.windows import Windows
from watchdog.store.journal import open_journal
from watchdog.store.render import iso_utc

DAY = 86400.0
T0 = 1_800_000_000.0
HOUR = 3600.0
FAULTS = (
    Fault("dlq_depth", 6500.0, T0 + 2 * HOUR, 600),
    Fault("dlq_manager_health", 0.0, T0 + 5 * HOUR, 120),
    Fault("breaker_state", 1.0, T0 + 9 * HOUR, 300, series="spotify"),
    Fault("breaker_state", 1.0, T0 + 9 * HOUR + 60, 200, series="musicbrainz"),
    Fault("enrichment_error_rate", 0.4, T0 + 13 * HOUR, 400),
    Fault("rest_api_health", 0.0, T0 + 17 * HOUR, 90),
    Fault("memory_used", 0.95, T0 + 21 * HOUR, 900),
)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    policy = songnodes()
    tick = tick_seconds_for(policy)
    folder = Path(tempfile.mkdtemp(prefix="replay-bench-"))
    path = folder / "journal.db"
    journal = open_journal(str(path))
    recorder = Recorder(journal, {s.name: s.interval for s in policy.signals})
    recorder.start(policy, T0)
    evaluator, windows = Evaluator(policy), Windows()
    states: dict[tuple[str, str], RuleState] = {}
    core_ms: list[float] = []
    record_ms: list[float] = []
    pending = []
    now = T0 + tick
    began = time.perf_counter()
    for observation in history(policy, T0, DAY, FAULTS):
        while observation.at > now:
            if now - T0 <= HOUR:  # the daemon's tick: the core, then the recording's share
                start = time.perf_counter()
                windows.record_all(pending)
                windows.record_all(evaluator.derive(windows, now))
                result = evaluator.evaluate(windows, states, now)
                states = result.states
                triage(result.active, [], result.holding)
                core_ms.append((time.perf_counter() - start) * 1000)
                start = time.perf_counter()
                recorder.add(pending)
                recorder.flush(now)
                record_ms.append((time.perf_counter() - start) * 1000)
            else:
                recorder.add(pending)
                if int(now - T0) % 60 == 0:
                    recorder.flush(now)
            pending = []
            now += tick
        pending.append(observation)
    recorder.add(pending)
    recorder.flush(now)
    recording_s = time.perf_counter() - began
    journal.close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = os.path.getsize(path)
    strict = folder / "strict.yaml"
    strict.write_text(stricter(SONGNODES.read_text()))

    began = time.perf_counter()
    diff, header = replay(str(path), str(strict))
    replay_s = time.perf_counter() - began

    probed = sum(1 for s in policy.signals if s.kind not in ("derived", "alert"))
    print("settings: songnodes.yaml, "
          f"{len(policy.signals)} signals ({probed} probed, the rest derived or Alertmanager's), "
          f"{len(policy.rules)} rules; one synthetic day, {len(FAULTS)} faults; tick {tick:g} s; "
          f"retention default {DEFAULT_RETENTION_SECONDS / 86400:g} days")
    print(f"recording: {recorder.seen} observations seen, {recorder.kept} kept "
          f"({recorder.kept / recorder.seen:.0%}), journal {size / 1e6:.1f} MB for the day "
          f"({size / recorder.kept:.0f} bytes a row, indexes included); "
          f"written in {recording_s:.1f} s")
    print(f"daemon tick, first hour ({len(core_ms)} ticks): core median "
          f"{statistics.median(core_ms):.3f} ms, p99 {percentile(core_ms, 0.99):.3f} ms; "
          f"recording (filter + one write transaction, synchronous=FULL) median "
          f"{statistics.median(record_ms):.3f} ms, p99 {percentile(record_ms, 0.99):.3f} ms")
    print(f"replay: {replay_s:.1f} s wall for the day through two policies (read, simulate, "
          f"diff; goal under 60 s)")
    print(header)
    print(diff.text(iso_utc))
    shutil.rmtree(folder)


if __name__ == "__main__":
    main()
