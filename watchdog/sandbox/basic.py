"""Health-only stubs for the services the watchdog merely watches and restarts.

audio-analysis, the Node api-gateway, graph-visualization-api and the scrapers matter
to the watchdog only as health targets and as restart targets (the scrapers depend on
metadata-enrichment, so scenario 1 restarts them). They answer `/health` (and the Node
gateway's `/health/detailed`) and nothing else.
"""

from __future__ import annotations

from watchdog.sandbox import jsonhttp, runtime
from watchdog.sandbox.jsonhttp import Request, Response, json_response


class HealthOnly:
    """Routes of a health-only stub."""

    def __init__(self, name: str) -> None:
        self.name = name

    def router(self) -> jsonhttp.Router:
        """All routes of the stub."""
        router = jsonhttp.Router()
        router.add("GET", "/health", self.health)
        router.add("GET", "/health/detailed", self.detailed)
        return router

    def health(self, request: Request) -> Response:
        """Alive means healthy."""
        return json_response({"status": "healthy", "service": self.name,
                              "timestamp": runtime.utc_now_iso()})

    def detailed(self, request: Request) -> Response:
        """The Node gateway's detailed variant; same verdict, a little more body."""
        return json_response({"status": "healthy", "service": self.name,
                              "timestamp": runtime.utc_now_iso(),
                              "checks": {"process": {"status": "healthy"}}})


def main(port: int, control_url: str, name: str) -> None:
    """Run a health-only stub until signalled."""
    runtime.serve(HealthOnly(name).router(), port)
