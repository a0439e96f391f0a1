"""Stub of `dlq-manager`, reproducing its blind spot.

Its stats channel is never connected in the real service, so `/dlq/stats` reports
`total_messages: 0` and `queue_stats: {}` and the `dlq_messages_total` gauge is never
set, whatever the real queue depth is. Only a broker outage changes its answer (503).
A watchdog that trusts this service cannot see a DLQ overflow; that is the point.
"""

from __future__ import annotations

from watchdog.sandbox import jsonhttp, runtime
from watchdog.sandbox.jsonhttp import HttpError, Request, Response, json_response
from watchdog.sandbox.metrics import Family, render_all

SERVICE = "dlq-manager"


class DlqManager:
    """Routes of the dlq-manager stub."""

    def __init__(self, control_url: str) -> None:
        self.peers = runtime.Peers(control_url)
        self.depth_gauge = Family("dlq_messages_total", "Messages in dead letter queues",
                                  "gauge", ())
        self.depth_gauge.touch()

    def router(self) -> jsonhttp.Router:
        """All routes of the stub."""
        router = jsonhttp.Router()
        router.add("GET", "/health", self.health)
        router.add("GET", "/dlq/stats", self.stats)
        router.add("GET", "/metrics", self.metrics)
        return router

    def _broker(self) -> str:
        return runtime.peer_tcp_check(self.peers, "rabbitmq")

    def health(self, request: Request) -> Response:
        """Healthy as long as the process runs; reports the broker connection."""
        broker = self._broker()
        return json_response({
            "status": "healthy",
            "service": SERVICE,
            "rabbitmq": "connected" if broker == "healthy" else "disconnected",
            "timestamp": runtime.utc_now_iso(),
        })

    def stats(self, request: Request) -> Response:
        """The trap: always zero and an empty queue_stats while the broker is reachable."""
        if self._broker() != "healthy":
            raise HttpError(503, "RabbitMQ connection not available")
        return json_response({
            "total_messages": 0,
            "by_error_type": {},
            "by_service": {},
            "oldest_message_age_seconds": None,
            "newest_message_age_seconds": None,
            "queue_stats": {},
        })

    def metrics(self, request: Request) -> Response:
        """The gauge is exported but never set: it stays 0."""
        return jsonhttp.text_response(render_all(self.depth_gauge))


def main(port: int, control_url: str, name: str) -> None:
    """Run the dlq-manager stub until signalled."""
    runtime.serve(DlqManager(control_url).router(), port)
