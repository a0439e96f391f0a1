"""Every Prometheus metric the watchdog exports, defined once, with units in names.

Grafana panels and alert rules are written against these names, so they live in
one place. `Metrics.for_policy` creates every labelled series at zero up front
(as Alertmanager's `InitializeFor` does) so that a dashboard shows 0, not "no
data", before the first incident. Each daemon owns its own registry, which keeps
tests independent of each other.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from watchdog.model import Severity
from watchdog.policy.schema import Policy
from watchdog.policy.shadow import AGREEMENTS

_DURATION_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)
_PROBE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10)
OUTCOMES = ("succeeded", "failed", "skipped", "unknown", "dry_run")
CHANNELS = ("pagerduty", "opsgenie", "slack", "webhook")
PAGE_OUTCOMES = ("sent", "retried", "rejected")
DRILL_OUTCOMES = ("passed", "failed")
ALERT_OUTCOMES = ("accepted", "duplicate", "unauthorized", "malformed", "too_large")
#: Why a webhook body over a cap (or with a zero or future startsAt) was refused.
ALERT_REFUSALS = (
    "too_many_alerts",
    "too_many_labels",
    "label_too_long",
    "too_many_series",
    "starts_at_zero",
    "starts_at_future",
)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.incidents_opened = Counter(
            "watchdog_incidents_opened_total",
            "Incidents opened, by severity and scenario.",
            ["severity", "scenario"],
            registry=r,
        )
        self.incidents_open = Gauge(
            "watchdog_incidents_open",
            "Incidents not yet resolved or closed, by severity.",
            ["severity"],
            registry=r,
        )
        self.actions = Counter(
            "watchdog_actions_total",
            "Plan steps run, by scenario, action and outcome.",
            ["scenario", "action", "outcome"],
            registry=r,
        )
        self.rollback_duration = Histogram(
            "watchdog_rollback_duration_seconds",
            "Time to run a plan's steps, by outcome.",
            ["scenario", "outcome"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.detection_delay = Histogram(
            "watchdog_detection_delay_seconds",
            "Time from the first breach to the incident.",
            ["scenario"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.time_to_recover = Histogram(
            "watchdog_time_to_recover_seconds",
            "Time from the first breach to verified recovery.",
            ["scenario"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.probe_duration = Histogram(
            "watchdog_probe_duration_seconds",
            "Time one probe took.",
            ["signal"],
            buckets=_PROBE_BUCKETS,
            registry=r,
        )
        self.probe_errors = Counter(
            "watchdog_probe_errors_total",
            "Probe readings that were errors.",
            ["signal"],
            registry=r,
        )
        self.signal_value = Gauge(
            "watchdog_signal_value",
            "Last observed value per signal and series.",
            ["signal", "series"],
            registry=r,
        )
        self.budget_remaining = Gauge(
            "watchdog_action_budget_remaining",
            "Automatic plans the hourly budget still allows.",
            registry=r,
        )
        self.paused = Gauge(
            "watchdog_paused",
            "1 while automatic actions are paused by the kill switch.",
            registry=r,
        )
        self.leader = Gauge(
            "watchdog_leader",
            "1 while this sidecar leads its stack (decides, acts, pages); 0 while it follows.",
            registry=r,
        )
        self.leadership_changes = Counter(
            "watchdog_leadership_changes_total",
            "Times this sidecar began or ended a term as leader.",
            registry=r,
        )
        self.tick_duration = Histogram(
            "watchdog_tick_duration_seconds",
            "Time one decision tick took.",
            buckets=_PROBE_BUCKETS,
            registry=r,
        )

        self.pages = Counter(
            "watchdog_pages_total",
            "Notifier deliveries, by channel and outcome (sent, retried, rejected).",
            ["channel", "outcome"],
            registry=r,
        )
        self.page_fallbacks = Counter(
            "watchdog_page_fallbacks_total",
            "Pages handed to other routed channels because this channel refused or gave up.",
            ["channel"],
            registry=r,
        )
        self.pages_lost = Counter(
            "watchdog_pages_lost_total",
            "Pages this channel refused or gave up with no other routed channel left to take them.",
            ["channel"],
            registry=r,
        )
        self.outbox_pending = Gauge(
            "watchdog_outbox_pending",
            "Notifications journaled but not yet delivered, by channel.",
            ["channel"],
            registry=r,
        )
        self.followups_overdue = Gauge(
            "watchdog_followups_overdue",
            "Follow-ups (the runbook's 24-hour and 1-week items) still open past their due time.",
            registry=r,
        )
        self.approvals_pending = Gauge(
            "watchdog_approvals_pending",
            "Incidents whose plan waits for a human's approval.",
            registry=r,
        )
        self.approvals = Counter(
            "watchdog_approvals_total",
            "Approval decisions recorded, by decision (approve, reject, expire).",
            ["decision"],
            registry=r,
        )
        self.alerts_received = Counter(
            "watchdog_alerts_received_total",
            "Alertmanager alerts received, by outcome.",
            ["outcome"],
            registry=r,
        )
        self.alert_webhooks_refused = Counter(
            "watchdog_alert_webhooks_refused_total",
            "Alertmanager webhooks refused, nothing stored: over a cap, or a bad startsAt.",
            ["reason"],
            registry=r,
        )
        self.unknown_subjects = Counter(
            "watchdog_unknown_subjects_total",
            "Plans not run because an alert label named a provider or service nobody knows.",
            ["kind"],
            registry=r,
        )
        self.shadow_decisions = Counter(
            "watchdog_shadow_decisions_total",
            "A shadow policy's would-be decisions (`run --shadow-policy`), by agreement with "
            "the live policy's: agree, differs, shadow-only, live-only.",
            ["agreement"],
            registry=r,
        )
        self.alert_intake = Histogram(
            "watchdog_alert_intake_seconds",
            "Time from an Alertmanager webhook arriving to its alerts being journaled.",
            buckets=_PROBE_BUCKETS,
            registry=r,
        )
        self.drills = Counter(
            "watchdog_drills_total",
            "Drills run (watchdog drill, or scheduled in the policy), by drill and outcome.",
            ["scenario", "outcome"],
            registry=r,
        )
        self.drill_recovery = Histogram(
            "watchdog_drill_recovery_seconds",
            "Time from a drill's fault to the daemon's verified recovery, by drill.",
            ["scenario"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.drill_last_run = Gauge(
            "watchdog_drill_last_run_timestamp_seconds",
            "When each drill last ran, by hand or scheduled (read from the journal).",
            ["scenario"],
            registry=r,
        )
        self.drill_last_passed = Gauge(
            "watchdog_drill_last_passed",
            "1 if each drill's latest run passed, 0 if it failed; absent until it ran.",
            ["scenario"],
            registry=r,
        )

    @classmethod
    def for_policy(cls, policy: Policy, registry: CollectorRegistry | None = None) -> Metrics:
        metrics = cls(registry)
        for severity, opened in {(rule.severity, rule.scenario) for rule in policy.rules}:
            metrics.incidents_opened.labels(severity.value, opened)
        for severity in Severity:
            metrics.incidents_open.labels(severity.value).set(0)
        for name, scenario in policy.scenarios.items():
            metrics.detection_delay.labels(name)
            metrics.time_to_recover.labels(name)
            for step in scenario.steps:
                for outcome in OUTCOMES:
                    metrics.actions.labels(name, step.action, outcome)
            for outcome in ("succeeded", "failed"):
                metrics.rollback_duration.labels(name, outcome)
        for signal in policy.signals:
            metrics.probe_duration.labels(signal.name)
            metrics.probe_errors.labels(signal.name)
        metrics.budget_remaining.set(policy.guards.actions_per_hour)
        metrics.paused.set(0)
        for channel in CHANNELS:
            metrics.outbox_pending.labels(channel).set(0)
            metrics.page_fallbacks.labels(channel)
            metrics.pages_lost.labels(channel)
            for outcome in PAGE_OUTCOMES:
                metrics.pages.labels(channel, outcome)
        metrics.approvals_pending.set(0)
        for decision in ("approve", "reject", "expire"):
            metrics.approvals.labels(decision)
        for outcome in ALERT_OUTCOMES:
            metrics.alerts_received.labels(outcome)
        for reason in ALERT_REFUSALS:
            metrics.alert_webhooks_refused.labels(reason)
        for kind in ("provider", "service"):
            metrics.unknown_subjects.labels(kind)
        for drill in policy.drills.scenarios:
            metrics.drill_recovery.labels(drill)
            for outcome in DRILL_OUTCOMES:
                metrics.drills.labels(drill, outcome)
        return metrics

    def shadowing(self) -> None:
        """A shadow policy runs: its agreements show 0, not "no data", before its first."""
        for agreement in AGREEMENTS:
            self.shadow_decisions.labels(agreement)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
