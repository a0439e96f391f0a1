"""A crew of people with real hashed tokens, and journals with incidents awaiting approval.

The in-process app is the daemon's own (`create_app`) over a real SQLite journal
and a real people file; the incidents carry the plans songnodes.yaml makes for
them, so their authorisation (role, quorum) is the policy's, not made up here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from tests.served import served
from watchdog.api.app import create_app
from watchdog.demo import POLICY
from watchdog.engine.health import Health
from watchdog.metrics import Metrics
from watchdog.model import Severity
from watchdog.people import People, add_person, new_token
from watchdog.policy.planner import plan_for
from watchdog.policy.schema import Policy
from watchdog.policyfile import load_policy
from watchdog.store.journal import Journal, open_journal

ROLES = {
    "olga": ["oncall"],
    "lee": ["lead"],
    "tara": ["team"],
    "tom": ["team"],
    "lena": ["lead", "team"],
}

PLANS = {
    # scenario: (severity, subject, params) — the needed role and quorum come from the policy.
    "database_unavailable": (Severity.P0, "postgres", {}),
    "database_migration_failure": (Severity.P1, "database", {}),
    "stateful_service_failure": (
        Severity.P2,
        "redis",
        {"service": "redis", "health_signal": "redis_reachable"},
    ),
}


@dataclass(frozen=True)
class Crew:
    path: Path
    tokens: dict[str, str]


def write_crew(folder: Path) -> Crew:
    path = folder / "people.yaml"
    tokens = {}
    for name, roles in ROLES.items():
        tokens[name] = new_token()
        add_person(path, name, roles, tokens[name])
    return Crew(path, tokens)


def awaiting(journal: Journal, policy: Policy, scenario: str, *, reason: str = "") -> int:
    """An open incident of `scenario` whose policy plan waits for approval."""
    severity, subject, params = PLANS[scenario]
    now = time.time()
    incident = journal.open_incident(
        key=f"{scenario}/{subject}/{now}",
        severity=severity,
        scenario=scenario,
        subject=subject,
        state="triaged",
        reason=reason or f"{severity} {scenario} seen on {subject}",
        at=now,
        findings=[],
    )
    plan = plan_for(
        policy, scenario=scenario, severity=severity, subject=subject, params=params, why="test"
    )
    journal.save_plan(incident, plan, at=now)
    journal.set_state(incident, state="awaiting_approval", at=now, reason=plan.authorization.reason)
    return incident


@dataclass
class Api:
    client: httpx.Client
    journal: Journal
    policy: Policy
    crew: Crew
    app: FastAPI
    metrics: Metrics

    def bearer(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.crew.tokens[name]}"}


@pytest.fixture(scope="module")
def crew(tmp_path_factory: pytest.TempPathFactory) -> Crew:
    return write_crew(tmp_path_factory.mktemp("crew"))


@pytest.fixture
def api(tmp_path: Path, crew: Crew) -> Iterator[Api]:
    policy = load_policy(POLICY)
    journal = open_journal(str(tmp_path / "journal.db"))
    metrics = Metrics.for_policy(policy)
    app = create_app(
        journal,
        metrics,
        Health(started_at=time.time()),
        time.time,
        people=People(crew.path, policy.roles),
    )
    with served(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        yield Api(client, journal, policy, crew, app, metrics)
    journal.close()
