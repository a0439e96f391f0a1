"""Every move of the incident lifecycle, decided by the pure core: no I/O, no clock."""

from __future__ import annotations

from dataclasses import replace

import pytest

from watchdog.model import AuthMode, Authorization, Plan, Risk, Step
from watchdog.policy import moves
from watchdog.policy.guards import GuardFacts
from watchdog.policy.lifecycle import Lifecycle
from watchdog.policy.schema import GuardSpec

NOW = 10_000.0
GUARDS = GuardSpec()


def plan(mode: AuthMode = AuthMode.AUTO, *, steps: int = 2, quorum: int = 1) -> Plan:
    return Plan(
        scenario="service_failure",
        title="restart rest-api",
        steps=tuple(
            Step(f"step {i}", "service.restart", Risk.SAFE, (("services", ("rest-api",)),))
            for i in range(steps)
        ),
        checklist=(),
        verify_for_seconds=30.0,
        verify_timeout_seconds=120.0,
        authorization=Authorization(
            mode,
            f"{mode.value} by policy",
            role="oncall" if mode is AuthMode.APPROVAL else None,
            quorum=quorum if mode is AuthMode.APPROVAL else 0,
        ),
        reason="rest-api down",
    )


def incident(state: str, the_plan: Plan | None = None, **changes: object) -> moves.Incident:
    base = moves.Incident(
        key="service_failure/rest-api",
        state=state,
        plan=the_plan if the_plan is not None else plan(),
        next_rung=None,
        entered_at=NOW - 10,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def switches(**facts: object) -> moves.Switches:
    base = GuardFacts(
        paused=False,
        actions_last_hour=0,
        last_action_at={},
        evidence_age_seconds=1.0,
        evidence_max_age_seconds=60.0,
    )
    dry_run = bool(facts.pop("dry_run", False))
    has_preflight = bool(facts.pop("has_preflight", False))
    return moves.Switches(GUARDS, replace(base, **facts), dry_run, has_preflight)  # type: ignore[arg-type]


def triggers(decision: moves.Decision) -> list[str]:
    return [m.trigger for m in decision.moves]


def legal(state: str, decision: moves.Decision) -> str:
    """Every decision is a legal walk through the lifecycle; returns where it ends."""
    for move in decision.moves:
        state = Lifecycle(state).move(move.trigger)
    return state


# ---- how a plan starts ----------------------------------------------------------


def test_a_plan_with_guards_passing_executes_and_charges_the_budget() -> None:
    decision = moves.decide(incident("triaged"), moves.PlanReady(), switches(), NOW)
    assert triggers(decision) == ["execute"]
    assert decision.work is moves.Work.RUN and decision.start == 0
    assert decision.count_budget and "guards pass" in decision.note


def test_a_dry_run_plan_executes_without_charging_the_budget() -> None:
    decision = moves.decide(incident("triaged"), moves.PlanReady(), switches(dry_run=True), NOW)
    assert triggers(decision) == ["execute"] and not decision.count_budget


@pytest.mark.parametrize(
    ("facts", "words"),
    [
        ({"paused": True}, "paused"),
        ({"actions_last_hour": 10}, "hourly budget spent"),
        ({"last_action_at": {"rest-api": NOW - 5}}, "cooldown"),
        ({"evidence_age_seconds": 600.0}, "stale"),
    ],
)
def test_a_guard_that_refuses_escalates_with_its_reason(
    facts: dict[str, object], words: str
) -> None:
    decision = moves.decide(incident("triaged"), moves.PlanReady(), switches(**facts), NOW)
    assert triggers(decision) == ["escalate"] and words in decision.reason
    assert decision.work is moves.Work.NOTHING and decision.note_kind == "guards"


def test_a_plan_touching_a_protected_service_is_never_run_automatically() -> None:
    decision = moves.decide(
        incident("triaged", protected=("postgres",)), moves.PlanReady(), switches(), NOW
    )
    assert triggers(decision) == ["escalate"] and "postgres is protected" in decision.reason


def test_no_steps_or_never_only_notifies() -> None:
    empty = moves.decide(incident("triaged", plan(steps=0)), moves.PlanReady(), switches(), NOW)
    never = moves.decide(
        incident("triaged", plan(AuthMode.NEVER)), moves.PlanReady(), switches(), NOW
    )
    assert triggers(empty) == ["notify_only"] == triggers(never)


def test_a_plan_needing_approval_asks_or_checks_first() -> None:
    asked = moves.decide(
        incident("triaged", plan(AuthMode.APPROVAL)), moves.PlanReady(), switches(), NOW
    )
    checked = moves.decide(
        incident("triaged", plan(AuthMode.APPROVAL)),
        moves.PlanReady(),
        switches(has_preflight=True),
        NOW,
    )
    assert triggers(asked) == ["request_approval"]
    assert triggers(checked) == [] and checked.work is moves.Work.PREFLIGHT


def test_a_blocked_preflight_escalates_and_a_clean_one_asks() -> None:
    waiting = incident("triaged", plan(AuthMode.APPROVAL))
    blocked = moves.decide(waiting, moves.PreflightDone("no backup"), switches(), NOW)
    clean = moves.decide(waiting, moves.PreflightDone(None), switches(), NOW)
    assert triggers(blocked) == ["escalate"] and "no backup" in blocked.reason
    assert triggers(clean) == ["request_approval"]


# ---- a plan ends ----------------------------------------------------------------------


def test_a_plan_that_ran_goes_to_verification() -> None:
    decision = moves.decide(
        incident("executing"), moves.PlanFinished(True, "ran 2 steps"), switches(), NOW
    )
    assert triggers(decision) == ["verify"] and decision.work is moves.Work.VERIFY


def test_a_failed_plan_climbs_the_ladder_in_one_decision() -> None:
    decision = moves.decide(
        incident("executing", next_rung="service_revert"),
        moves.PlanFinished(False, "restart failed"),
        switches(),
        NOW,
    )
    assert triggers(decision) == ["fail", "next_rung"]
    assert decision.climb == "service_revert" and decision.work is moves.Work.REPLAN
    assert legal("executing", decision) == "triaged"


def test_a_failed_plan_at_the_top_of_the_ladder_fails_and_escalates_together() -> None:
    decision = moves.decide(
        incident("executing"),
        moves.PlanFinished(False, "step 3 failed", compensated=("started enrichment-worker",)),
        switches(),
        NOW,
    )
    assert triggers(decision) == ["fail", "escalate"]
    assert "put back: started enrichment-worker" in decision.reason
    assert legal("executing", decision) == "escalated"


def test_a_blocked_plan_changed_nothing_and_never_climbs() -> None:
    decision = moves.decide(
        incident("executing", next_rung="service_revert"),
        moves.PlanFinished(False, "refused", blocked="no last known good snapshot"),
        switches(),
        NOW,
    )
    assert triggers(decision) == ["fail", "escalate"]
    assert "nothing was changed" in decision.reason


def test_a_compensation_that_failed_pages_what_is_still_down() -> None:
    decision = moves.decide(
        incident("executing", next_rung="service_revert"),
        moves.PlanFinished(False, "failed", compensation_failed=("enrichment-worker",)),
        switches(),
        NOW,
    )
    assert triggers(decision) == ["fail", "escalate"] and "NOT put back" in decision.reason


def test_a_plan_ending_after_a_human_closed_it_moves_nothing() -> None:
    decision = moves.decide(incident("closed"), moves.PlanFinished(True, "ran"), switches(), NOW)
    assert decision == moves.HOLD


# ---- verification -----------------------------------------------------------------------


def test_verification_holds_then_resolves_then_times_out() -> None:
    verifying = incident("verifying")
    young = moves.Checklist(True, "ok", started=NOW - 5, passing_since=NOW - 5)
    held = moves.Checklist(True, "ok", started=NOW - 40, passing_since=NOW - 31)
    failing = moves.Checklist(False, "rest-api down", started=NOW - 121, passing_since=None)
    assert moves.decide(verifying, young, switches(), NOW) == moves.HOLD
    resolved = moves.decide(verifying, held, switches(), NOW)
    assert triggers(resolved) == ["resolve"] and resolved.moves[0].closed
    timed_out = moves.decide(verifying, failing, switches(), NOW)
    assert triggers(timed_out) == ["fail", "escalate"] and "did not hold" in timed_out.reason


def test_a_checklist_that_does_not_move_gives_the_plan_up_before_its_timeout() -> None:
    """give_up: steps that changed nothing the rule sees climb or page, not wait 10 min."""
    stuck_plan = replace(plan(), verify_timeout_seconds=600.0, give_up_seconds=30.0)
    verifying = incident("verifying", stuck_plan)
    reading = "NOT YET: no service down: 1 (needs == 0)"

    def at(unchanged_for: float) -> moves.Checklist:
        return moves.Checklist(False, reading, NOW - 40, None, unchanged_since=NOW - unchanged_for)

    assert moves.decide(verifying, at(29), switches(), NOW) == moves.HOLD  # still moving lately
    paged = moves.decide(verifying, at(31), switches(), NOW)
    assert triggers(paged) == ["fail", "escalate"], paged
    assert "unchanged for 31 s" in paged.reason and "give_up 30 s" in paged.reason
    assert "10 min timeout" in paged.reason and reading in paged.reason
    climbed = moves.decide(replace(verifying, next_rung="revert"), at(31), switches(), NOW)
    assert triggers(climbed) == ["fail", "next_rung"] and climbed.climb == "revert"
    # Without give_up (or with one past the timeout) the plan waits out its timeout.
    for patient in (None, 900.0):
        waiting = incident("verifying", replace(stuck_plan, give_up_seconds=patient))
        assert moves.decide(waiting, at(500), switches(), NOW) == moves.HOLD
    passing = moves.Checklist(True, "ok", NOW - 40, NOW - 1, unchanged_since=None)
    assert moves.decide(verifying, passing, switches(), NOW) == moves.HOLD


# ---- approvals ---------------------------------------------------------------------------


def vote(person: str, decision: str = "approve", *, digest: str = "d1", at: float = NOW - 1):
    return moves.Vote(person, "oncall", decision, digest, at, "because")


def test_votes_count_only_for_the_plan_as_shown_and_since_asked() -> None:
    waiting = incident("awaiting_approval", plan(AuthMode.APPROVAL, quorum=2))
    votes = (
        vote("ana"),
        vote("ana"),  # the same person twice counts once
        vote("bo", digest="an-older-plan"),
        vote("cy", at=NOW - 100),  # before approval was asked (entered_at = NOW - 10)
    )
    assert moves.decide(waiting, moves.Votes(votes, "d1"), switches(), NOW) == moves.HOLD
    enough = moves.decide(waiting, moves.Votes((*votes, vote("dee")), "d1"), switches(), NOW)
    assert triggers(enough) == ["approve", "execute"] and enough.work is moves.Work.RUN
    assert "ana, dee" in enough.moves[0].reason


def test_a_rejection_escalates_in_one_decision() -> None:
    waiting = incident("awaiting_approval", plan(AuthMode.APPROVAL))
    decision = moves.decide(
        waiting, moves.Votes((vote("ana", "reject"),), "d1"), switches(), NOW
    )
    assert triggers(decision) == ["reject", "escalate"] and "because" in decision.moves[0].reason


def test_an_approval_while_paused_waits_for_resume() -> None:
    waiting = incident("awaiting_approval", plan(AuthMode.APPROVAL))
    decision = moves.decide(waiting, moves.Votes((vote("ana"),), "d1"), switches(paused=True), NOW)
    assert triggers(decision) == ["approve"] and decision.work is moves.Work.NOTHING
    held = moves.decide(
        incident("approved", plan(AuthMode.APPROVAL)), moves.Votes((), "d1"),
        switches(paused=True), NOW,
    )
    assert held == moves.HOLD
    resumed = moves.decide(
        incident("approved", plan(AuthMode.APPROVAL)), moves.Votes((), "d1"), switches(), NOW
    )
    assert triggers(resumed) == ["execute"]


def test_an_unanswered_request_expires_and_escalates() -> None:
    waiting = incident("awaiting_approval", plan(AuthMode.APPROVAL), entered_at=NOW - 1801)
    decision = moves.decide(waiting, moves.Votes((), "d1"), switches(), NOW)
    assert triggers(decision) == ["expire", "escalate"]


# ---- a restart is a new decision ---------------------------------------------------------


def test_restart_in_every_non_final_state_has_an_answer() -> None:
    """No state wedges: each one not final moves, re-plans, verifies or is watched by a tick."""
    watched = {"awaiting_approval", "escalated", "notified"}
    for state in ("detected", "triaged", "failed", "rejected", "expired", "approved",
                  "verifying", "executing", *watched):
        decision = moves.decide(incident(state), moves.Restarted(), switches(), NOW)
        acted = decision.moves or decision.work is not moves.Work.NOTHING
        assert acted or state in watched, state
        legal(state, decision)
    for state in ("failed", "rejected", "expired"):
        decision = moves.decide(incident(state), moves.Restarted(), switches(), NOW)
        assert legal(state, decision) == "escalated"


def test_a_non_idempotent_step_in_flight_is_unknown_and_escalates() -> None:
    decision = moves.decide(
        incident("executing"), moves.Restarted(in_flight=("restore", False)), switches(), NOW
    )
    assert triggers(decision) == ["fail", "escalate"] and decision.mark_unknown


def test_an_automatic_plan_resumes_at_its_next_step_only_if_the_guards_pass() -> None:
    interrupted = moves.Restarted(in_flight=("step 1", True), next_step=1)
    resumed = moves.decide(incident("executing"), interrupted, switches(), NOW)
    assert resumed.work is moves.Work.RUN and resumed.start == 1 and resumed.mark_unknown
    assert not resumed.count_budget  # charged once, when it started
    paused = moves.decide(incident("executing"), interrupted, switches(paused=True), NOW)
    assert triggers(paused) == ["escalate"] and "paused" in paused.reason
    dry = moves.decide(incident("executing"), interrupted, switches(dry_run=True), NOW)
    assert triggers(dry) == ["escalate"] and "dry" in dry.reason


def test_a_resume_waits_for_fresh_evidence_then_pages_on_stale() -> None:
    stale = switches(evidence_age_seconds=600.0)
    early = moves.Restarted(next_step=1, evidence_fresh=False, uptime=5.0)
    late = replace(early, uptime=GUARDS.resume_grace + 1)
    assert moves.decide(incident("executing"), early, stale, NOW).work is moves.Work.NOTHING
    assert triggers(moves.decide(incident("executing"), early, stale, NOW)) == []
    assert triggers(moves.decide(incident("executing"), late, stale, NOW)) == ["escalate"]


def test_a_plan_that_ran_on_a_humans_authority_asks_again_after_a_restart() -> None:
    approved = incident("executing", plan(AuthMode.APPROVAL))
    manual = incident("executing", key="manual/database/1700000000000")
    for which in (approved, manual):
        decision = moves.decide(which, moves.Restarted(next_step=1), switches(), NOW)
        assert triggers(decision) == ["reapprove"] and "fresh approval" in decision.reason
        assert legal("executing", decision) == "awaiting_approval"


def test_a_failed_or_finished_rung_is_read_from_its_own_steps() -> None:
    failed = moves.decide(
        incident("executing", next_rung="service_revert"),
        moves.Restarted(failed_step="restart"),
        switches(),
        NOW,
    )
    assert triggers(failed) == ["fail", "next_rung"]
    done = moves.decide(incident("executing"), moves.Restarted(next_step=2), switches(), NOW)
    assert triggers(done) == ["verify"]


def test_cleared_findings_close_a_notice_and_resolve_an_escalation() -> None:
    closed = moves.decide(incident("notified"), moves.FindingsCleared(), switches(), NOW)
    resolved = moves.decide(incident("escalated"), moves.FindingsCleared(), switches(), NOW)
    assert triggers(closed) == ["close"] and triggers(resolved) == ["resolve"]
    assert moves.decide(incident("executing"), moves.FindingsCleared(), switches(), NOW) == (
        moves.HOLD
    )


def test_a_restart_that_finds_no_plan_escalates_by_legal_moves() -> None:
    for state in ("executing", "approved", "verifying", "failed"):
        decision = moves.decide(
            replace(incident(state), plan=None), moves.Restarted(), switches(), NOW
        )
        assert legal(state, decision) == "escalated", state
        assert "no plan in the journal" in decision.reason
