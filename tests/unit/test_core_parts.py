"""Authorisation matrix, lifecycle, planner, guards, checklist and the waterfall arithmetic."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.helpers import ROOT, songnodes
from watchdog.model import AuthMode, Check, Observation, Risk, Severity, Step
from watchdog.policy.authorize import authorize_plan, authorize_step
from watchdog.policy.configrows import disable_provider, providers_of
from watchdog.policy.guards import GuardFacts, assess_guards
from watchdog.policy.lifecycle import STATES, IllegalTransition, Lifecycle, next_state
from watchdog.policy.planner import plan_for
from watchdog.policy.scaling import compress_time
from watchdog.policy.verify import assess
from watchdog.policy.windows import Windows

# ---- the authorisation matrix, every cell ------------------------------------

MATRIX = [
    (Severity.P0, Risk.SAFE, AuthMode.AUTO, None, 0),
    (Severity.P0, Risk.RISKY, AuthMode.APPROVAL, "oncall", 1),
    (Severity.P0, Risk.DESTRUCTIVE, AuthMode.APPROVAL, "oncall", 1),
    (Severity.P1, Risk.SAFE, AuthMode.AUTO, None, 0),
    (Severity.P1, Risk.RISKY, AuthMode.APPROVAL, "lead", 1),
    (Severity.P1, Risk.DESTRUCTIVE, AuthMode.NEVER, None, 0),
    (Severity.P2, Risk.SAFE, AuthMode.AUTO, None, 0),
    (Severity.P2, Risk.RISKY, AuthMode.APPROVAL, "team", 2),
    (Severity.P2, Risk.DESTRUCTIVE, AuthMode.NEVER, None, 0),
    (Severity.P3, Risk.SAFE, AuthMode.NEVER, None, 0),
    (Severity.P3, Risk.RISKY, AuthMode.NEVER, None, 0),
    (Severity.P3, Risk.DESTRUCTIVE, AuthMode.NEVER, None, 0),
]


@pytest.mark.parametrize(("severity", "risk", "mode", "role", "quorum"), MATRIX)
def test_authority_matrix(
    severity: Severity, risk: Risk, mode: AuthMode, role: str | None, quorum: int
) -> None:
    decision = authorize_step(severity, risk, songnodes().authority)
    assert (decision.mode, decision.role, decision.quorum) == (mode, role, quorum)
    assert f"{risk} steps of a {severity} " in decision.reason
    # A step that runs unasked does not quote the rule for the approvals it does not need.
    assert ("runbook" in decision.reason) is (mode is not AuthMode.AUTO)


def test_a_plan_is_as_strict_as_its_strictest_step() -> None:
    steps = [
        Step("stop services", "service.stop", Risk.SAFE),
        Step("restore backup", "database.restore", Risk.RISKY),
    ]
    decision = authorize_plan(Severity.P1, steps, songnodes().authority)
    assert decision.mode is AuthMode.APPROVAL and decision.role == "lead"
    assert "'restore backup' is risky" in decision.reason


# ---- lifecycle -----------------------------------------------------------------


def test_the_happy_path_and_the_approval_path() -> None:
    assert [
        next_state(s, t)
        for s, t in [
            ("detected", "triage"),
            ("triaged", "execute"),
            ("executing", "verify"),
            ("verifying", "resolve"),
        ]
    ] == ["triaged", "executing", "verifying", "resolved"]
    life = Lifecycle("triaged")
    for trigger, state in [
        ("request_approval", "awaiting_approval"),
        ("approve", "approved"),
        ("execute", "executing"),
        ("fail", "failed"),
        ("escalate", "escalated"),
    ]:
        assert life.move(trigger) == state
    assert Lifecycle("awaiting_approval").move("expire") == "expired"
    assert Lifecycle("notified").move("close") == "closed"


def test_illegal_moves_are_refused_with_the_state_named() -> None:
    with pytest.raises(IllegalTransition, match="cannot approve an incident that is expired"):
        Lifecycle("expired").move("approve")
    with pytest.raises(IllegalTransition, match="unknown incident state"):
        Lifecycle("sleeping")
    assert Lifecycle("resolved").is_final
    assert not Lifecycle("resolved").can("execute")


@given(
    st.sampled_from(STATES),
    st.lists(
        st.sampled_from(
            [
                "triage",
                "execute",
                "request_approval",
                "approve",
                "reject",
                "expire",
                "notify_only",
                "verify",
                "resolve",
                "fail",
                "escalate",
                "retriage",
                "close",
            ]
        ),
        max_size=12,
    ),
)
def test_final_states_never_move(start: str, triggers: list[str]) -> None:
    life = Lifecycle(start)
    for trigger in triggers:
        was_final = life.is_final
        if life.can(trigger):
            life.move(trigger)
            assert not was_final
    assert life.state in STATES


# ---- planner -------------------------------------------------------------------


def test_plan_fills_templates_and_assesses_impact() -> None:
    plan = plan_for(
        songnodes(),
        scenario="provider_failure",
        severity=Severity.P2,
        subject="spotify",
        params={"provider": "spotify"},
        why="P2: circuit breaker spotify 2 >= 2 for 20 s",
    )
    assert plan.title == "Disable failing provider spotify"
    assert [s.action for s in plan.steps] == [
        "provider.disable",
        "config.reload",
        "breaker.reset",
        "smoke_test",
    ]
    assert plan.steps[0].param_map()["provider"] == "spotify"
    assert plan.steps[3].param_map()["body"]["artist_name"] == "Deadmau5"
    assert plan.checklist[0].description == "spotify circuit breaker CLOSED"
    assert plan.authorization.mode is AuthMode.AUTO
    assert any("at most" in line for line in plan.impact)
    assert plan.reason.startswith("P2 provider_failure (Scenario 3, alternative")


def test_plan_names_services_it_stops_and_flags_protected_ones() -> None:
    plan = plan_for(
        songnodes(),
        scenario="database_unavailable",
        severity=Severity.P0,
        subject="",
        params={},
        why="P0: PostgreSQL reachable 0 < 1 for 15 s",
    )
    assert plan.authorization.mode is AuthMode.APPROVAL and plan.authorization.role == "oncall"
    migration = plan_for(
        songnodes(),
        scenario="database_migration_failure",
        severity=Severity.P1,
        subject="",
        params={},
        why="P1: migration failed",
    )
    assert any("data written since the backup is lost" in line for line in migration.impact)
    assert any(line.startswith("services stopped or restarted: ") for line in migration.impact)


def test_scenario_one_says_scrapers_do_not_fall_back() -> None:
    plan = plan_for(
        songnodes(),
        scenario="new_service_failure",
        severity=Severity.P2,
        subject="api-gateway-internal",
        params={},
        why="crash loop",
    )
    dependents = next(s for s in plan.steps if s.action == "service.restart_dependents")
    assert "ENRICHMENT_FALLBACK_ENABLED" in dependents.note


# ---- guards --------------------------------------------------------------------


def facts(**changes: object) -> GuardFacts:
    base: dict[str, object] = {
        "paused": False,
        "actions_last_hour": 0,
        "last_action_at": {},
        "evidence_age_seconds": 1.0,
        "evidence_max_age_seconds": 20.0,
    }
    base.update(changes)
    return GuardFacts(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "allowed", "words"),
    [
        ({}, True, "guards pass"),
        ({"paused": True}, False, "paused"),
        ({"actions_last_hour": 20}, False, "hourly budget spent: 20"),
        ({"last_action_at": {"dlq-manager": 950.0}}, False, "dlq-manager was acted on 50 s ago"),
        ({"last_action_at": {"dlq-manager": 100.0}}, True, "guards pass"),
        ({"evidence_age_seconds": 45.0}, False, "not acting on stale data"),
    ],
)
def test_guards(changes: dict[str, object], allowed: bool, words: str) -> None:
    verdict = assess_guards(songnodes().guards, facts(**changes), now=1000.0)
    assert verdict.allowed is allowed
    assert words in verdict.reason


# ---- the checklist -------------------------------------------------------------


def test_checklist_needs_fresh_passing_values_on_every_series() -> None:
    windows = Windows()
    checks = [
        Check("breakers CLOSED", "breaker_state", "<", 2),
        Check("DLQ < 100", "dlq", "<", 100),
    ]
    windows.record(Observation("breaker_state", 10, 0, series="spotify"))
    windows.record(Observation("breaker_state", 10, 2, series="musicbrainz"))
    windows.record(Observation("dlq", 10, 12))
    result = assess(checks, windows, now=11, max_age=5)
    assert not result.passed
    assert "musicbrainz 2 (needs < 2)" in result.summary and "ok: DLQ < 100" in result.summary
    windows.record(Observation("breaker_state", 12, 0, series="musicbrainz"))
    windows.record(Observation("breaker_state", 12, 0, series="spotify"))
    windows.record(Observation("dlq", 12, 12))
    assert assess(checks, windows, now=13, max_age=5).passed
    assert not assess(checks, windows, now=30, max_age=5).passed  # stale again


# ---- waterfall -----------------------------------------------------------------

ROWS = [
    {
        "metadata_field": "spotify_id",
        "enabled": True,
        "priority_1_provider": "spotify",
        "priority_1_confidence": 1.0,
        "priority_2_provider": None,
        "priority_2_confidence": None,
    },
    {
        "metadata_field": "bpm",
        "enabled": True,
        "priority_1_provider": "spotify",
        "priority_1_confidence": 0.9,
        "priority_2_provider": "beatport",
        "priority_2_confidence": 0.8,
        "priority_3_provider": "musicbrainz",
        "priority_3_confidence": 0.5,
    },
    {
        "metadata_field": "track_title",
        "enabled": True,
        "priority_1_provider": "musicbrainz",
        "priority_1_confidence": 0.9,
    },
]


def test_surgical_disable_moves_later_priorities_up_with_their_confidences() -> None:
    change = disable_provider(ROWS, "spotify", "surgical")
    by_field = {r["metadata_field"]: r for r in change.rows}
    assert by_field["bpm"]["priority_1_provider"] == "beatport"
    assert by_field["bpm"]["priority_1_confidence"] == 0.8
    assert by_field["bpm"]["priority_2_provider"] == "musicbrainz"
    assert by_field["bpm"]["priority_3_provider"] is None and by_field["bpm"]["enabled"]
    assert by_field["spotify_id"]["enabled"] is False  # nothing left to route through
    assert by_field["track_title"] == ROWS[2]
    assert [r["metadata_field"] for r in change.before] == ["spotify_id", "bpm"]
    assert change.before[1] == ROWS[1]


def test_runbook_disable_switches_off_every_row_through_the_provider() -> None:
    change = disable_provider(ROWS, "spotify", "runbook")
    assert [r["enabled"] for r in change.rows] == [False, False, True]


@given(st.sampled_from(["spotify", "beatport", "musicbrainz", "lastfm"]))
def test_no_row_routes_through_a_disabled_provider(provider: str) -> None:
    for row in disable_provider(ROWS, provider, "surgical").rows:
        assert provider not in providers_of(row) or not row["enabled"]


# ---- time compression ----------------------------------------------------------


def test_compressing_time_keeps_the_logic_and_scales_the_clock() -> None:
    policy = songnodes()
    fast = compress_time(policy, 10)
    assert fast.rules[2].for_ == policy.rules[2].for_ / 10
    assert fast.scenarios["service_failure"].verify_for == 2.0
    assert fast.scenarios["service_failure"].steps[0].timeout == 30.0  # real work is not faster
    assert [r.name for r in fast.rules] == [r.name for r in policy.rules]


# ---- purity: nothing in the core reads the clock or the network ------------------

CORE = [ROOT / "watchdog" / "model.py", *sorted((ROOT / "watchdog" / "policy").glob("*.py"))]
CLOCK_CALLS = {"time", "monotonic", "perf_counter", "now", "utcnow", "today", "sleep"}


@pytest.mark.parametrize("path", CORE, ids=lambda p: Path(p).name)
def test_the_core_reads_no_clock(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            assert node.func.attr not in CLOCK_CALLS, (
                f"{path.name}:{node.lineno} calls .{node.func.attr}(): time must be passed in"
            )
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
            )
            for name in names:
                top = name.split(".")[0]
                assert top not in {
                    "time",
                    "datetime",
                    "socket",
                    "httpx",
                    "docker",
                    "psycopg",
                    "sqlite3",
                    "fastapi",
                    "asyncio",
                    "os",
                    "subprocess",
                }, f"{path.name}:{node.lineno} imports {name}: the decision core does no I/O"


# ---- backoff, ladder, per-series checks --------------------------------------


def test_cooldown_doubles_with_each_action_this_hour_up_to_the_cap() -> None:
    from watchdog.policy.guards import backoff

    guards = songnodes().guards.model_copy(update={"cooldown": 60.0, "max_cooldown": 600.0})
    assert [backoff(guards, n) for n in (1, 2, 3, 4, 5, 9)] == [60, 120, 240, 480, 600, 600]
    verdict = assess_guards(
        guards,
        facts(last_action_at={"web": 800.0}, recent_actions={"web": 3}),
        now=1000.0,
    )
    assert not verdict.allowed
    assert "cooldown is 4 min (grown 2x after 3 actions this hour)" in verdict.reason
    assert assess_guards(
        guards, facts(last_action_at={"web": 700.0}, recent_actions={"web": 3}), now=1000.0
    ).allowed


def test_a_failed_rung_climbs_to_the_next_one() -> None:
    assert next_state("failed", "next_rung") == "triaged"
    with pytest.raises(IllegalTransition):
        next_state("resolved", "next_rung")


def test_a_check_can_name_one_series() -> None:
    windows = Windows()
    windows.record(Observation("container_healthy", 10, 1, series="web"))
    windows.record(Observation("container_healthy", 10, 0, series="worker"))
    web = Check("web healthy", "container_healthy", ">=", 1, series="web")
    assert assess([web], windows, now=11, max_age=5).passed
    every = Check("all healthy", "container_healthy", ">=", 1)
    assert not assess([every], windows, now=11, max_age=5).passed


def test_generic_policy_climbs_from_restart_to_revert() -> None:
    from watchdog.policyfile import load_policy

    policy = load_policy(ROOT / "policies" / "compose-generic.yaml", environ={})
    assert policy.scenarios["restart_service"].next == "revert_service"
    plan = plan_for(
        policy,
        scenario="revert_service",
        severity=Severity.P2,
        subject="web",
        params={"series": "web", "health_signal": "container_healthy"},
        why="crash loop",
    )
    assert plan.authorization.mode is AuthMode.AUTO
    assert plan.steps[0].param_map() == {"service": "web"}
    assert plan.checklist[0].series == "web"


def test_step_evidence_on_the_timeline_says_what_was_kept() -> None:
    from watchdog.engine.executor import evidence_words

    said = evidence_words(
        {"logs": {"dlq-manager": ["a", "b"]}, "dependents": {}, "lines": 100,
         "inspect": {"web-1": {}, "web-2": {}, "api-1": {}, "db-1": {}}}
    )
    assert said == (
        "logs of dlq-manager; dependents: none; lines: 100; "
        "inspect of web-1, web-2, api-1 and 1 more"
    )
