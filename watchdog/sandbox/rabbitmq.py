"""Stub of RabbitMQ's management API, reduced to the one queue the watchdog must watch.

The true DLQ depth lives here, not on dlq-manager (whose /dlq/stats always says 0):
broken workers dead-letter messages into `enrichment.dlq.queue`; once nothing has
arrived for 2 s, the dlq-manager's replay drains it at 1000 messages/s.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hmac
import threading
import time
from collections.abc import Callable

from watchdog.sandbox import jsonhttp, runtime
from watchdog.sandbox.catalog import DLQ_QUEUE, RABBITMQ_PASSWORD, RABBITMQ_USER, RABBITMQ_VHOST
from watchdog.sandbox.jsonhttp import HttpError, Request, Response, json_response

DRAIN_PER_SECOND = 1000.0
QUIET_BEFORE_DRAIN_SECONDS = 2.0
RATE_WINDOW_SECONDS = 3.0


class DeadLetterQueue:
    """Queue depth as a function of time: grows by arrivals, drains after a quiet spell.

    Computed lazily on every read or write, so no background thread is needed and the
    numbers are exact whenever they are observed.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._depth = 0.0
        self._published = 0
        self._last_arrival: float | None = None
        self._last_advance = clock()
        self._arrivals: collections.deque[tuple[float, int]] = collections.deque()
        self._lock = threading.Lock()

    def _advance(self, now: float) -> None:
        if self._last_arrival is not None:
            drain_from = max(self._last_advance, self._last_arrival + QUIET_BEFORE_DRAIN_SECONDS)
            if now > drain_from:
                self._depth = max(0.0, self._depth - DRAIN_PER_SECOND * (now - drain_from))
        self._last_advance = now
        while self._arrivals and self._arrivals[0][0] < now - RATE_WINDOW_SECONDS:
            self._arrivals.popleft()

    def add(self, count: int) -> int:
        """Dead-letter `count` messages; returns the new depth."""
        with self._lock:
            now = self._clock()
            self._advance(now)
            self._depth += count
            self._published += count
            self._last_arrival = now
            self._arrivals.append((now, count))
            return int(self._depth)

    def snapshot(self) -> tuple[int, float, int]:
        """(depth, publish rate per second over the last few seconds, total published)."""
        with self._lock:
            self._advance(self._clock())
            rate = sum(n for _, n in self._arrivals) / RATE_WINDOW_SECONDS
            return int(self._depth), round(rate, 1), self._published


def _authorized(request: Request) -> bool:
    header = request.headers.get("Authorization") or ""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    given = f"{user}:{password}".encode()
    return hmac.compare_digest(given, f"{RABBITMQ_USER}:{RABBITMQ_PASSWORD}".encode())


class RabbitMQ:
    """Routes of the management stub."""

    def __init__(self) -> None:
        self.dlq = DeadLetterQueue()

    def router(self) -> jsonhttp.Router:
        """All routes of the stub."""
        router = jsonhttp.Router()
        router.add("GET", "/api/overview", self.overview)
        router.add("GET", "/api/queues/{vhost}/{queue}", self.queue)
        router.add("POST", "/_sandbox/dead-letter", self.dead_letter)
        return router

    def _unauthorized(self) -> Response:
        return json_response({"error": "not_authorized", "reason": "Not_Authorized"}, 401,
                             (("WWW-Authenticate", 'Basic realm="RabbitMQ Management"'),))

    def overview(self, request: Request) -> Response:
        """Enough of /api/overview for a liveness probe."""
        if not _authorized(request):
            return self._unauthorized()
        return json_response({"management_version": "3.12-sandbox",
                              "cluster_name": "rabbit@sandbox"})

    def queue(self, request: Request) -> Response:
        """The real body's fields for the DLQ; 404 for any other queue, 401 without auth."""
        if not _authorized(request):
            return self._unauthorized()
        vhost, name = request.params["vhost"], request.params["queue"]
        if vhost != RABBITMQ_VHOST or name != DLQ_QUEUE:
            return json_response({"error": "Object Not Found", "reason": "Not Found"}, 404)
        depth, rate, published = self.dlq.snapshot()
        return json_response({
            "name": name,
            "vhost": vhost,
            "durable": True,
            "state": "running",
            "consumers": 1,
            "messages": depth,
            "messages_ready": depth,
            "messages_unacknowledged": 0,
            "message_stats": {"publish": published, "publish_details": {"rate": rate}},
            "timestamp": runtime.utc_now_iso(),
        })

    def dead_letter(self, request: Request) -> Response:
        """Sandbox-internal: workers report dead-lettered messages here (`?n=N`)."""
        try:
            count = int(request.query.get("n", "1"))
        except ValueError as exc:
            raise HttpError(400, f"n must be an integer, got {request.query.get('n')!r}") from exc
        if count < 0:
            raise HttpError(400, f"n must be >= 0, got {count}")
        return json_response({"queue": DLQ_QUEUE, "messages": self.dlq.add(count)})


def main(port: int, control_url: str, name: str) -> None:
    """Run the management API stub until signalled."""
    runtime.serve(RabbitMQ().router(), port)
