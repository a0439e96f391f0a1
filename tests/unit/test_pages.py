"""What a page says, when one goes out, and how each vendor's limits are kept: pure parts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from tests.fakes.vendors import opsgenie_create_errors, pagerduty_errors, slack_errors
from tests.integration.notify_stage import FINDING, PLAN
from watchdog.model import Severity
from watchdog.notify.channels import build_channels
from watchdog.notify.fallback import lost_summary, page_of
from watchdog.notify.page import Page, compose_page
from watchdog.notify.retry import backoff, classify, redact, retry_after_seconds
from watchdog.notify.routing import decide_escalation_page, decide_fallback, decide_pages
from watchdog.notify.vendors import (
    dedup_key,
    incident_dedup_key,
    opsgenie_body,
    pagerduty_body,
    slack_body,
    webhook_body,
)
from watchdog.policy.schema import NotifySpec
from watchdog.policyfile import PolicyError, load_policy
from watchdog.settings import Settings
from watchdog.store.records import EventRecord, IncidentRecord, StepRecord

KEY = "R" * 32


def incident(
    state: str = "awaiting_approval", *, key: str = "dlq", subject: str = ""
) -> IncidentRecord:
    return IncidentRecord(
        id=12,
        key=key,
        severity=Severity.P1,
        scenario="dlq_overflow",
        subject=subject,
        state=state,
        reason=FINDING.reason,
        opened_at=1_000.0,
        updated_at=1_000.0,
        closed_at=None,
    )


def page(
    event: str = "trigger",
    state: str = "awaiting_approval",
    *,
    record: IncidentRecord | None = None,
    timeline: Sequence[EventRecord] = (),
) -> Page:
    return compose_page(
        event=event,
        why_now="the plan waits for approval",
        stack="songnodes",
        incident=record or incident(state),
        findings=[FINDING],
        plan=PLAN,
        steps=(),
        approvals=(),
        timeline=timeline,
        public_url="https://watchdog.example.org/",
        at=1_700_000_000.0,
    )


def test_a_page_says_what_was_seen_why_what_waits_the_impact_and_how_to_approve() -> None:
    text = page().text()
    assert "[P1] songnodes: dlq_overflow (awaiting approval)" in text
    assert "DLQ depth 7200 > 5000 for 10 s" in text
    assert "evidence: rabbitmq queue enrichment.dlq: 7200 messages; growing 300/min" in text
    assert "Severity P1:\n" + FINDING.reason in text
    assert "Next action:\napproval by one person with role lead" in text
    assert "- messages already dead-lettered stay for dlq-manager to replay" in text
    assert "https://watchdog.example.org/ui/incidents/12" in text
    assert "watchdog approve 12 --as NAME" in text and "watchdog reject 12 --as NAME" in text


def test_a_quorum_and_what_was_done_are_named() -> None:
    team = replace(PLAN, authorization=replace(PLAN.authorization, role="team", quorum=2))
    composed = compose_page(
        event="trigger",
        why_now="escalated",
        stack="songnodes",
        incident=incident(),
        findings=[FINDING],
        plan=team,
        steps=[
            StepRecord(
                1,
                12,
                0,
                "restart",
                "service.restart",
                team.steps[0].risk,
                {},
                "failed",
                1,
                1.0,
                2.0,
                "exit 1\nmore",
                True,
            )
        ],
        approvals=(),
        timeline=(),
        public_url="http://x",
        at=0.0,
    )
    assert "approval by 2 distinct people with role team" in composed.awaiting
    assert composed.done == ("restart (attempt 1): failed: exit 1",)


def test_an_escalated_page_says_why_a_human_must_take_over() -> None:
    moved = EventRecord(
        5, 12, 3.0, "state", "failed → escalated: rollback failed, paging", {"to": "escalated"}
    )
    assert page(state="escalated", timeline=(moved,)).awaiting == (
        "take over: failed → escalated: rollback failed, paging; "
        "when done, `watchdog incidents close 12 --as NAME`"
    )


def test_the_vendor_bodies_keep_the_vendor_limits() -> None:
    long = incident(subject="s" * 2000, key="k" * 600)
    composed = page(record=long)
    pd = {**pagerduty_body(composed), "routing_key": KEY}
    assert pagerduty_errors(pd, KEY) == []
    assert len(pd["payload"]["summary"]) == 1024 and pd["dedup_key"] == "songnodes/12"
    og = opsgenie_body(composed, [])
    assert og is not None and opsgenie_create_errors(og) == []
    assert len(og["message"]) == 130
    assert slack_errors(slack_body(composed)) == []
    resolve = page(event="resolve", record=long)
    assert pagerduty_errors({**pagerduty_body(resolve), "routing_key": KEY}, KEY) == []
    assert opsgenie_body(page(event="acknowledge"), []) is None


def test_the_dedup_key_is_the_incident_key_and_stable() -> None:
    assert dedup_key("service_failure/dlq-manager") == "service_failure/dlq-manager"
    assert dedup_key("k" * 600) == dedup_key("k" * 600) != dedup_key("k" * 599 + "j")


def test_every_vendor_carries_the_incidents_own_dedup_key_never_the_fault_key() -> None:
    assert incident_dedup_key("songnodes", 42) == "songnodes/42"
    assert len(incident_dedup_key("s" * 400, 42)) == 255
    assert incident_dedup_key("s" * 400, 42) != incident_dedup_key("s" * 400, 43)
    for event in ("trigger", "resolve"):
        composed = page(event=event)
        assert composed.dedup_key == "songnodes/12"
        assert pagerduty_body(composed)["dedup_key"] == "songnodes/12"
        assert webhook_body(composed)["dedup_key"] == "songnodes/12"
    assert (opsgenie_body(page(), []) or {})["alias"] == "songnodes/12"


SPEC = NotifySpec()


@pytest.mark.parametrize(
    ("severity", "from_state", "to_state", "triggered", "expected"),
    [
        (Severity.P1, "detected", "triaged", set(), ("trigger", 4)),
        (Severity.P2, "detected", "triaged", set(), None),  # P2 is not paged on open
        (Severity.P2, "triaged", "awaiting_approval", set(), ("trigger", 2)),
        (Severity.P3, "failed", "escalated", set(), ("trigger", 2)),
        (Severity.P1, "triaged", "executing", {"pagerduty"}, None),
        (Severity.P1, "awaiting_approval", "approved", {"pagerduty"}, ("acknowledge", 1)),
        (Severity.P2, "verifying", "resolved", {"slack", "webhook"}, ("resolve", 2)),
        (Severity.P2, "verifying", "resolved", set(), None),  # never paged: nothing to resolve
    ],
)
def test_when_to_page(
    severity: Severity,
    from_state: str,
    to_state: str,
    triggered: set[str],
    expected: tuple[str, int] | None,
) -> None:
    decision = decide_pages(
        SPEC,
        severity=severity,
        from_state=from_state,
        to_state=to_state,
        move_reason="why",
        triggered=triggered,
    )
    got = None if decision is None else (decision.event, len(decision.channels))
    assert got == expected


@pytest.mark.parametrize(
    ("status", "retry_after", "outcome", "delay"),
    [
        (202, None, "sent", None),
        (200, None, "sent", None),
        (429, "7", "retry", 7.0),
        (429, None, "retry", None),
        (500, None, "retry", None),
        (503, None, "retry", None),
        (408, None, "retry", None),
        (400, None, "rejected", None),
        (401, None, "rejected", None),
        (404, None, "rejected", None),
        (422, None, "rejected", None),
    ],
)
def test_what_an_answer_means(
    status: int, retry_after: str | None, outcome: str, delay: float | None
) -> None:
    verdict = classify(status, "body", retry_after=retry_after, now=0.0)
    assert (verdict.outcome, verdict.delay) == (outcome, delay)
    assert f"HTTP {status}" in verdict.reason


@pytest.mark.parametrize(
    ("retry_after", "delay", "capped"),
    [("7", 7.0, False), ("300", 300.0, False), ("86400", 300.0, True), ("301", 300.0, True)],
)
def test_a_retry_after_is_capped_and_the_reason_says_so(
    retry_after: str, delay: float, capped: bool
) -> None:
    verdict = classify(429, "slow down", retry_after=retry_after, now=0.0, retry_after_max=300)
    assert (verdict.outcome, verdict.delay) == ("retry", delay)
    assert ("capped at 300 s" in verdict.reason) is capped
    if capped:
        assert f"Retry-After {retry_after} s capped at 300 s" in verdict.reason
    dated = classify(429, "", retry_after="Sun, 29 Nov 2026 16:00:10 GMT", now=0.0)
    assert dated.delay == 300.0  # the default cap: five minutes


def test_backoff_doubles_up_to_the_cap_and_retry_after_reads_dates() -> None:
    assert [backoff(n, base=2, cap=30) for n in (1, 2, 3, 4, 5, 6)] == [2, 4, 8, 16, 30, 30]
    assert retry_after_seconds("Sun, 29 Nov 2026 16:00:10 GMT", 1_795_968_000.0) == 10.0
    assert retry_after_seconds("soon", 0.0) is None


def test_redact_removes_every_secret() -> None:
    assert redact("POST https://h/abc123/x failed: abc123", ["abc123", ""]) == (
        "POST https://h/[secret]/x failed: [secret]"
    )


def test_a_bad_channel_in_the_policy_is_named(tmp_path: Path) -> None:
    folder = tmp_path
    source = (Path(__file__).resolve().parents[2] / "policies" / "compose-generic.yaml").read_text()
    bad = folder / "bad.yaml"
    bad.write_text(source.replace("P3: [slack]", "P3: [pager]"))
    with pytest.raises(PolicyError) as error:
        load_policy(str(bad))
    assert "notify.routes.P3" in str(error.value) and "pager" in str(error.value)


def test_channels_exist_only_with_their_credential_and_never_show_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WATCHDOG_PAGERDUTY_ROUTING_KEY", KEY)
    monkeypatch.setenv("WATCHDOG_SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/sekrit")
    settings = Settings()
    channels = build_channels(settings, NotifySpec())
    assert sorted(channels) == ["pagerduty", "slack"]
    shown = f"{settings!r} {settings} {channels!r} {settings.model_dump()}"
    assert KEY not in shown and "sekrit" not in shown


def test_a_page_with_very_many_findings_stays_within_pagerdutys_size_limit() -> None:
    noisy = replace(FINDING, evidence=tuple("e" * 5000 for _ in range(20)))
    composed = compose_page(
        event="trigger",
        why_now="opened",
        stack="songnodes",
        incident=incident(),
        findings=[noisy] * 400,
        plan=PLAN,
        steps=(),
        approvals=(),
        timeline=(),
        public_url="http://x",
        at=0.0,
    )
    event = {**pagerduty_body(composed), "routing_key": KEY}
    assert pagerduty_errors(event, KEY) == []
    assert len(json.dumps(event)) < 512 * 1024
    assert composed.seen[-1] == "(+350 more findings on the incident page)"


@pytest.mark.parametrize(
    ("before", "after", "triggered", "expected"),
    [
        (Severity.P2, Severity.P1, {"slack", "webhook"}, ("pagerduty", "opsgenie")),
        (Severity.P2, Severity.P1, set(), ("pagerduty", "opsgenie", "slack", "webhook")),
        (Severity.P1, Severity.P0, {"pagerduty", "opsgenie", "slack", "webhook"}, None),
        (Severity.P1, Severity.P2, set(), None),  # less severe: no page
    ],
)
def test_a_rise_in_severity_pages_the_channels_not_yet_paged(
    before: Severity, after: Severity, triggered: set[str], expected: tuple[str, ...] | None
) -> None:
    decision = decide_escalation_page(
        SPEC, from_severity=before, to_severity=after, triggered=triggered
    )
    assert (None if decision is None else decision.channels) == expected
    if decision is not None:
        assert decision.reason == f"escalated from {before.value} to {after.value}"


def test_a_webhook_url_that_cannot_work_is_refused_without_showing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WATCHDOG_SLACK_WEBHOOK_URL", "hooks.slack.com/services/T/B/sekrit")
    with pytest.raises(ValueError, match="WATCHDOG_SLACK_WEBHOOK_URL must be an http") as error:
        build_channels(Settings(), NotifySpec())
    assert "sekrit" not in str(error.value)


EVERY = ("pagerduty", "opsgenie", "slack", "webhook")


@pytest.mark.parametrize(
    ("event", "on_page", "available", "expected"),
    [
        ("trigger", {"pagerduty", "opsgenie"}, EVERY, ("slack", "webhook")),
        ("trigger", {"pagerduty", "opsgenie"}, (), None),  # no credential for the others
        ("trigger", {"pagerduty", "opsgenie"}, ("pagerduty", "opsgenie", "slack"), ("slack",)),
        ("trigger", set(EVERY), EVERY, None),  # nothing left: the page is lost
        ("resolve", {"pagerduty"}, EVERY, None),  # never an end without its beginning
        ("acknowledge", {"pagerduty"}, EVERY, None),
    ],
)
def test_a_refused_page_falls_back_to_the_routed_channels_not_on_it(
    event: str,
    on_page: set[str],
    available: tuple[str, ...],
    expected: tuple[str, ...] | None,
) -> None:
    decision = decide_fallback(
        SPEC,
        severity=Severity.P1,
        event=event,
        failed="opsgenie",
        why="refused: HTTP 401: Could not authenticate",
        on_page=on_page,
        available=available,
    )
    assert (None if decision is None else decision.channels) == expected
    closed = decide_fallback(
        SPEC,
        severity=Severity.P1,
        event=event,
        failed="opsgenie",
        why="gave up: 50 tries",
        on_page=on_page,
        available=available,
        incident_open=False,
    )
    assert closed is None  # the incident ended: its resolve went out, no late trigger
    if decision is not None:
        assert decision.event == "trigger"
        assert decision.reason == "fallback: opsgenie refused: HTTP 401: Could not authenticate"


def test_a_rows_page_is_found_with_its_fallbacks_and_a_loss_says_what_is_left() -> None:
    def paged(event_id: int, channels: list[str], ids: list[int], **extra: object) -> EventRecord:
        data = {"event": "trigger", "channels": channels, "delivery_ids": ids, **extra}
        return EventRecord(event_id, 12, 1.0, "page", "…", {**data, "reason": "P1 opened"})

    timeline = [
        paged(1, ["slack"], [1]),  # an earlier page
        paged(2, ["pagerduty", "opsgenie"], [2, 3]),
        EventRecord(3, 12, 2.0, "page_rejected", "opsgenie trigger not delivered", {}),
        paged(4, ["slack", "webhook"], [4, 5], fallback_of=2),
    ]
    for row in (2, 3, 5):
        found = page_of(timeline, row)
        assert found is not None
        assert (found.event_id, found.reason) == (2, "P1 opened")
        assert found.channels == ("pagerduty", "opsgenie", "slack", "webhook")
        assert found.delivery_ids == (2, 3, 4, 5)
    assert page_of(timeline, 99) is None
    assert lost_summary(
        channel="slack",
        event="trigger",
        error="HTTP 410: channel_is_archived",
        severity=Severity.P1,
        reached=(),
        incident_open=False,
    ) == (
        "slack trigger lost: HTTP 410: channel_is_archived; the incident is closed, so no "
        "channel is paged in its place; no channel has this page"
    )
    assert lost_summary(
        channel="pagerduty", event="resolve", error="HTTP 400", severity=Severity.P1, reached=()
    ).startswith("pagerduty resolve lost: HTTP 400; the resolve goes only to the channels")
