"""Compensations, decided purely: what puts back each step that took something down."""

from __future__ import annotations

from watchdog.model import Risk, Step
from watchdog.policy.compensation import COMPENSATE, compensation_for, compensations

STOP = Step(
    "stop the enrichment workers",
    "service.stop",
    Risk.SAFE,
    params=(("services", ["enrichment-worker", "enrichment-backlog-worker"]),),
    timeout_seconds=20,
)
DISABLE = Step(
    "disable the failing provider",
    "provider.disable",
    Risk.SAFE,
    params=(("provider", "discogs"), ("table", "metadata_enrichment_config")),
)
BACKUP = Step("back up", "config.backup", Risk.SAFE, params=(("table", "t"),))


def test_a_stop_is_undone_by_starting_the_same_services_with_the_reason_in_its_name() -> None:
    undo = compensation_for(STOP, 7)
    assert undo is not None
    assert (undo.action, undo.risk, undo.idempotent) == ("service.start", Risk.SAFE, True)
    assert undo.param_map() == {"services": ["enrichment-worker", "enrichment-backlog-worker"]}
    assert undo.timeout_seconds == 20
    assert undo.name == (
        "compensate: start enrichment-worker, enrichment-backlog-worker again "
        "(stopped by 'stop the enrichment workers'; the plan did not finish)"
    )


def test_a_provider_disable_is_undone_from_the_incidents_before_images() -> None:
    undo = compensation_for(DISABLE, 42)
    assert undo is not None
    assert (undo.action, undo.param_map()) == ("provider.enable", {"incident": 42})
    assert undo.name.startswith(COMPENSATE + "enable discogs again from the before-images")


def test_steps_that_take_nothing_down_have_no_compensation() -> None:
    for action in ("config.backup", "config.restore", "service.restart", "smoke_test", "wait"):
        assert compensation_for(Step("x", action, Risk.SAFE, params=(("services", ["a"]),)), 1) \
            is None
    assert compensation_for(Step("stop nothing", "service.stop", Risk.SAFE), 1) is None


def test_compensations_run_last_first() -> None:
    undos = compensations([STOP, BACKUP, DISABLE], 3)
    assert [u.action for u in undos] == ["provider.enable", "service.start"]


def test_a_stop_already_undone_by_a_later_start_needs_nothing_and_a_partial_one_the_rest() -> None:
    start_one = Step(
        "start the worker", "service.start", Risk.SAFE,
        params=(("services", ["enrichment-worker"]),),
    )
    [undo] = compensations([STOP, BACKUP, start_one], 3)
    assert undo.param_map() == {"services": ["enrichment-backlog-worker"]}
    restart_all = Step(
        "restart", "service.restart", Risk.SAFE,
        params=(("services", ["enrichment-worker", "enrichment-backlog-worker"]),),
    )
    assert compensations([STOP, restart_all], 3) == []
    # A start before the stop does not cancel it.
    assert [u.action for u in compensations([start_one, STOP], 3)] == ["service.start"]
