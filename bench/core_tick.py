"""Cost of one decision tick (derive + evaluate + triage) for 100, 1,000 and 10,000 signals.

Goal (issue 3): 1,000 signals with 2,000 rules under 5 ms per tick on one core,
growing linearly. Each signal gets two rules (a P2 and a P1 threshold, with
`for` and `clear_for`); every tick records one fresh observation per signal, as
a daemon probing every signal each second would, and 5 % of signals breach so
that findings, triage and hysteresis all do real work.

Run: .venv/bin/python bench/core_tick.py
"""

from __future__ import annotations

import statistics
import time

from watchdog.model import Observation
from watchdog.policy.rules import Evaluator, RuleState
from watchdog.policy.schema import Policy
from watchdog.policy.triage import triage
from watchdog.policy.windows import Windows


def policy_with(signals: int) -> Policy:
    return Policy.model_validate({
        "version": 1,
        "stack": {"name": "bench"},
        "targets": {"t": {"url": "http://127.0.0.1:9"}},
        "signals": [
            {"name": f"s{i}", "kind": "http", "target": "t", "value": "v", "interval": "1s",
             "timeout": "1s"}
            for i in range(signals)
        ],
        "rules": [
            rule
            for i in range(signals)
            for rule in (
                {"name": f"s{i}-warn", "signal": f"s{i}", "op": ">", "threshold": 50,
                 "for": "5s", "clear_for": "10s", "severity": "P2", "scenario": "s",
                 "group": f"g{i}"},
                {"name": f"s{i}-crit", "signal": f"s{i}", "op": ">", "threshold": 90,
                 "for": "5s", "clear_for": "10s", "severity": "P1", "scenario": "s",
                 "group": f"g{i}"},
            )
        ],
        "scenarios": {"s": {"title": "bench"}},
        "authority": {p: {"safe": "auto", "risky": "never", "destructive": "never"}
                      for p in ("P0", "P1", "P2", "P3")},
    })


def measure(signals: int, ticks: int = 60) -> tuple[float, float, int]:
    policy = policy_with(signals)
    evaluator = Evaluator(policy)
    windows = Windows(horizon=120)
    states: dict[tuple[str, str], RuleState] = {}
    breaching = set(range(0, signals, 20))  # 5 %
    timings = []
    for tick in range(ticks):
        now = 1000.0 + tick
        for i in range(signals):
            windows.record(Observation(f"s{i}", now, 95.0 if i in breaching else 10.0))
        began = time.perf_counter()
        evaluator.derive(windows, now)
        result = evaluator.evaluate(windows, states, now)
        states = result.states
        triage(result.active, [])
        timings.append(time.perf_counter() - began)
    steady = timings[10:]
    return statistics.median(steady) * 1000, max(steady) * 1000, len(policy.rules)


def main() -> None:
    print("decision core, one tick (derive + evaluate + triage), one core")
    print(f"{'signals':>8} {'rules':>7} {'median ms':>10} {'max ms':>8} {'us/rule':>8}")
    for signals in (100, 1000, 10000):
        median, worst, rules = measure(signals)
        per_rule = median * 1000 / rules
        print(f"{signals:>8} {rules:>7} {median:>10.2f} {worst:>8.2f} {per_rule:>8.2f}")
    print("goal: 1,000 signals with 2,000 rules under 5 ms per tick, growing linearly")


if __name__ == "__main__":
    main()
