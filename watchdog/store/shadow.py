"""A shadow policy's would-be decisions, journaled beside the live ones (`--shadow-policy`).

One row per decision either policy took at a tick on an incident key (opened or
escalated), with what each said and their agreement: `agree`, `differs` (and how, in the
words of `watchdog.policy.replaydiff`), `shadow-only` (the live policy did not open it)
or `live-only` (the shadow would not have). A row records a decision, never an act: the
shadow has no incidents, steps or pages of its own.

Added by schema version 5 (`watchdog.store.schema.MIGRATIONS`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from watchdog.policy.shadow import AGREEMENTS

STATEMENTS = (
    """CREATE TABLE IF NOT EXISTS shadow_decisions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        policy TEXT NOT NULL,
        key TEXT NOT NULL,
        decision TEXT NOT NULL,
        shadow TEXT NOT NULL,
        live TEXT NOT NULL,
        agreement TEXT NOT NULL,
        how TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS shadow_decisions_at ON shadow_decisions (at)",
)

COLUMNS = "at, policy, key, decision, shadow, live, agreement, how"
INSERT = f"INSERT INTO shadow_decisions ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"


@dataclass(frozen=True, slots=True)
class ShadowDecision:
    """What the shadow policy would have decided on one incident key, beside the live one.

    `shadow` and `live` say each side's incident in words ('' where that side has none);
    `decision` names what happened at `at` ("shadow opened", "live escalated", ...)."""

    at: float
    policy: str
    key: str
    decision: str
    shadow: str
    live: str
    agreement: str
    how: str = ""

    def __post_init__(self) -> None:
        if self.agreement not in AGREEMENTS:
            raise ValueError(f"shadow agreement {self.agreement!r}: expected one of {AGREEMENTS}")

    def values(self) -> tuple[object, ...]:
        return (self.at, self.policy, self.key, self.decision, self.shadow, self.live,
                self.agreement, self.how)


def decision_of(row: Sequence[Any]) -> ShadowDecision:
    at, policy, key, decision, shadow, live, agreement, how = row
    return ShadowDecision(float(at), str(policy), str(key), str(decision), str(shadow),
                          str(live), str(agreement), str(how))
