"""Fake PagerDuty, Opsgenie, Slack and generic webhook receivers, strict as the vendors.

Each checks every request against VENDOR-FACTS.md and answers as its vendor
does: PagerDuty 202 / 400 "invalid event"; Opsgenie 202 / 401 / 422; Slack
200 "ok" / 400 invalid_payload / 404 no_service; the webhook 200 / 401 / 400.
PagerDuty and Opsgenie also keep which alerts are open, by dedup key or alias,
as the vendor folds triggers and resolves, so a test sees what the on-call sees.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.receiver import Answer, FakeReceiver, parse_json

PD_SEVERITIES = {"critical", "error", "warning", "info"}
PD_ACTIONS = {"trigger", "acknowledge", "resolve"}
PD_MAX_BYTES = 512 * 1024
RESPONDER_TYPES = {"team", "user", "escalation", "schedule"}
PRIORITIES = {"P1", "P2", "P3", "P4", "P5"}


class FakePagerDuty(FakeReceiver):
    """Events API v2 at /v2/enqueue; knows one 32-character routing key."""

    name = "pagerduty"

    def __init__(self, routing_key: str) -> None:
        if len(routing_key) != 32:
            raise ValueError("a PagerDuty routing key has 32 characters")
        super().__init__()
        self.routing_key = routing_key
        self.open_keys: set[str] = set()  # alerts triggered and not resolved, by dedup_key

    def bad_request(self, why: str) -> Answer:
        return Answer.of_json(
            400, {"status": "invalid event", "message": "Event object is invalid", "errors": [why]}
        )

    def failure(self, status: int) -> Answer:
        if status == 429:
            return Answer.of_json(
                429,
                {
                    "status": "throttle exceeded",
                    "message": "Requests for this service are arriving too quickly.",
                },
            )
        return Answer.of_json(status, {"status": "error", "message": "internal error"})

    def handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Answer:
        if method != "POST" or path != "/v2/enqueue":
            return Answer.of_json(404, {"status": "not found", "message": f"no {method} {path}"})
        if len(raw) > PD_MAX_BYTES:
            return self.bad_request(f"event is {len(raw)} bytes, over 512 KB")
        event, error = parse_json(raw)
        if error is not None or not isinstance(event, dict):
            return self.bad_request(error or "the event must be a JSON object")
        errors = pagerduty_errors(event, self.routing_key)
        if errors:
            return Answer.of_json(
                400,
                {"status": "invalid event", "message": "Event object is invalid", "errors": errors},
            )
        key = event.get("dedup_key") or uuid.uuid4().hex
        with self._lock:
            if event["event_action"] == "trigger":
                self.open_keys.add(key)
            elif event["event_action"] == "resolve":
                self.open_keys.discard(key)
        return Answer.of_json(
            202, {"status": "success", "message": "Event processed", "dedup_key": key}
        )

    def events(self, action: str | None = None) -> list[dict[str, Any]]:
        bodies = [r.json() for r in self.accepted]
        return [b for b in bodies if action in (None, b["event_action"])]


def pagerduty_errors(event: dict[str, Any], routing_key: str) -> list[str]:
    errors: list[str] = []
    if event.get("routing_key") != routing_key:
        errors.append("'routing_key' is missing or not a valid integration key")
    action = event.get("event_action")
    if action not in PD_ACTIONS:
        errors.append(f"'event_action' must be one of {sorted(PD_ACTIONS)}, got {action!r}")
    dedup = event.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
        errors.append("'dedup_key' must be a string of at most 255 characters")
    if action in ("acknowledge", "resolve") and not dedup:
        errors.append(f"'dedup_key' is required to {action}")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            return [*errors, "'payload' is required to trigger"]
        summary = payload.get("summary")
        if not isinstance(summary, str) or not summary or len(summary) > 1024:
            errors.append("'payload.summary' is required, at most 1024 characters")
        if not isinstance(payload.get("source"), str) or not payload["source"]:
            errors.append("'payload.source' is required")
        if payload.get("severity") not in PD_SEVERITIES:
            errors.append(f"'payload.severity' must be one of {sorted(PD_SEVERITIES)}")
        details = payload.get("custom_details")
        if details is not None and not isinstance(details, dict):
            errors.append("'payload.custom_details' must be an object")
        for link in event.get("links", []):
            if not isinstance(link, dict) or not link.get("href"):
                errors.append("every entry of 'links' needs 'href'")
        for image in event.get("images", []):
            if not isinstance(image, dict) or not str(image.get("src", "")).startswith("https://"):
                errors.append("every entry of 'images' needs an https 'src'")
    return errors


class FakeOpsgenie(FakeReceiver):
    """The Alert API: create at /v2/alerts, close at /v2/alerts/{alias}/close."""

    name = "opsgenie"

    def __init__(self, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.open_aliases: set[str] = set()

    def _answer(self, status: int, **body: Any) -> Answer:
        return Answer.of_json(status, {**body, "took": 0.01, "requestId": str(uuid.uuid4())})

    def bad_request(self, why: str) -> Answer:
        return self._answer(422, message=why)

    def failure(self, status: int) -> Answer:
        return self._answer(status, message="scripted failure")

    def handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Answer:
        if headers.get("authorization") != f"GenieKey {self.api_key}":
            return self._answer(401, message="Could not authenticate")
        parts = urlsplit(path)
        segments = parts.path.split("/")
        body, error = parse_json(raw) if raw else ({}, None)
        if error is not None or not isinstance(body, dict):
            return self._answer(400, message=error or "body must be a JSON object")
        if method == "POST" and parts.path == "/v2/alerts":
            errors = opsgenie_create_errors(body)
            if errors:
                return self._answer(422, message="; ".join(errors))
            self.open_aliases.add(body.get("alias", ""))
            return self._answer(202, result="Request will be processed")
        if (
            method == "POST"
            and len(segments) == 5
            and segments[:3] == ["", "v2", "alerts"]
            and segments[4] == "close"
        ):
            if parse_qs(parts.query).get("identifierType") != ["alias"]:
                return self._answer(422, message="identifierType must be alias here")
            for name in ("user", "source", "note"):
                if name in body and not isinstance(body[name], str):
                    return self._answer(422, message=f"'{name}' must be a string")
            self.open_aliases.discard(unquote(segments[3]))
            return self._answer(202, result="Request will be processed")
        return self._answer(404, message=f"no {method} {parts.path}")

    def creates(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.accepted if urlsplit(r.path).path == "/v2/alerts"]

    def closes(self) -> list[str]:
        return [
            unquote(urlsplit(r.path).path.split("/")[3])
            for r in self.accepted
            if r.path.split("?")[0].endswith("/close")
        ]


def opsgenie_create_errors(body: dict[str, Any]) -> list[str]:
    errors: list[str] = []
    message = body.get("message")
    if not isinstance(message, str) or not message.strip():
        errors.append("Message can not be empty.")
    elif len(message) > 130:
        errors.append("Message can not be longer than 130 characters.")
    limits = {"alias": 512, "description": 15000, "entity": 512, "source": 100}
    for name, limit in limits.items():
        if name in body and (not isinstance(body[name], str) or len(body[name]) > limit):
            errors.append(f"'{name}' must be a string of at most {limit} characters")
    for responder in body.get("responders", []):
        if not isinstance(responder, dict) or responder.get("type") not in RESPONDER_TYPES:
            errors.append(f"responder type must be one of {sorted(RESPONDER_TYPES)}")
        elif not any(responder.get(k) for k in ("id", "name", "username")):
            errors.append("a responder needs an id, a name or a username")
    tags = body.get("tags", [])
    if not isinstance(tags, list) or len(tags) > 20 or not all(isinstance(t, str) for t in tags):
        errors.append("'tags' must be at most 20 strings")
    details = body.get("details", {})
    if not isinstance(details, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in details.items()
    ):
        errors.append("'details' must map strings to strings")
    if "priority" in body and body["priority"] not in PRIORITIES:
        errors.append(f"'priority' must be one of {sorted(PRIORITIES)}")
    return errors


class FakeSlack(FakeReceiver):
    """An incoming webhook at one secret path, as hooks.slack.com serves it."""

    name = "slack"

    def __init__(self, secret_path: str = "/services/T0WATCH/B0DOG/Xs3cr3tW3bh00kP4th") -> None:
        super().__init__()
        self.path = secret_path

    @property
    def webhook_url(self) -> str:
        return self.url + self.path

    def bad_request(self, why: str) -> Answer:
        return Answer.of_text(400, "invalid_payload")

    def failure(self, status: int) -> Answer:
        return Answer.of_text(status, "rate_limited" if status == 429 else "internal_error")

    def handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Answer:
        if method != "POST" or path != self.path:
            return Answer.of_text(404, "no_service")
        body, error = parse_json(raw)
        if error is not None or not isinstance(body, dict) or slack_errors(body):
            return self.bad_request("invalid")
        return Answer.of_text(200, "ok")

    def messages(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.accepted]


def slack_errors(body: dict[str, Any]) -> list[str]:
    errors: list[str] = []
    blocks = body.get("blocks")
    text = body.get("text")
    if not blocks and not (isinstance(text, str) and text):
        errors.append("text is required unless blocks are given")
    if blocks is not None:
        if not isinstance(blocks, list) or len(blocks) > 50:
            return [*errors, "at most 50 blocks"]
        for block in blocks:
            kind = block.get("type") if isinstance(block, dict) else None
            inner = block.get("text", {}) if isinstance(block, dict) else {}
            words = inner.get("text") if isinstance(inner, dict) else None
            if kind == "header":
                if inner.get("type") != "plain_text" or not words or len(words) > 150:
                    errors.append("a header needs plain_text of at most 150 characters")
            elif kind == "section":
                if (
                    inner.get("type") not in ("mrkdwn", "plain_text")
                    or not words
                    or len(words) > 3000
                ):
                    errors.append("a section needs text of at most 3000 characters")
            elif kind not in ("divider", "context", "actions", "image"):
                errors.append(f"unknown block type {kind!r}")
    return errors


class FakeWebhook(FakeReceiver):
    """A generic JSON webhook at /hook that wants a bearer token."""

    name = "webhook"

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    @property
    def hook_url(self) -> str:
        return self.url + "/hook"

    def handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Answer:
        if method != "POST" or path != "/hook":
            return Answer.of_json(404, {"message": "no such hook"})
        if headers.get("authorization") != f"Bearer {self.token}":
            return Answer.of_json(401, {"message": "missing or wrong bearer token"})
        body, error = parse_json(raw)
        if error is not None or not isinstance(body, dict):
            return self.bad_request(error or "body must be a JSON object")
        missing = [k for k in ("event", "dedup_key", "summary", "incident") if not body.get(k)]
        if missing:
            return self.bad_request(f"missing {missing}")
        return Answer.of_json(200, {"ok": True})

    def events(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.accepted]
