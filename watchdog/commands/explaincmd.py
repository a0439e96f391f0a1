"""`watchdog explain ID`: the chain from observations to verification, with near misses.

Reads the journal and, with `--policy`, the policy file twice: validated (to weigh the
rules) and composed (for the line each rule, scenario, signal and authority row is
written on). A policy that no longer loads is said in one line and the incident is
still explained from the journal alone: the record must stay explainable after the
policy moved on.
"""

from __future__ import annotations

import sys

from watchdog.policy.explainvalues import Explanation, PolicyPlaces
from watchdog.policy.scaling import compress_time
from watchdog.policy.schema import Policy
from watchdog.policyfile import PolicyError, load_policy
from watchdog.policymarks import policy_places
from watchdog.store.explainfacts import read_explanation
from watchdog.store.journal import open_journal


def explain_command(
    state: str, incident_id: int, policy_file: str | None, time_scale: float = 1.0
) -> int:
    """Print the explanation; 0 when explained, KeyError (exit 2) for an unknown ID."""
    policy, places, problem = _policy(policy_file, time_scale)
    journal = open_journal(state)
    try:
        explanation = read_explanation(journal, incident_id, policy, places)
    finally:
        journal.close()
    if problem:
        print(f"watchdog explain: {problem}", file=sys.stderr)
        explanation = _noted(explanation, problem)
    print(explanation.text())
    return 0


def _policy(
    path: str | None, time_scale: float
) -> tuple[Policy | None, PolicyPlaces | None, str]:
    if path is None:
        return None, None, ""
    try:
        policy = compress_time(load_policy(path), time_scale)
    except PolicyError as error:
        first = str(error).splitlines()[0] if str(error) else path
        return None, None, f"the policy {path} does not load ({first}): explaining from " \
            "the journal alone"
    return policy, policy_places(path, policy), ""


def _noted(explanation: Explanation, problem: str) -> Explanation:
    from dataclasses import replace

    return replace(explanation, notes=(problem, *explanation.notes))
