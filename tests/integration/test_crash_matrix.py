"""The crash matrix, cheap cover: every daemon write site killed once before and once after.

For each sandbox scenario of the demo (tests/integration/crash_matrix.py lists
them, with the Alertmanager, approval and human-close flows) a clean run gives the
ordered write sites; then the daemon is SIGKILLed by its own store at the first write
of each site no cheaper scenario already killed, once before the COMMIT and once
after, plus the points a scenario adds (`ALSO`: the daemon's move after an approval,
the resolve page after a person's close), restarted without the setting, and judged
by the six invariants (no non-idempotent step twice, every incident final, none
wedged, no page lost or left pending, no step left started, the sandbox as the
journal says). The failure message lists every kill point with the invariant it broke.

Kill points run two at a time (CRASH_MATRIX_WORKERS, default 2); a sandbox kill point
takes 10-30 s on this 2-core machine, so this module is the suite's longest (see the
README's figures). The full matrix (every write, both ways) is bench/crash_matrix.py;
the real Docker engine and PostgreSQL are test_crash_matrix_engines.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.crash_matrix import SCENARIOS, each_site_once, run_matrix
from watchdog.store.crashpoints import CrashPoints

WORKERS = int(os.environ.get("CRASH_MATRIX_WORKERS", "2"))


#: Cheapest first: a site is killed in the first scenario that reaches it.
ORDER = ["service_crash", "config_corruption", "provider_disable_enable", "dlq_overflow",
         "dlq_overflow_pager_trouble", "alert_fired_and_resolved", "approval", "human_close"]
#: Write sites only the harness actions reach: Alertmanager's receiver, the settling of
#: its firings when an incident they opened resolves, a person's approval (the daemon's
#: HTTP API runs in the daemon process, so this is the daemon's write too), a person's close.
ACTION_SITES = {"record_alerts", "settle_alerts", "record_approval", "close_by_human"}
#: Writes for `watchdog replay` only, best effort by design (a failed one is logged and
#: dropped, never retried, never read by a decision): the recorded observations each tick
#: and, at start, the policy as run and since when recording exists (set_flag, whose other
#: writer is a person's `watchdog pause`, not the daemon). No invariant reads them; the
#: full matrix (bench/crash_matrix.py) still kills every write of theirs.
REPLAY_SITES = frozenset({"record_observations", "set_flag"})


@pytest.mark.slow
def test_every_write_site_killed_before_and_after_breaks_no_invariant() -> None:
    assert sorted(ORDER) == sorted(SCENARIOS)
    lines: list[str] = []
    results = run_matrix(ORDER, each_site_once(REPLAY_SITES), workers=WORKERS,
                         out=lines.append)
    print("\n".join(lines))
    reached = {site for r in results for site in r.clean.sites} - REPLAY_SITES
    killed = {(r.kill.planned_site, r.kill.when) for result in results for r in result.runs}
    for result in results:
        assert not result.clean.violations, (result.scenario, result.clean.violations)
        print(f"{result.scenario}: {len(result.runs)} kill points covered")
    assert not [r for result in results for r in result.runs if r.error], "\n".join(lines)
    missing = {(site, when) for site in reached for when in ("before", "after")} - killed
    assert reached >= ACTION_SITES, f"not reached: {sorted(ACTION_SITES - reached)}"
    hit = {r.killed_site for result in results for r in result.runs}
    assert hit >= ACTION_SITES, f"never killed at: {sorted(ACTION_SITES - hit)}"
    assert not missing, f"write sites no kill point hit: {sorted(missing)}"
    violations = [f"{r.kill}: {v}" for result in results for r in result.runs for v in r.violations]
    assert not violations, "\n".join(violations)


def test_the_store_dies_at_its_nth_write_before_or_after_the_commit(tmp_path: Path) -> None:
    """The hook itself, on a real journal file: killed before, the write is lost; after, kept."""
    script = (
        "import sys\n"
        "from watchdog.store.sqlite import SqliteJournal\n"
        "j = SqliteJournal(sys.argv[1])\n"
        "j.set_flag('one', '1', at=1)\n"
        "j.set_flag('two', '2', at=2)\n"
    )
    for when, kept in (("before", None), ("after", "2")):
        db = tmp_path / f"{when}.db"
        log = tmp_path / f"{when}.log"
        env = {
            **os.environ,
            "WATCHDOG_CRASH_AT": "3",  # 1 the schema, 2 flag one, 3 flag two
            "WATCHDOG_CRASH_WHEN": when,
            "WATCHDOG_COMMIT_LOG": str(log),
        }
        done = subprocess.run([sys.executable, "-c", script, str(db)], env=env, check=False)
        assert done.returncode == -signal.SIGKILL
        from watchdog.store.sqlite import SqliteJournal

        journal = SqliteJournal(db)
        try:
            assert journal.get_flag("one") == "1"
            assert journal.get_flag("two") == kept
        finally:
            journal.close()
        logged = log.read_text().splitlines()
        expected = ["_create_schema", "set_flag"] + (["set_flag"] if when == "after" else [])
        assert logged == [*expected, f"set_flag\tkilled {when}"]


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"WATCHDOG_CRASH_AT": "0"}, "WATCHDOG_CRASH_AT='0'"),
        ({"WATCHDOG_CRASH_AT": "soon"}, "WATCHDOG_CRASH_AT='soon'"),
        ({"WATCHDOG_CRASH_AT": "2", "WATCHDOG_CRASH_WHEN": "during"}, "WATCHDOG_CRASH_WHEN"),
    ],
)
def test_bad_crash_settings_are_refused_naming_the_setting(
    settings: dict[str, str], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        CrashPoints.from_environment(settings)


def test_no_setting_no_hook() -> None:
    assert CrashPoints.from_environment({}) is None
