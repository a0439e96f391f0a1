"""`watchdog replay`: a recorded history through another policy, and where decisions differ.

Reads the observations the daemon journaled (`watchdog.engine.recording`), then runs
them through two policies in the pure core (`watchdog.policy.replay`): the new one, and
the baseline, which is the policy the journal's daemon last ran (recorded at its start)
unless `--baseline FILE` names another. Both go through the same simulation so that a
difference is one of policy, not of simulation against what the world did (see
`watchdog.policy.replay`). Every error names the bad input: the time that does not
parse, the journal with nothing recorded yet (and since when recording exists).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from watchdog.engine.recording import POLICY_FLAG, RECORDING_SINCE_FLAG, TIME_SCALE_FLAG
from watchdog.model import Observation
from watchdog.policy.replay import horizon_for, simulate
from watchdog.policy.replaydiff import ReplayDiff, compare
from watchdog.policy.scaling import compress_time
from watchdog.policy.schema import Policy
from watchdog.policyfile import load_policy
from watchdog.store.journal import open_journal
from watchdog.store.observations import RECORDING_SINCE_VERSION
from watchdog.store.pg_base import is_pg_url, masked
from watchdog.store.render import iso_utc


class ReplayInput(ValueError):
    """Bad input to replay (exit 2): the message names it."""


@dataclass(frozen=True, slots=True)
class Recorded:
    """What replay reads from a journal, read in one go and closed."""

    observations: list[Observation]
    baseline: Policy | None
    start: float
    end: float


def parse_time(text: str, option: str) -> float:
    """An ISO 8601 time (UTC when it names no zone) or Unix seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ReplayInput(
            f"{option} {text!r} does not parse: expected an ISO 8601 time such as "
            "2026-12-04T03:00:00Z (UTC when it names no zone) or Unix seconds"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def read_recorded(
    journal_url: str, since: str | None, until: str | None, policies: list[Policy]
) -> Recorded:
    """The policy as run, and the observations of [since, until] with the history before
    it that the policies' windows read (the longest horizon among them)."""
    place = require_journal(journal_url)
    start_at = parse_time(since, "--from") if since is not None else None
    end_at = parse_time(until, "--to") if until is not None else None
    if start_at is not None and end_at is not None and end_at <= start_at:
        raise ReplayInput(f"--to {until} is not after --from {since}")
    journal = open_journal(journal_url)
    try:
        count, first, last = journal.observation_span()
        if count == 0 or first is None or last is None:
            recording = journal.get_flag(RECORDING_SINCE_FLAG)
            when = (
                f"recording exists on it since {iso_utc(float(recording))}, and nothing "
                "has been kept yet (or all was pruned: WATCHDOG_OBSERVATIONS_RETENTION)"
                if recording is not None
                else "no daemon that records observations (watchdog with journal schema "
                f"version {RECORDING_SINCE_VERSION} or later) has run on it yet"
            )
            raise ReplayInput(f"journal {place} has no observations recorded: {when}")
        start = first if start_at is None else start_at
        end = last if end_at is None else end_at
        if end < first or start > last:
            raise ReplayInput(
                f"journal {place} holds observations from {iso_utc(first)} to "
                f"{iso_utc(last)}, none between {iso_utc(start)} and {iso_utc(end)}"
            )
        flag = journal.get_flag(POLICY_FLAG)
        baseline = Policy.model_validate_json(flag) if flag is not None else None
        horizon = max(horizon_for(p) for p in [*policies, *([baseline] if baseline else [])])
        observations = journal.observations(since=start - horizon, until=end)
    finally:
        journal.close()
    return Recorded(observations, baseline, start, end)


def replay(
    journal_url: str,
    policy_file: str,
    *,
    baseline_file: str | None = None,
    since: str | None = None,
    until: str | None = None,
    time_scale: float | None = None,
) -> tuple[ReplayDiff, str]:
    """The two runs compared, and the header line that says what was replayed.

    Without `time_scale`, the policies run at the scale the journal's daemon ran its own
    (a drill or demo journal recorded at WATCHDOG_TIME_SCALE=10 weighs each `for` a
    tenth), so a new policy is not judged on durations ten times its baseline's."""
    scale = recorded_time_scale(journal_url) if time_scale is None else time_scale
    new = compress_time(load_policy(policy_file), scale)
    given = compress_time(load_policy(baseline_file), scale) if baseline_file else None
    recorded = read_recorded(journal_url, since, until, [new, *([given] if given else [])])
    baseline = given or recorded.baseline
    if baseline is None:
        raise ReplayInput(
            f"journal {journal_url}: no policy recorded as run (its daemon predates "
            "recording); name the baseline with --baseline FILE"
        )
    began = time.perf_counter()
    old_run = simulate(baseline, recorded.observations, start=recorded.start, end=recorded.end)
    new_run = simulate(new, recorded.observations, start=recorded.start, end=recorded.end)
    took = time.perf_counter() - began
    named = baseline_file or "the policy as the journal's daemon last ran it"
    header = (
        f"replayed {iso_utc(recorded.start)} → {iso_utc(recorded.end)}: "
        f"{new_run.fed} observations, {new_run.ticks} ticks of {new_run.tick_seconds:g} s, "
        f"in {took:.1f} s\nbaseline: {named}; new: {policy_file}"
    )
    if time_scale is None and scale != 1.0:
        header += (f"\nat time scale {scale:g}, as the journal's daemon ran "
                   "(--time-scale 1 to weigh the new policy's durations as written)")
    return compare(old_run, new_run), header


def require_journal(journal_url: str) -> str:
    """How to name the journal; a SQLite file that is not there is refused, not made."""
    place = masked(journal_url) if is_pg_url(journal_url) else journal_url
    if not is_pg_url(journal_url) and not Path(journal_url.removeprefix("sqlite:///")).is_file():
        raise ReplayInput(f"--journal {place}: no such journal file")
    return place


def recorded_time_scale(journal_url: str) -> float:
    """The time scale the journal's daemon last ran at (1 when it did not say)."""
    require_journal(journal_url)
    journal = open_journal(journal_url)
    try:
        flag = journal.get_flag(TIME_SCALE_FLAG)
    finally:
        journal.close()
    try:
        return float(flag) if flag else 1.0
    except ValueError:
        return 1.0


def replay_command(
    journal_url: str,
    policy_file: str,
    *,
    baseline_file: str | None = None,
    since: str | None = None,
    until: str | None = None,
    time_scale: float | None = None,
) -> int:
    """Print the differences, incident by incident, and the summary; 0 once replayed."""
    diff, header = replay(
        journal_url, policy_file, baseline_file=baseline_file, since=since, until=until,
        time_scale=time_scale,
    )
    print(header)
    print(diff.text(iso_utc))
    return 0
