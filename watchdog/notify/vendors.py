"""Each vendor's payload for a page, within the vendor's limits: pure, and free of secrets.

The bodies are what the outbox journals; the secret each vendor needs (the
PagerDuty routing key, the Opsgenie GenieKey, the webhook URL or token) is added
by `watchdog.notify.channels` only when the request is sent. Limits are those of
VENDOR-FACTS.md. Every body that carries a key carries the page's `dedup_key`, the
incident's own (`<stack>/<incident id>`), never the fault key another incident shares.
"""

from __future__ import annotations

from typing import Any

from watchdog.model import Severity
from watchdog.notify.page import Page, dedup_key, incident_dedup_key, iso_utc
from watchdog.policy.schema import Responder

__all__ = [
    "dedup_key",
    "incident_dedup_key",
    "opsgenie_body",
    "pagerduty_body",
    "slack_body",
    "webhook_body",
]

PD_SUMMARY_MAX = 1024
OPSGENIE_MESSAGE_MAX = 130
OPSGENIE_DESCRIPTION_MAX = 15000
OPSGENIE_TAGS_MAX = 20
OPSGENIE_ENTITY_MAX = 512
OPSGENIE_NOTE_MAX = 25000
SLACK_HEADER_MAX = 150
SLACK_SECTION_MAX = 3000
SLACK_BLOCKS_MAX = 50

PD_SEVERITY = {
    Severity.P0: "critical",
    Severity.P1: "error",
    Severity.P2: "warning",
    Severity.P3: "info",
}
OPSGENIE_PRIORITY = {Severity.P0: "P1", Severity.P1: "P2", Severity.P2: "P3", Severity.P3: "P4"}


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, with an ellipsis saying so."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pagerduty_body(page: Page) -> dict[str, Any]:
    """An Events API v2 event without its routing_key."""
    key = page.dedup_key
    if page.event != "trigger":
        return {"event_action": page.event, "dedup_key": key}
    return {
        "event_action": "trigger",
        "dedup_key": key,
        "payload": {
            "summary": clip(f"{page.headline}: {page.why_now}", PD_SUMMARY_MAX),
            "source": f"watchdog/{page.stack}",
            "severity": PD_SEVERITY[page.severity],
            "timestamp": iso_utc(page.at),
            "component": page.subject or page.key,
            "group": page.stack,
            "class": page.scenario,
            "custom_details": page.details(),
        },
        "client": "watchdog",
        "client_url": page.link,
        "links": [{"href": page.link, "text": "incident page: approve or reject the plan"}],
    }


def opsgenie_body(page: Page, responders: list[Responder]) -> dict[str, Any] | None:
    """An alert to create (trigger) or the body of a close by alias (resolve).

    Opsgenie acknowledgements name a user, which the watchdog is not: None.
    """
    if page.event == "acknowledge":
        return None
    if page.event == "resolve":
        return {"user": "watchdog", "source": "watchdog", "note": clip(page.why_now, 1000)}
    tags = ["watchdog", page.severity.value, page.scenario, page.stack, page.state]
    return {
        "message": clip(page.headline, OPSGENIE_MESSAGE_MAX),
        "alias": page.dedup_key,  # the same key as PagerDuty's, within both limits
        "description": clip(page.text(), OPSGENIE_DESCRIPTION_MAX),
        "responders": [
            {"type": r.type, "name": r.name}
            for r in dict.fromkeys((*responders, *page.responders))
        ],
        "tags": list(dict.fromkeys(tags))[:OPSGENIE_TAGS_MAX],
        "details": {
            "incident": str(page.incident_id),
            "severity": page.severity.value,
            "scenario": page.scenario,
            "subject": page.subject,
            "state": page.state,
            "link": page.link,
            "approve": page.approve_command,
            "reject": page.reject_command,
        },
        "entity": clip(page.subject or page.key, OPSGENIE_ENTITY_MAX),
        "source": "watchdog",
        "priority": OPSGENIE_PRIORITY[page.severity],
    }


def slack_body(page: Page) -> dict[str, Any]:
    """`text` (the notification's fallback) and blocks: a header, then one section each."""
    fallback = f"{page.headline}: {page.why_now} {page.link}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": clip(page.headline, 150)}},
        _section(f"*Why this page:* {page.why_now}"),
    ]
    if page.event == "trigger":
        blocks += [_section(f"*{title}*\n{body}") for title, body in page.sections()]
    else:
        blocks.append(_section(f"<{page.link}|incident {page.incident_id}>"))
    return {"text": clip(fallback, SLACK_SECTION_MAX), "blocks": blocks[:SLACK_BLOCKS_MAX]}


def webhook_body(page: Page) -> dict[str, Any]:
    """The generic JSON webhook: the event, a one-line summary and the whole page."""
    return {
        "version": "1",
        "source": "watchdog",
        "event": page.event,
        "dedup_key": page.dedup_key,
        "summary": page.headline,
        "at": iso_utc(page.at),
        "incident": page.details(),
    }


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, SLACK_SECTION_MAX)}}
