"""What a `LastGood` needs from the daemon, built the daemon's way for tests that drive it.

The songnodes policy snapshotting chosen tables on a short clock, windows in which
every probed signal has been seen (as after the daemon's first few ticks), and
open incidents shaped like the engine's own views.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.unit.helpers import SONGNODES
from watchdog.model import Finding, Observation
from watchdog.policy.schema import Policy
from watchdog.policy.triage import finding_id
from watchdog.policy.windows import Windows
from watchdog.policyfile import load_policy


def snapshotting(*tables: str, every: float = 1.0, settle: float = 1.0) -> Policy:
    """songnodes.yaml as production reads it, snapshotting `tables` every `every` s."""
    policy = load_policy(SONGNODES, environ={})
    spec = policy.last_good.model_copy(
        update={"tables": list(tables), "every": every, "settle": settle}
    )
    return policy.model_copy(update={"last_good": spec})


def seen_everything(policy: Policy, at: float = 0.0) -> Windows:
    """Windows holding one observation of every probed signal."""
    windows = Windows(horizon=3600.0)
    for signal in policy.probed_signals():
        windows.record(Observation(signal.name, at, 0.0))
    return windows


@dataclass(frozen=True, slots=True)
class View:
    """An open incident as the engine keeps it (the fields snapshots read)."""

    id: int
    key: str
    scenario: str
    subject: str
    finding_ids: frozenset[str]


def view_of(incident: int, *findings: Finding) -> View:
    first = findings[0]
    return View(
        incident, first.key, first.scenario, first.subject, frozenset(map(finding_id, findings))
    )
