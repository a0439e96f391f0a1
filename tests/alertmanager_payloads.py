"""Alertmanager webhook bodies (payload version 4) as Alertmanager 0.25 sends them.

Every field VENDOR-FACTS.md lists, with a firing alert's zero `endsAt`, so the
receiver tests and the benchmark post what the real sender posts.
"""

from __future__ import annotations

import hashlib
from typing import Any

ZERO_TIME = "0001-01-01T00:00:00Z"


def fingerprint(labels: dict[str, str]) -> str:
    """16 lower-case hex characters, stable for a label set (as Alertmanager's are)."""
    text = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def alert(
    name: str,
    *,
    status: str = "firing",
    starts_at: str = "2026-11-29T10:00:00.123456789Z",
    ends_at: str | None = None,
    summary: str = "",
    **labels: str,
) -> dict[str, Any]:
    every = {"alertname": name, **labels}
    return {
        "status": status,
        "labels": every,
        "annotations": {"summary": summary} if summary else {},
        "startsAt": starts_at,
        "endsAt": ends_at or (ZERO_TIME if status == "firing" else "2026-11-29T10:05:00Z"),
        "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=up",
        "fingerprint": fingerprint(every),
    }


def webhook(*alerts: dict[str, Any], truncated: int = 0) -> dict[str, Any]:
    firing = any(a["status"] == "firing" for a in alerts)
    common = dict(alerts[0]["labels"]) if alerts else {}
    for item in alerts[1:]:
        common = {k: v for k, v in common.items() if item["labels"].get(k) == v}
    return {
        "version": "4",
        "groupKey": '{}:{alertname="' + str(common.get("alertname", "")) + '"}',
        "truncatedAlerts": truncated,
        "status": "firing" if firing else "resolved",
        "receiver": "watchdog",
        "groupLabels": {"alertname": common["alertname"]} if "alertname" in common else {},
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": list(alerts),
    }
