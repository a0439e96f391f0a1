"""The incident lifecycle, as drawn in ARCHITECTURE.md, on the `transitions` library.

```
detected → triaged ─┬─ (auto allowed)  → executing → verifying ─┬→ resolved
                    ├─ (needs approval) → awaiting_approval ─┬→ approved → executing …
                    │                                        └→ rejected | expired → escalated
                    └─ (P3 / fix forward) → notified → closed      verifying ─→ failed → escalated
                                                          failed ─(next rung of the ladder)→ triaged
executing ─(restart, the plan ran on a human's authority)→ awaiting_approval
any state not final ─(a human ends it)→ closed
```

The machine only says which moves are legal; it holds no other state and does
no I/O. The state itself lives in the journal: the daemon builds a machine from
the stored state, asks it to move, and journals the result before acting. An
illegal move (approving an incident that already expired) raises
`IllegalTransition`, naming the state and the move, instead of silently happening.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from transitions import Machine, MachineError

STATES = (
    "detected",
    "triaged",
    "awaiting_approval",
    "approved",
    "rejected",
    "expired",
    "executing",
    "verifying",
    "resolved",
    "failed",
    "escalated",
    "notified",
    "closed",
)

#: States in which an incident is finished and never moves again.
FINAL = frozenset({"resolved", "closed"})

TRANSITIONS: tuple[dict[str, Any], ...] = (
    {"trigger": "triage", "source": "detected", "dest": "triaged"},
    {"trigger": "execute", "source": ["triaged", "approved"], "dest": "executing"},
    {"trigger": "request_approval", "source": "triaged", "dest": "awaiting_approval"},
    {"trigger": "approve", "source": "awaiting_approval", "dest": "approved"},
    {"trigger": "reject", "source": "awaiting_approval", "dest": "rejected"},
    {"trigger": "expire", "source": "awaiting_approval", "dest": "expired"},
    {"trigger": "notify_only", "source": "triaged", "dest": "notified"},
    {"trigger": "verify", "source": "executing", "dest": "verifying"},
    {"trigger": "resolve", "source": ["verifying", "escalated"], "dest": "resolved"},
    {"trigger": "fail", "source": ["executing", "verifying"], "dest": "failed"},
    {
        "trigger": "escalate",
        "source": [
            "rejected", "expired", "failed", "executing", "triaged", "notified", "approved"
        ],
        "dest": "escalated",
    },
    {"trigger": "retriage", "source": ["notified", "awaiting_approval"], "dest": "triaged"},
    {"trigger": "next_rung", "source": "failed", "dest": "triaged"},
    {"trigger": "close", "source": ["notified", "escalated"], "dest": "closed"},
    # A plan interrupted by a restart that ran on a human's authority asks again.
    {"trigger": "reapprove", "source": "executing", "dest": "awaiting_approval"},
    # A human ends an incident from any state that is not final (`watchdog incidents close`).
    {
        "trigger": "end",
        "source": [s for s in STATES if s not in ("resolved", "closed")],
        "dest": "closed",
    },
)


class IllegalTransition(ValueError):
    """A move the lifecycle does not allow from the incident's current state."""


class Lifecycle:
    """One incident's position in the lifecycle; built from the journal's state."""

    state: str
    trigger: Callable[[str], bool]  # added to the model by transitions.Machine

    def __init__(self, state: str = "detected") -> None:
        if state not in STATES:
            raise IllegalTransition(f"unknown incident state {state!r}; expected one of {STATES}")
        self._machine = Machine(
            model=self,
            states=list(STATES),
            transitions=[dict(t) for t in TRANSITIONS],
            initial=state,
            auto_transitions=False,
        )

    def move(self, trigger: str) -> str:
        """Apply a trigger and return the new state, or raise IllegalTransition."""
        if trigger not in {t["trigger"] for t in TRANSITIONS}:
            raise IllegalTransition(f"unknown move {trigger!r}")
        try:
            self.trigger(trigger)
        except MachineError as error:
            raise IllegalTransition(f"cannot {trigger} an incident that is {self.state}") from error
        return self.state

    def can(self, trigger: str) -> bool:
        return trigger in self._machine.get_triggers(self.state)

    @property
    def is_final(self) -> bool:
        return self.state in FINAL


def next_state(state: str, trigger: str) -> str:
    """Where `trigger` takes an incident in `state` (IllegalTransition if nowhere)."""
    return Lifecycle(state).move(trigger)
