"""Random histories at volume: at least 10,000 through the real daemon, violations counted.

The same machine as `tests/unit/test_histories.py` (`tests.unit.histories.History`:
the daemon on a real SQLite journal in memory-backed storage, fakes at its
edges), driven by a plain seeded random walk over the same moves instead of
hypothesis (no shrinking, so it is cheap), on every core. Each history makes
STEPS random moves, checking every invariant after each, then `finish()`: the
faults stop, the pause is lifted, time passes, and every incident must be final.
It prints histories, steps, what the histories did, and violations by
invariant with the first example of each and the seed that replays it.

Run: .venv/bin/python bench/histories.py [HISTORIES] [STEPS]
"""

from __future__ import annotations

import logging
import multiprocessing
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import structlog

from tests.unit.histories import (
    DURATIONS,
    FAULT_NAMES,
    PEOPLE,
    History,
)
from tests.unit.history_checks import INVARIANTS
from tests.unit.history_world import FLAKY_ACTIONS

MOVES = (
    "inject", "clear", "flap", "advance", "blind", "pause", "flaky", "release", "restart",
    "approve", "reject", "approve_twice", "stale_vote", "wrong_role_vote", "close",
)
WEIGHTS = (6, 3, 1, 10, 1, 2, 3, 2, 3, 5, 1, 1, 1, 1, 1)


def random_move(history: History, rng: random.Random) -> str:
    """Make one random move of the history; return it in words (to replay a seed)."""
    kind = rng.choices(MOVES, weights=WEIGHTS)[0]
    fault, which, person = rng.choice(FAULT_NAMES), rng.randrange(20), rng.choice(PEOPLE)
    if kind == "inject":
        transient = rng.random() < 0.6
        history.inject(fault, transient=transient)
        return f"inject({fault!r}, transient={transient})"
    if kind == "clear":
        history.clear(fault)
        return f"clear({fault!r})"
    if kind == "flap":
        seconds = rng.choice((5.0, 15.0, 30.0))
        history.flap(fault, seconds)
        return f"flap({fault!r}, {seconds})"
    if kind == "advance":
        seconds = rng.choice(DURATIONS)
        history.advance(seconds)
        return f"advance({seconds})"
    if kind in ("blind", "pause"):
        on = rng.random() < 0.5
        getattr(history, kind)(on)
        return f"{kind}({on})"
    if kind == "flaky":
        action, how = rng.choice(FLAKY_ACTIONS), rng.choice(("fail", "hang", "ok"))
        history.flaky(action, how)
        return f"flaky({action!r}, {how!r})"
    if kind == "release":
        history.release()
        return "release()"
    if kind == "restart":
        dry = rng.random() < 0.3
        history.restart(dry_run=dry)
        return f"restart(dry_run={dry})"
    if kind in ("approve", "reject", "approve_twice"):
        decision = "reject" if kind == "reject" else "approve"
        for _ in range(2 if kind == "approve_twice" else 1):
            history.vote(which, person, decision)
        return f"{kind}({which}, {person!r})"
    if kind in ("stale_vote", "wrong_role_vote"):
        getattr(history, kind)(which, person)
        return f"{kind}({which}, {person!r})"
    history.close_by_human(which)
    return f"close_by_human({which})"


def play(job: tuple[int, int]) -> tuple[int, Counter[str], dict[str, str], Counter[str]]:
    """One history from its seed: (steps, violations by invariant, first examples, doings)."""
    seed, steps = job
    rng = random.Random(seed)
    history = History()
    violations: Counter[str] = Counter()
    examples: dict[str, str] = {}
    moves: list[str] = []

    def count(found: dict[str, list[str]]) -> None:
        for name, found_here in found.items():
            violations[name] += len(found_here)
            if found_here and name not in examples:
                examples[name] = f"seed {seed}: {found_here[0]} after {moves[-8:]}"

    try:
        for _ in range(steps):
            moves.append(random_move(history, rng))
            count(history.check())
        count(history.finish())
        doings = Counter(
            {
                "actions carried out": len(history.world.calls),
                "plans that acted": len({c.run for c in history.world.calls}),
                "approved plans that acted": len(
                    {c.run for c in history.world.calls if not c.auto}
                ),
                "daemon lives": history.generation,
                "votes refused": history.refused,
            }
        )
    finally:
        history.close()
    return steps + history.finish_ticks, violations, examples, doings


def main() -> None:
    histories = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    workers = multiprocessing.cpu_count()
    began = time.perf_counter()
    total_steps = 0
    violations: Counter[str] = Counter()
    examples: dict[str, str] = {}
    doings: Counter[str] = Counter()
    with multiprocessing.Pool(workers, initializer=_quiet) as pool:
        jobs = ((seed, steps) for seed in range(histories))
        for done, (n, found, first, did) in enumerate(pool.imap_unordered(play, jobs, 20), 1):
            total_steps += n
            violations.update(found)
            doings.update(did)
            for name, example in first.items():
                examples.setdefault(name, example)
            if done % 1000 == 0:
                print(f"  {done} histories, {time.perf_counter() - began:.0f} s", flush=True)
    elapsed = time.perf_counter() - began
    print(
        f"settings: {histories} histories x {steps} random moves (seeds 0..{histories - 1}), "
        f"then finish (faults stop, pause lifted, up to 4 h in 120 s ticks); "
        f"policy songnodes.yaml with actions_per_hour=4; {workers} worker(s)"
    )
    print(f"histories: {histories}")
    print(f"steps: {total_steps} (moves and finishing ticks, each followed by every check)")
    print(f"time: {elapsed:.0f} s ({elapsed / histories * 1000:.0f} ms per history per worker "
          f"x {workers})")
    for name, number in sorted(doings.items()):
        print(f"  {name}: {number}")
    print(f"violations: {sum(violations.values())}")
    for name in INVARIANTS:
        print(f"  {name}: {violations.get(name, 0)}")
        if name in examples:
            print(f"    first: {examples[name]}")


def _quiet() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))


if __name__ == "__main__":
    main()
