"""Policy data for the runbook's impact assessment and its checklists before a rollback.

The runbook asks, before any rollback, for an impact assessment ("Impact
Assessment Checklist") and, per scenario, a "Pre-Rollback Checklist". Both are
data here so a policy states, item by item, which fact the daemon holds
satisfies it; `watchdog.policy.prechecks` judges them and `watchdog.policy.impact`
words the assessment. The runbook's Quick Reference table (rollback time per
scenario) is `ScenarioSpec.expected_duration`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from watchdog.policy.durations import Duration
from watchdog.policy.specbase import Strict

#: What can satisfy a pre-rollback item (see `watchdog.policy.prechecks.judge`).
PrecheckFact = Literal[
    "backup",  # the newest backup's age is known (and under `max_age` if set)
    "dependents",  # the services depending on those the plan touches were read
    "captured",  # a step of the plan keeps the failing state (logs, dump, config) first
    "change",  # the time of the last recorded change is known
    "approval",  # the plan waits for a human's approval before it acts
    "notify",  # the policy pages someone for this severity
    "reading",  # `signal` has a reading (the state the runbook asks to look at was read)
    "waited",  # the fault has lasted at least `wait` (not a temporary blip)
    "human",  # nothing the daemon holds answers it: left to a person, said so
]


class PrecheckSpec(Strict):
    """One item of a scenario's pre-rollback checklist and the fact that satisfies it."""

    item: str
    fact: PrecheckFact
    required: bool = Field(
        False,
        description="an item not satisfied keeps the plan from acting: it pages with the "
        "reason instead",
    )
    signal: str = Field("", description="for fact `reading`: the signal to have read")
    wait: Duration = Field(0.0, description="for fact `waited`: how long the fault must last")
    max_age: Duration | None = Field(
        None, description="for fact `backup`: the oldest backup that still satisfies it"
    )
