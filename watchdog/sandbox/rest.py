"""Stub of `rest-api`'s health endpoint, reproducing its trap.

When the database is unreachable the real service says "unhealthy" but still answers
HTTP 200 (only pool or memory exhaustion gives 503), so a probe that looks only at the
status code sees a healthy service. The database check is a TCP connect to the
postgres stub, as in enrichment.
"""

from __future__ import annotations

from watchdog.sandbox import jsonhttp, runtime
from watchdog.sandbox.jsonhttp import Request, Response, json_response


class RestApi:
    """Routes of the rest-api stub."""

    def __init__(self, control_url: str) -> None:
        self.peers = runtime.Peers(control_url)

    def router(self) -> jsonhttp.Router:
        """All routes of the stub."""
        router = jsonhttp.Router()
        router.add("GET", "/health", self.health)
        return router

    def health(self, request: Request) -> Response:
        """unhealthy without the database, degraded without a dependency, always HTTP 200."""
        database = runtime.peer_tcp_check(self.peers, "postgres") == "healthy"
        available = {
            "redis": runtime.peer_tcp_check(self.peers, "redis") == "healthy",
            "rabbitmq": runtime.peer_tcp_check(self.peers, "rabbitmq") == "healthy",
            "metadata_enrichment":
                runtime.peer_tcp_check(self.peers, "metadata-enrichment") == "healthy",
        }
        status = "unhealthy" if not database else "healthy" if all(available.values()) \
            else "degraded"
        return json_response({
            "status": status,
            "timestamp": runtime.utc_now_iso(),
            "database_connected": database,
            "services_available": available,
        })


def main(port: int, control_url: str, name: str) -> None:
    """Run the rest-api stub until signalled."""
    runtime.serve(RestApi(control_url).router(), port)
