"""The full crash matrix: every journal write of every sandbox scenario, killed before and after.

For each scenario of the demo (tests/integration/crash_matrix.py), a clean run of a
real `watchdog run` daemon on the sandbox lists its writes in order; then, for every
write N and for "before" and "after" its COMMIT, a fresh sandbox and daemon run the
scenario with `WATCHDOG_CRASH_AT=N`: the store SIGKILLs its own process there, the
harness restarts it without the setting and judges the outcome by the invariants
(no non-idempotent step twice, every incident final, none wedged, no page lost, no
step left started, the sandbox as the journal says).

It prints, per scenario, the kill points run, the write sites they hit, and every
violation with its kill point; then the store's write sites no scenario reached.

Run: PYTHONPATH=. .venv/bin/python bench/crash_matrix.py [--workers 2] [SCENARIO ...]

With no SCENARIO it runs the sandbox ones; the real-engine ones run when named:
`docker_ladder` and `docker_ladder_climb` (restart → revert → page on a real Docker
engine, tests/integration/crash_engines.py) and `pg_config_restore` (the configuration
table restored on a real PostgreSQL, tests/integration/crash_postgres.py).

Cost on the 2-core machine, beside other suites: service_crash (18 writes, 36 kill
points) 550 s one at a time; dlq_overflow (26 writes, 52 kill points) about 10 min
three at a time; all five scenarios (~150 writes, ~300 kill points) over an hour.

Found on main at f5fde40 (service_crash: none of 36 kill points break anything):
dlq_overflow #5 after set_state and #6 before enqueue_page lose the P1 "opened"
trigger page; #23 after set_state and #24 before enqueue_page lose the resolve
page (verifying → resolved committed, its page not): the state change and its page
are two transactions.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.crash_matrix import ENGINE_SCENARIOS, SCENARIOS, every_write, run_matrix
from watchdog.store.sqlite import SqliteJournal


def store_write_sites() -> set[str]:
    """Every method of the SQLite journal that opens a write transaction."""
    return {
        name
        for name, method in inspect.getmembers(SqliteJournal, inspect.isfunction)
        if "self._transaction()" in inspect.getsource(method)
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="kill points run at once")
    known = ", ".join([*SCENARIOS, *ENGINE_SCENARIOS])
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                        help=f"{known} (default: the sandbox ones)")
    args = parser.parse_args()
    scenarios = args.scenarios or list(SCENARIOS)
    unknown = sorted(set(scenarios) - set(SCENARIOS) - set(ENGINE_SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; expected one of {known}")
    began = time.monotonic()
    results = run_matrix(scenarios, every_write, workers=args.workers)
    print("\nSCENARIO                  KILL POINTS  SITES HIT  WITH VIOLATIONS  NOT RUN")
    covered: set[str] = set()
    for r in results:
        covered |= r.killed_sites
        bad = sum(1 for run in r.runs if run.violations)
        errors = sum(1 for run in r.runs if run.error)
        hit = len(r.killed_sites)
        print(f"{r.scenario:<25} {len(r.runs):>11}  {hit:>9}  {bad:>15}  {errors:>7}")
    missing = sorted(store_write_sites() - covered)
    never = ", ".join(missing) or "none"
    print(f"\nstore write sites killed: {len(covered)}; never reached: {never}")
    print(f"took {time.monotonic() - began:.0f} s")
    return 1 if any(run.violations for r in results for run in r.runs) else 0


if __name__ == "__main__":
    raise SystemExit(main())
