"""Approvals on the real daemon: quorum, the same person once, rejection and expiry.

The sandbox and `watchdog run` with the songnodes policy (time compressed
tenfold) and a people file in WATCHDOG_PEOPLE. Redis going down is P2 and its
plan (start redis, a risky step on a stateful service) needs two distinct team
members by the policy's authority matrix; decisions come through the API and the
CLI, and the daemon's own tick acts on them.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.approvals_fixtures import Crew, write_crew
from tests.integration.daemon_stage import Stage, songnodes_variant, staged_daemon
from tests.integration.test_cli_and_bad_targets import run_cli
from watchdog.demo import POLICY, wait_for

pytestmark = pytest.mark.slow

STATEFUL = "stateful_service_failure"


@contextmanager
def approval_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: Path = POLICY
) -> Iterator[tuple[Stage, Crew]]:
    crew = write_crew(tmp_path)
    monkeypatch.setenv("WATCHDOG_PEOPLE", str(crew.path))
    with staged_daemon(tmp_path, policy) as stage:
        yield stage, crew


def redis_down(stage: Stage) -> dict[str, Any]:
    known = stage.inject("crash", service="redis")
    incident = stage.follow(known, ("awaiting_approval", "escalated"), scenario=STATEFUL)
    assert incident["state"] == "awaiting_approval", incident
    return incident


def post(
    stage: Stage, crew: Crew, incident: int, who: str, decision: str = "approve", comment: str = ""
) -> httpx.Response:
    return httpx.post(
        f"{stage.url}/api/incidents/{incident}/{decision}",
        json={"comment": comment},
        headers={"Authorization": f"Bearer {crew.tokens[who]}"},
        timeout=10,
    )


def cli(stage: Stage, crew: Crew, *args: str) -> subprocess.CompletedProcess[str]:
    """A `watchdog` command on the daemon's journal (and, to decide, its people file)."""
    people = ["--people", str(crew.path)] if args[0] in ("approve", "reject") else []
    return run_cli(*args, "--state", str(stage.folder / "journal.db"), *people)


def ticks(stage: Stage) -> int:
    return int(httpx.get(stage.url + "/healthz", timeout=5).json()["ticks"])


def test_two_distinct_team_members_approve_and_the_same_one_counts_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with approval_stage(tmp_path, monkeypatch) as (stage, crew):
        incident = redis_down(stage)
        number = incident["id"]
        assert stage.metric("watchdog_approvals_pending") == 1
        assert post(stage, crew, number, "tara", comment="redis data is safe").status_code == 200
        twice = post(stage, crew, number, "tara")
        assert twice.status_code == 409 and "counts once" in twice.json()["detail"]
        assert post(stage, crew, number, "lee").status_code == 403  # a lead, not team
        seen = ticks(stage)
        wait_for(lambda: ticks(stage) >= seen + 3, 10, "three daemon ticks")
        (still,) = [i for i in stage.incidents() if i["id"] == number]
        assert still["state"] == "awaiting_approval", "one person is no quorum"
        assert not stage.stack.service("redis")["running"]

        second = cli(stage, crew, "approve", str(number), "--as", "tom")
        assert second.returncode == 0, second.stderr
        assert "tom (team) approved; 2 of 2 distinct team approvals" in second.stdout

        done = stage.follow(set(), ("resolved", "closed", "escalated"), scenario=STATEFUL)
        assert done["id"] == number and done["state"] == "resolved", done["timeline"]
        assert stage.stack.service("redis")["running"]
        summaries = [e["summary"] for e in done["timeline"]]
        assert "tara (team) approved: redis data is safe" in summaries
        assert "tom (team) approved" in summaries
        assert any("approved by tara, tom (team)" in s for s in summaries), summaries
        assert stage.metric("watchdog_approvals_total", decision="approve") == 1  # the API's
        assert stage.metric("watchdog_approvals_pending") == 0

        shown = cli(stage, crew, "incidents", "show", str(number))
        assert "Approvals (2)" in shown.stdout and "tara (team) approve" in shown.stdout
        late = cli(stage, crew, "approve", str(number), "--as", "lena")
        assert late.returncode == 1 and "not waiting for an approval" in late.stderr


def test_a_rejection_escalates_and_the_cli_names_what_is_wrong(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with approval_stage(tmp_path, monkeypatch) as (stage, crew):
        number = redis_down(stage)["id"]
        no_reason = cli(stage, crew, "reject", str(number), "--as", "tara")
        assert no_reason.returncode == 2 and "--comment" in no_reason.stderr
        stranger = cli(stage, crew, "approve", str(number), "--as", "mallory")
        assert stranger.returncode == 2 and "no person named 'mallory'" in stranger.stderr
        missing = cli(stage, crew, "approve", "999", "--as", "tara")
        assert missing.returncode == 2 and "no incident 999" in missing.stderr
        lead = cli(stage, crew, "approve", str(number), "--as", "lee")
        assert lead.returncode == 1 and "needs a team" in lead.stderr

        rejected = cli(stage, crew, "reject", str(number), "--as", "tara", "--comment", "wait")
        assert rejected.returncode == 0, rejected.stderr
        done = stage.follow(set(), ("escalated",), scenario=STATEFUL)
        summaries = [e["summary"] for e in done["timeline"]]
        assert any("rejected by tara (team): wait" in s for s in summaries), summaries
        assert not stage.stack.service("redis")["running"]
        shown = cli(stage, crew, "incidents", "show", str(number)).stdout
        assert "tara (team) reject: wait" in shown and "plan rejected" in shown


def test_an_approval_that_expires_escalates_and_is_on_the_timeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = songnodes_variant(tmp_path, lambda d: d["guards"].update(approval_expires="20s"))
    with approval_stage(tmp_path, monkeypatch, policy) as (stage, crew):
        number = redis_down(stage)["id"]
        assert post(stage, crew, number, "tara").status_code == 200  # one of two: no quorum
        done = stage.follow(set(), ("escalated",), scenario=STATEFUL)
        kinds = [(e["kind"], e["summary"]) for e in done["timeline"]]
        assert any(
            "awaiting_approval → expired" in s and "no approval within 2 s" in s for _, s in kinds
        ), kinds
        assert any("approval expired" in s for _, s in kinds), kinds
        assert not stage.stack.service("redis")["running"]
        assert post(stage, crew, number, "tom").status_code == 409
        shown = cli(stage, crew, "incidents", "show", str(number)).stdout
        assert "expired" in shown and "no approval within" in shown
        assert stage.metric("watchdog_approvals_total", decision="expire") == 1
