"""The values `watchdog explain` reasons over and hands back, kept apart from the reasoning.

Facts in (`ExplainFacts`: the journal's record of one incident as plain values, and
the policy with the places its parts are written at), an `Explanation` out: links
in words, each citing the policy file and line that decided it, and the near
misses. Plain frozen values, so the command line and the web page show the very
same explanation, and a test can build one without a journal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from watchdog.model import Finding, Plan, Severity
from watchdog.policy.schema import Policy


@dataclass(frozen=True, slots=True)
class Place:
    """Where one part of a policy is written: `policies/songnodes.yaml:421 rules[17] x`."""

    file: str
    line: int
    path: str

    def words(self) -> str:
        return f"{self.file}:{self.line} {self.path}"


@dataclass(frozen=True, slots=True)
class PolicyPlaces:
    """The places of a policy file's rules, signals, scenarios and authority rows, by name.

    Built at the policy-loading edge (`watchdog.policymarks`) from the YAML node marks.
    """

    file: str
    rules: Mapping[str, Place] = field(default_factory=dict)
    signals: Mapping[str, Place] = field(default_factory=dict)
    scenarios: Mapping[str, Place] = field(default_factory=dict)
    authority: Mapping[str, Place] = field(default_factory=dict)
    #: Top-level sections (`guards`, `post_rollback`, ...) by their key.
    sections: Mapping[str, Place] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Happened:
    """One timeline event as the journal holds it."""

    at: float
    kind: str
    summary: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StepRun:
    """One attempt at one step, as journaled (written before it ran, finished after)."""

    index: int
    name: str
    action: str
    risk: str
    status: str
    attempt: int
    started_at: float
    finished_at: float | None
    output: str = ""
    rung: int = 0


@dataclass(frozen=True, slots=True)
class ExplainFacts:
    """Everything the journal holds of one incident, and the policy to cite (if given)."""

    incident_id: int
    key: str
    severity: Severity
    scenario: str
    subject: str
    state: str
    reason: str
    opened_at: float
    closed_at: float | None
    findings: tuple[Finding, ...] = ()
    plan: Plan | None = None
    steps: tuple[StepRun, ...] = ()
    events: tuple[Happened, ...] = ()
    rung: int = 0
    #: The policy to weigh the rules with and the places of its parts; None: the journal only.
    policy: Policy | None = None
    places: PolicyPlaces | None = None


@dataclass(frozen=True, slots=True)
class Link:
    """One link of the chain: its stage, what it says, and where the policy decided it."""

    stage: str
    title: str
    lines: tuple[str, ...] = ()
    place: Place | None = None

    def heading(self) -> str:
        where = f"  [{self.place.words()}]" if self.place is not None else ""
        return f"{self.stage}: {self.title}{where}"


@dataclass(frozen=True, slots=True)
class NearMiss:
    """A rule on a finding's signal that did not fire, and why not."""

    rule: str
    signal: str
    series: str
    #: "below threshold", "above threshold", "threshold not met", "for not yet met",
    #: "superseded", "in another incident", "not recorded here", "disabled" or
    #: "no recorded value".
    kind: str
    why: str
    place: Place | None = None

    def line(self) -> str:
        series = f" [{self.series}]" if self.series else ""
        where = f"  [{self.place.words()}]" if self.place is not None else ""
        return f"{self.rule} on {self.signal}{series}: {self.kind}: {self.why}{where}"


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why incident N happened and went as it did, link by link, then its near misses."""

    incident_id: int
    title: str
    links: tuple[Link, ...]
    near_misses: tuple[NearMiss, ...] = ()
    #: What limits the explanation: no policy given, a rule the policy no longer has.
    notes: tuple[str, ...] = ()
    #: Whether near misses were weighed at all (they need the policy).
    weighed: bool = True

    def stages(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(link.stage for link in self.links))

    def text(self) -> str:
        """The explanation as `watchdog explain` prints it."""
        lines = [self.title]
        lines += [f"  note: {note}" for note in self.notes]
        for link in self.links:
            lines += ["", link.heading(), *(f"    {line}" for line in link.lines)]
        lines += ["", f"near misses ({len(self.near_misses)})"]
        lines += [f"    {miss.line()}" for miss in self.near_misses] or [
            "    none: no other rule reads the findings' signals"
            if self.weighed
            else "    not weighed: they need the policy (--policy FILE)"
        ]
        return "\n".join(lines)
