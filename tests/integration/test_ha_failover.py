"""Sidecars on one PostgreSQL journal: one leads, and losing it loses nothing and doubles nothing.

Real processes throughout (tests/integration/ha_stage.py): three `watchdog run` on
one journal schema, each behind its own TCP proxy to the one PostgreSQL, guarding
one sandbox and paging the fake PagerDuty and Slack; lease 2 s. The module shares
the stage and the tests run in order, each leaving one leader behind: three
sidecars, then two once the first leader is killed. Every test checks the journal's
tables (steps, their fencing tokens, the lease and its log), the sandbox's own
record of what was done to it (a service's restarts) and the pages where they land.

The fault is the demo's quickest (dlq-manager killed, a P2 paged on open); its plan
starts with a 3 s `wait`, so a leader can be killed or frozen with a step in flight.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.integration.ha_stage import LEASE_SECONDS, HaStage, Member, ha_stage
from watchdog.demo import wait_for

pytestmark = pytest.mark.slow

SERVICE = "dlq-manager"
WAIT, RESTART = "let connections drain", "restart the failed service"
#: A bound on a take-over for the waits (not an assertion on time): the lease, the
#: followers' lease/4 poll, and room for a loaded machine.
TAKE_OVER = LEASE_SECONDS * 3 + 4


@pytest.fixture(scope="module")
def ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HaStage]:
    with ha_stage(tmp_path_factory.mktemp("ha"), 3) as stage:
        yield stage


def restarts(ha: HaStage) -> int:
    """How often the sandbox has restarted the service (its own count, not the journal's)."""
    return int(ha.stack.service(SERVICE)["restarts"])


def shape(ha: HaStage, incident: int) -> list[tuple[str, int, str]]:
    return [(s["name"], s["attempt"], s["status"]) for s in ha.steps(incident)]


def paged_once(ha: HaStage, incident: int) -> None:
    """One trigger and one resolve at PagerDuty for the incident, and Slack had each once."""
    wait_for(lambda: len(ha.pagerduty(incident, "resolve")) >= 1, 20, "the resolve at PagerDuty")
    assert [e["event_action"] for e in ha.pagerduty(incident)] == ["trigger", "resolve"]
    assert len(ha.slack_for(incident)) == 2, ha.slack_for(incident)


def test_one_of_three_leads_and_a_fault_is_handled_once(ha: HaStage) -> None:
    leader = ha.wait_for_leader()
    assert len(ha.live()) == 3
    lease = ha.lease()
    assert lease is not None and lease["instance"] == leader.instance and not lease["released"]
    health = leader.health()
    assert health is not None
    assert (health["stack"], health["token"], health["instance"], health["leader"]) == (
        "songnodes", lease["token"], leader.instance, leader.instance)
    for member in ha.live():
        seen = member.health()
        assert seen is not None and seen["leader"] == leader.instance, seen
    before = restarts(ha)

    known = ha.inject("crash", service=SERVICE)
    incident = ha.follow(known, ("resolved",))

    assert shape(ha, incident["id"]) == [(WAIT, 1, "succeeded"), (RESTART, 1, "succeeded")]
    assert {s["fence_token"] for s in ha.steps(incident["id"])} == {lease["token"]}
    assert restarts(ha) == before + 1
    paged_once(ha, incident["id"])


def test_kill_9_mid_plan_a_follower_finishes_it_and_no_step_runs_twice(ha: HaStage) -> None:
    old = ha.wait_for_leader()
    lease = ha.lease()
    assert lease is not None
    before = restarts(ha)
    known = ha.inject("crash", service=SERVICE)
    step = ha.step_in_flight(known)
    # Killed between the vendor's 202 and the outbox row marked sent, a page is sent again
    # by the next leader (at least once: PagerDuty folds it by its dedup key, Slack shows
    # it twice). Kill once the trigger is journaled as sent: then a second one is a bug.
    ha.wait_for_pages(step["incident_id"])

    ha.kill(old)
    new = ha.wait_for_leader(TAKE_OVER, other_than=old)
    taken = ha.lease()
    assert taken is not None and taken["token"] > lease["token"]
    term = ha.terms()[-1]
    assert (term["instance"], term["previous_instance"], term["token"], term["clean"]) == (
        new.instance, old.instance, taken["token"], False)

    incident = ha.follow(known, ("resolved",))
    assert incident["id"] == step["incident_id"]
    # The wait was in flight: unknown, run again (it is idempotent); the restart ran once.
    assert shape(ha, incident["id"]) == [
        (WAIT, 1, "unknown"), (WAIT, 2, "succeeded"), (RESTART, 1, "succeeded")]
    tokens = [s["fence_token"] for s in ha.steps(incident["id"])]
    assert tokens[1:] == [taken["token"]] * 2
    assert restarts(ha) == before + 1
    paged_once(ha, incident["id"])


def test_a_frozen_leader_that_wakes_changes_nothing_and_steps_down(ha: HaStage) -> None:
    old = ha.wait_for_leader()
    before = restarts(ha)
    known = ha.inject("crash", service=SERVICE)
    step = ha.step_in_flight(known)
    ha.wait_for_pages(step["incident_id"])  # as above: frozen after its page is journaled

    ha.pause(old)  # SIGSTOP, as a long GC or a frozen VM: its wait is still "running"
    new = ha.wait_for_leader(TAKE_OVER, other_than=old)
    taken = ha.lease()
    assert taken is not None
    # The new leader acts on the open plan before the old one wakes.
    wait_for(lambda: any(s["fence_token"] == taken["token"] for s in ha.steps(step["incident_id"])),
             20, "a step written under the new token")
    stale = ha.tokened(taken["token"])

    ha.resume(old)  # its wait is over by its clock: it would journal the step and go on
    wait_for(lambda: old.role() == "follower", TAKE_OVER, f"{old.instance} to step down")
    incident = ha.follow(known, ("resolved",))

    health = old.health()
    assert health is not None and health["leader"] == new.instance, health
    assert ha.tokened(taken["token"]) <= stale, "a row written with an old token"
    assert shape(ha, incident["id"]) == [
        (WAIT, 1, "unknown"), (WAIT, 2, "succeeded"), (RESTART, 1, "succeeded")]
    assert restarts(ha) == before + 1
    lease = ha.lease()
    assert lease is not None and lease["token"] == taken["token"]
    assert lease["instance"] == new.instance
    paged_once(ha, incident["id"])


def test_a_leader_cut_from_the_database_stops_acting_and_another_leads(ha: HaStage) -> None:
    old = ha.wait_for_leader()
    lease = ha.lease()
    assert lease is not None
    old.proxy.cut(blackhole=True)  # its queries and renewals now hang, unanswered
    try:
        wait_for(lambda: old.role() == "follower", TAKE_OVER, f"{old.instance} to step down")
        new = ha.wait_for_leader(TAKE_OVER, other_than=old)
        before = restarts(ha)
        known = ha.inject("crash", service=SERVICE)
        incident = ha.follow(known, ("resolved",))
    finally:
        old.proxy.heal()
    taken = ha.lease()
    assert taken is not None and taken["instance"] == new.instance
    assert taken["token"] > lease["token"]
    assert shape(ha, incident["id"]) == [(WAIT, 1, "succeeded"), (RESTART, 1, "succeeded")]
    assert {s["fence_token"] for s in ha.steps(incident["id"])} == {taken["token"]}
    assert restarts(ha) == before + 1
    paged_once(ha, incident["id"])
    # Healed, the old leader stays a follower of the new one.
    assert ha.wait_for_leader(TAKE_OVER) is new


def test_no_one_acts_while_the_database_is_away_and_leadership_resumes(ha: HaStage) -> None:
    ha.wait_for_leader()
    lease = ha.lease()
    assert lease is not None
    known = {i["id"] for i in ha.incidents()}
    before = restarts(ha)

    ha.stop_database()
    away = time.time()
    ha.stack.inject("crash", service=SERVICE)
    wait_for(lambda: all(m.role() == "follower" for m in ha.live()), TAKE_OVER,
             "every sidecar a follower while the journal is away")
    time.sleep(LEASE_SECONDS)  # the fault is seen by every prober now; nobody may act on it
    assert restarts(ha) == before and not ha.stack.service(SERVICE)["running"]
    ha.start_database()
    back = time.time()

    leader = ha.wait_for_leader(TAKE_OVER + 10)
    incident = ha.follow(known, ("resolved",))
    taken = ha.lease()
    assert taken is not None and taken["instance"] == leader.instance
    assert taken["token"] > lease["token"]
    assert shape(ha, incident["id"]) == [(WAIT, 1, "succeeded"), (RESTART, 1, "succeeded")]
    assert all(s["started_at"] > back for s in ha.steps(incident["id"]))
    written = ha.rows("SELECT kind, at FROM events WHERE at > %s AND at < %s", away, back)
    assert written == []
    assert restarts(ha) == before + 1
    paged_once(ha, incident["id"])


def test_a_clean_hand_over_right_after_a_resolve_reopens_nothing(ha: HaStage) -> None:
    """SIGTERM releases the lease: the follower leads at once, pages no one, and does not
    take the rule it watched firing while it followed (the leader resets a rule when it
    closes its incident; `clear_for` has not passed yet) for a new fault."""
    old = ha.wait_for_leader()
    lease = ha.lease()
    assert lease is not None
    known = ha.inject("crash", service=SERVICE)
    resolved = ha.follow(known, ("resolved",))
    before = restarts(ha)
    stopped = time.time()
    assert old.daemon.stop() == 0  # SIGTERM: it releases the lease
    old.alive = False
    new = ha.wait_for_leader(TAKE_OVER, other_than=old)
    term = ha.terms()[-1]
    assert (term["instance"], term["previous_instance"], term["clean"]) == (
        new.instance, old.instance, True)
    taken = ha.lease()
    assert taken is not None and taken["token"] == lease["token"] + 1
    ticks = _ticks(new)
    wait_for(lambda: _ticks(new) >= ticks + 10, 10, f"ten ticks of {new.instance} as leader")
    # A clean hand-over opens nothing (an unclean one pages P2), and nothing is reopened.
    opened = ha.rows("SELECT id, key FROM incidents WHERE opened_at > %s", stopped)
    assert opened == [], f"opened after the hand-over (incident {resolved['id']} resolved)"
    assert restarts(ha) == before


def _ticks(member: Member) -> int:
    health = member.health()
    return -1 if health is None else int(health["ticks"])
