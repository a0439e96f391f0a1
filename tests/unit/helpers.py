"""Driving the pure core the way the daemon does, with time as an argument."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from watchdog.model import Finding, Observation
from watchdog.policy.rules import Evaluator, RuleState, Tick
from watchdog.policy.schema import Policy
from watchdog.policy.windows import Windows
from watchdog.policyfile import load_policy

ROOT = Path(__file__).resolve().parents[2]
SONGNODES = ROOT / "policies" / "songnodes.yaml"

HEALTH_SIGNALS = (
    "enrichment_health",
    "rest_api_health",
    "gateway_internal_health",
    "dlq_manager_health",
    "audio_analysis_health",
    "api_gateway_health",
    "graph_api_health",
    "scraper_mixesdb_health",
    "scraper_1001tracklists_health",
)

#: Readings of a healthy songnodes stack.
HEALTHY: dict[str, float | dict[str, float]] = {
    **dict.fromkeys(HEALTH_SIGNALS, 1.0),
    "enrichment_error_rate": 0.01,
    "provider_error_rate": {"spotify": 0.01, "musicbrainz": 0.0},
    "breaker_state": {"spotify": 0.0, "musicbrainz": 0.0, "lastfm": 0.0},
    "dlq_depth": 12.0,
    "config_invalid_rows": 0.0,
    "config_invalid_rows_sql": 0.0,
    "database_accepts_queries": 1.0,
    "track_count": 50.0,
    "orphaned_enrichment_status": 0.0,
    "tracks_without_title": 0.0,
    "redis_reachable": 1.0,
    "disk_used": 0.40,
    "docker_engine_up": 1.0,
    "container_healthy": {"dlq-manager": 1.0, "rest-api": 1.0},
    "container_crash_loop": {"dlq-manager": 0.0, "rest-api": 0.0},
    "memory_used": 0.50,
    "api_gateway_detailed_health": 1.0,
    "api_gateway_response_seconds": 0.04,
    "rest_api_response_seconds": 0.02,
    "graph_api_response_seconds": 0.03,
    "enrichment_response_seconds": 0.05,
}


def songnodes() -> Policy:
    return load_policy(SONGNODES, environ={})


@dataclass
class Core:
    """The daemon's tick without the daemon: observations in, findings out."""

    policy: Policy
    windows: Windows = field(default_factory=Windows)
    states: dict[tuple[str, str], RuleState] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.evaluator = Evaluator(self.policy)

    def observe(self, at: float, readings: dict[str, float | dict[str, float]]) -> None:
        for signal, value in readings.items():
            if isinstance(value, dict):
                for series, number in value.items():
                    self.windows.record(Observation(signal, at, number, series=series))
            else:
                self.windows.record(Observation(signal, at, value))

    def tick(self, now: float) -> Tick:
        self.evaluator.derive(self.windows, now)
        tick = self.evaluator.evaluate(self.windows, self.states, now)
        self.states = tick.states
        return tick

    def run(
        self,
        start: float,
        seconds: float,
        readings: dict[str, float | dict[str, float]],
        step: float = 1.0,
    ) -> list[Finding]:
        """Feed the same readings every `step` seconds; return everything that fired."""
        fired: list[Finding] = []
        at = start
        while at <= start + seconds:
            self.observe(at, readings)
            fired += self.tick(at).fired
            at += step
        return fired
