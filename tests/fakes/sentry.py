"""A fake Sentry: /api/<project_id>/envelope/, gunzipped and parsed with sentry-sdk itself."""

from __future__ import annotations

import gzip
import re
from typing import Any

from sentry_sdk.envelope import Envelope

from tests.fakes.receiver import Answer, FakeReceiver

ENVELOPE_PATH = re.compile(r"^/api/(\d+)/envelope/$")


class FakeSentry(FakeReceiver):
    """Accepts envelopes for one project and key; keeps the raw bytes and the events."""

    name = "sentry"

    def __init__(
        self, public_key: str = "0123456789abcdef0123456789abcdef", project: int = 42
    ) -> None:
        super().__init__()
        self.public_key = public_key
        self.project = project
        self.envelopes: list[Envelope] = []
        self.bodies: list[bytes] = []

    @property
    def dsn(self) -> str:
        return f"http://{self.public_key}@127.0.0.1:{self.port}/{self.project}"

    def handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Answer:
        match = ENVELOPE_PATH.match(path.split("?", maxsplit=1)[0])
        if method != "POST" or match is None:
            return Answer.of_json(404, {"detail": "not found"})
        if int(match.group(1)) != self.project:
            return Answer.of_json(404, {"detail": "unknown project"})
        auth = headers.get("x-sentry-auth", "")
        if f"sentry_key={self.public_key}" not in auth or "sentry_version=7" not in auth:
            return Answer.of_json(401, {"detail": "missing or wrong X-Sentry-Auth"})
        if headers.get("content-type") != "application/x-sentry-envelope":
            return Answer.of_json(415, {"detail": "expected application/x-sentry-envelope"})
        encoding = headers.get("content-encoding", "")
        if encoding not in ("", "gzip"):
            return Answer.of_json(415, {"detail": f"cannot decode {encoding}"})
        body = gzip.decompress(raw) if encoding == "gzip" else raw
        envelope = Envelope.deserialize(body)
        with self._lock:
            self.bodies.append(body)
            self.envelopes.append(envelope)
        return Answer.of_json(200, {"id": (envelope.headers or {}).get("event_id")})

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            envelopes = list(self.envelopes)
        return [
            item.payload.json
            for envelope in envelopes
            for item in envelope.items
            if item.type == "event" and item.payload.json is not None
        ]
