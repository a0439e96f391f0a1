"""Where two replays of one recorded history decide differently, incident by incident.

Both runs come from `watchdog.policy.replay.simulate` over the same observations, so
every difference is one of policy. Incidents are paired by key and by overlapping
time (the same key may open several times a day): a baseline incident with no partner
was not opened under the new policy, and the reverse. A pair differs when its severity,
scenario, plan, authority or timing (opened, ended) differ; the text says each, and a
summary line counts them. Times are rendered by the caller's `when` (the core reads no
clock and formats no dates).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from watchdog.policy.replay import Replayed, Run

Render = Callable[[float], str]


def _seconds(at: float) -> str:
    return f"{at:.1f}"


@dataclass(frozen=True, slots=True)
class Pair:
    """One incident as each policy decided it (None: that policy did not open it)."""

    baseline: Replayed | None
    new: Replayed | None

    @property
    def key(self) -> str:
        chosen = self.baseline or self.new
        assert chosen is not None
        return chosen.key

    @property
    def opened_at(self) -> float:
        return min(i.opened_at for i in (self.baseline, self.new) if i is not None)

    def differences(self, when: Render = _seconds) -> list[str]:
        """What differs, in words; empty when both decided alike."""
        old, new = self.baseline, self.new
        if old is None and new is not None:
            return [f"opened only under the new policy: {_said(new, when)}"]
        if new is None and old is not None:
            return [f"not opened under the new policy (baseline: {_said(old, when)})"]
        assert old is not None and new is not None
        found: list[str] = []
        if (old.severity, _rises(old)) != (new.severity, _rises(new)):
            found.append(
                f"severity: {_severity(old, when)} → {_severity(new, when)}"
            )
        if old.scenario != new.scenario:
            found.append(f"scenario: {old.scenario} → {new.scenario}")
        if (old.plan_title, old.plan_steps) != (new.plan_title, new.plan_steps):
            found.append(f"plan: {old.plan_said()} → {new.plan_said()}")
        if (old.authority, old.authority_reason) != (new.authority, new.authority_reason):
            found.append(
                f"authority: {old.authority.value} ({old.authority_reason}) → "
                f"{new.authority.value} ({new.authority_reason})"
            )
        if old.opened_at != new.opened_at:
            found.append(
                f"opened: {when(old.opened_at)} → {when(new.opened_at)} "
                f"({new.opened_at - old.opened_at:+.1f} s)"
            )
        if old.closed_at != new.closed_at:
            found.append(f"ended: {_ended(old, when)} → {_ended(new, when)}")
        return found


def _rises(incident: Replayed) -> tuple[tuple[float, str], ...]:
    return tuple((at, str(to)) for at, _, to in incident.escalations)


def _severity(incident: Replayed, when: Render) -> str:
    rises = "".join(f", {to} at {when(at)}" for at, _, to in incident.escalations)
    first = incident.escalations[0][1] if incident.escalations else incident.severity
    return f"{first}{rises}"


def _ended(incident: Replayed, when: Render) -> str:
    return "still open at the end" if incident.closed_at is None else when(incident.closed_at)


def _said(incident: Replayed, when: Render) -> str:
    return (
        f"{incident.severity} {incident.scenario} at {when(incident.opened_at)}, "
        f"{incident.authority.value}"
    )


@dataclass(frozen=True, slots=True)
class ReplayDiff:
    """Two runs over one history, paired."""

    baseline: Run
    new: Run
    pairs: tuple[Pair, ...]

    def differing(self) -> list[Pair]:
        return [pair for pair in self.pairs if pair.differences()]

    def summary(self) -> str:
        counts = {
            "not opened under the new policy": sum(1 for p in self.pairs if p.new is None),
            "opened only under the new policy": sum(1 for p in self.pairs if p.baseline is None),
            "decided differently": sum(
                1 for p in self.pairs
                if p.baseline is not None and p.new is not None and p.differences()
            ),
        }
        head = (
            f"{len(self.baseline.incidents)} incident(s) under the baseline, "
            f"{len(self.new.incidents)} under the new policy"
        )
        if not any(counts.values()):
            return f"{head}: no difference"
        said = ", ".join(f"{n} {words}" for words, n in counts.items() if n)
        same = sum(1 for p in self.pairs if not p.differences())
        return f"{head}: {said}; {same} the same"

    def text(self, when: Render = _seconds) -> str:
        lines: list[str] = []
        if self.differing():
            lines.append("where the policies decide differently (baseline → new):")
        for pair in self.pairs:
            found = pair.differences(when)
            if not found:
                continue
            lines.append(f"{pair.key} (from {when(pair.opened_at)}):")
            lines.extend(f"  {line}" for line in found)
        lines.append(self.summary())
        return "\n".join(lines)


def compare(baseline: Run, new: Run) -> ReplayDiff:
    """Pair the two runs' incidents by key and overlapping time, in opening order."""
    unmatched = list(new.incidents)
    pairs: list[Pair] = []
    for old in baseline.incidents:
        partner = next((n for n in unmatched if _overlap(old, n, baseline.end)), None)
        if partner is not None:
            unmatched.remove(partner)
        pairs.append(Pair(old, partner))
    pairs.extend(Pair(None, n) for n in unmatched)
    pairs.sort(key=lambda pair: pair.opened_at)
    return ReplayDiff(baseline, new, tuple(pairs))


def _overlap(one: Replayed, other: Replayed, end: float) -> bool:
    if one.key != other.key:
        return False
    one_end = end if one.closed_at is None else one.closed_at
    other_end = end if other.closed_at is None else other.closed_at
    return one.opened_at <= other_end and other.opened_at <= one_end
