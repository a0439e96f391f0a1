"""What /healthz says of this process, and what one leader's term hands to the next.

Both outlive a daemon engine: a sidecar on a shared journal builds a new engine at
every change of leadership (a new leader resumes as a restarted daemon does), while
its API keeps serving the same `Health` and its follower's windows become the
leader's (`Carried`), so a take-over does not wait for the rules' `for` anew.
"""

from __future__ import annotations

from dataclasses import dataclass

from watchdog.policy.rules import RuleState
from watchdog.policy.windows import Windows


@dataclass(frozen=True, slots=True)
class Carried:
    """A follower's signal windows and rule clocks, handed to the engine of its new term."""

    windows: Windows
    states: dict[tuple[str, str], RuleState]


@dataclass(slots=True)
class Health:
    """What /healthz reports: the loop is alive and how far behind it is."""

    started_at: float
    pid: int = 0
    last_tick_at: float = 0.0
    ticks: int = 0
    paused: bool = False
    dry_run: bool = False
    observations: int = 0
    open_incidents: int = 0
    #: Leadership (issue 17): "leader" or "follower"; one sidecar on SQLite always leads.
    role: str = "leader"
    stack: str = ""
    instance: str = ""
    token: int | None = None  # the fencing token of this leader's term (PostgreSQL only)
    since: float | None = None  # when this instance began leading
    leader: str | None = None  # the instance that leads now, as last seen
