"""Compressing a policy's clock, for drills and the demo.

`watchdog demo` runs the real songnodes policy against the sandbox, but nobody
waits five minutes for a `for: 5m`. Dividing every detection and verification
duration by the same factor keeps the policy's logic (which rule fires first,
which clears later) exactly as written, only faster. Step timeouts are not
scaled: they bound real operations that take the time they take.
"""

from __future__ import annotations

from watchdog.policy.schema import Policy, ReenableSpec


def compress_time(policy: Policy, factor: float) -> Policy:
    """The same policy with detection, verification and guard durations divided by `factor`."""
    if factor <= 0:
        raise ValueError(f"time scale factor must be positive, found {factor}")
    if factor == 1:
        return policy

    def s(seconds: float) -> float:
        return seconds / factor

    signals = [
        signal.model_copy(
            update={
                "interval": s(signal.interval),
                "timeout": min(signal.timeout, s(signal.interval)),
                "stale_after": None if signal.stale_after is None else s(signal.stale_after),
                **({"window": s(signal.window)} if hasattr(signal, "window") else {}),
            }
        )
        for signal in policy.signals
    ]
    rules = [
        rule.model_copy(
            update={
                "for_": s(rule.for_),
                "clear_for": s(rule.clear_for),
                "window": s(rule.window),
                "after_change": None
                if rule.after_change is None
                else rule.after_change.model_copy(update={"within": s(rule.after_change.within)}),
            }
        )
        for rule in policy.rules
    ]
    def reenable(spec: ReenableSpec | None) -> ReenableSpec | None:
        if spec is None:
            return None
        return spec.model_copy(
            update={
                "healthy_for": None if spec.healthy_for is None else s(spec.healthy_for),
                "healthy": [c.model_copy(update={"window": s(c.window)}) for c in spec.healthy],
            }
        )

    scenarios = {
        name: scenario.model_copy(
            update={
                "verify_for": s(scenario.verify_for),
                "verify_timeout": s(scenario.verify_timeout),
                "give_up": None if scenario.give_up is None else s(scenario.give_up),
                "checklist": [
                    c.model_copy(update={"window": s(c.window)}) for c in scenario.checklist
                ],
                "reenable": reenable(scenario.reenable),
            }
        )
        for name, scenario in policy.scenarios.items()
    }
    guards = policy.guards.model_copy(
        update={
            "cooldown": s(policy.guards.cooldown),
            "max_cooldown": s(policy.guards.max_cooldown),
            "approval_expires": s(policy.guards.approval_expires),
        }
    )
    last_good = policy.last_good.model_copy(
        update={"every": s(policy.last_good.every), "settle": s(policy.last_good.settle)}
    )
    return policy.model_copy(
        update={
            "signals": signals,
            "rules": rules,
            "scenarios": scenarios,
            "guards": guards,
            "last_good": last_good,
        }
    )
