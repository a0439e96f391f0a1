"""Stub of `api-gateway-internal`: per-provider circuit breakers in front of fake providers.

Enrichment's background traffic goes through `POST /providers/{p}/call`; an injected
outage makes that provider answer 502, which trips its breaker after five failures,
exactly the signal (`api_gateway_circuit_breaker_state{provider} 2`) the real stack's
alerts and the watchdog's probes key on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from watchdog.sandbox import jsonhttp, runtime
from watchdog.sandbox.catalog import PROVIDERS
from watchdog.sandbox.jsonhttp import HttpError, Request, Response, json_response
from watchdog.sandbox.metrics import Family, render_all

FAILURE_THRESHOLD = 5
OPEN_TIMEOUT_SECONDS = 60.0
STATE_VALUES = {"CLOSED": 0, "HALF_OPEN": 1, "OPEN": 2}


class Breaker:
    """CLOSED -> OPEN after `threshold` failures; OPEN -> HALF_OPEN after `timeout` s;
    HALF_OPEN -> CLOSED on a success, back to OPEN on a failure."""

    def __init__(self, threshold: int = FAILURE_THRESHOLD,
                 timeout: float = OPEN_TIMEOUT_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.timeout = timeout
        self._clock = clock
        self._state = "CLOSED"
        self._failures = 0
        self._last_failure: float | None = None
        self._opened_at = 0.0
        self._lock = threading.Lock()

    def _advance(self) -> None:
        if self._state == "OPEN" and self._clock() - self._opened_at >= self.timeout:
            self._state = "HALF_OPEN"

    @property
    def state(self) -> str:
        """Current state, after applying the OPEN timeout."""
        with self._lock:
            self._advance()
            return self._state

    def allow(self) -> bool:
        """Whether a call may go through (not while OPEN)."""
        return self.state != "OPEN"

    def record_success(self) -> None:
        """A success closes a half-open breaker and clears the failure count."""
        with self._lock:
            self._advance()
            self._state = "CLOSED" if self._state == "HALF_OPEN" else self._state
            self._failures = 0

    def record_failure(self) -> bool:
        """Count a failure; returns True when this failure opened the breaker."""
        with self._lock:
            self._advance()
            self._failures += 1
            self._last_failure = time.time()
            if self._state == "HALF_OPEN" or (
                    self._state == "CLOSED" and self._failures >= self.threshold):
                self._state = "OPEN"
                self._opened_at = self._clock()
                return True
            return False

    def reset(self) -> None:
        """Force CLOSED with a zero count (what the admin endpoint does)."""
        with self._lock:
            self._state = "CLOSED"
            self._failures = 0

    def describe(self) -> dict[str, Any]:
        """The per-provider body of GET /admin/circuit-breakers."""
        with self._lock:
            self._advance()
            last = self._last_failure
            return {
                "state": self._state,
                "failure_count": self._failures,
                "failure_threshold": self.threshold,
                "last_failure_time": (datetime.fromtimestamp(last, UTC).isoformat()
                                      if last is not None else None),
            }


class Gateway:
    """State and routes of the gateway stub."""

    def __init__(self) -> None:
        self.breakers = {p: Breaker() for p in PROVIDERS}
        self.outages: set[str] = set()
        self._lock = threading.Lock()
        self.state_gauge = Family("api_gateway_circuit_breaker_state",
                                  "Circuit breaker state (0=closed, 1=half_open, 2=open)",
                                  "gauge", ("provider",))
        self.requests = Family("api_gateway_requests_total", "Requests through the gateway",
                               "counter", ("provider", "endpoint", "status"))
        self.opens = Family("api_gateway_circuit_breaker_opens_total",
                            "Times a breaker opened", "counter", ("provider",))
        for provider in PROVIDERS:
            self.opens.touch(provider=provider)

    def _provider(self, request: Request) -> str:
        provider = request.params["provider"]
        if provider not in self.breakers:
            raise HttpError(404, f"Provider not found: {provider}")
        return provider

    def router(self) -> jsonhttp.Router:
        """All routes of the stub."""
        router = jsonhttp.Router()
        router.add("GET", "/health", self.health)
        router.add("GET", "/admin/circuit-breakers", self.list_breakers)
        router.add("POST", "/admin/circuit-breakers/{provider}/reset", self.reset)
        router.add("GET", "/metrics", self.metrics)
        router.add("POST", "/providers/{provider}/call", self.call)
        router.add("GET", "/_sandbox/outage", self.get_outages)
        router.add("POST", "/_sandbox/outage", self.set_outage)
        return router

    def health(self, request: Request) -> Response:
        """Real shape: breakers by name, adapters list, implementation tag."""
        return json_response({
            "status": "healthy",
            "redis": "connected",
            "adapters": list(PROVIDERS),
            "circuit_breakers": {p: b.state for p, b in self.breakers.items()},
            "implementation": "sandbox",
        })

    def list_breakers(self, request: Request) -> Response:
        """Per provider: state, failure_count, failure_threshold, last_failure_time."""
        return json_response({p: b.describe() for p, b in self.breakers.items()})

    def reset(self, request: Request) -> Response:
        """Close one breaker."""
        provider = self._provider(request)
        self.breakers[provider].reset()
        return json_response({"provider": provider, "status": "reset",
                              "new_state": self.breakers[provider].state})

    def metrics(self, request: Request) -> Response:
        """Gauge values are refreshed at scrape time so the OPEN timeout shows up."""
        for provider, breaker in self.breakers.items():
            self.state_gauge.set(STATE_VALUES[breaker.state], provider=provider)
        return jsonhttp.text_response(render_all(self.state_gauge, self.requests, self.opens))

    def call(self, request: Request) -> Response:
        """One provider call: 503 if the breaker is open, 502 during an outage, else 200."""
        provider = self._provider(request)
        breaker = self.breakers[provider]
        if not breaker.allow():
            self.requests.inc(provider=provider, endpoint="call", status="circuit_open")
            raise HttpError(503, f"Circuit breaker OPEN for {provider}")
        with self._lock:
            down = provider in self.outages
        if down:
            if breaker.record_failure():
                self.opens.inc(provider=provider)
            self.requests.inc(provider=provider, endpoint="call", status="error")
            raise HttpError(502, f"{provider} upstream error (sandbox outage)")
        breaker.record_success()
        self.requests.inc(provider=provider, endpoint="call", status="success")
        return json_response({"provider": provider, "status": "ok",
                              "timestamp": runtime.utc_now_iso()})

    def get_outages(self, request: Request) -> Response:
        """Providers currently failing (sandbox-internal)."""
        with self._lock:
            return json_response({"outages": sorted(self.outages)})

    def set_outage(self, request: Request) -> Response:
        """`{"provider", "down": bool}` from the supervisor's fault injector."""
        body = request.json()
        provider = body.get("provider") if isinstance(body, dict) else None
        if not isinstance(provider, str) or provider not in self.breakers:
            raise HttpError(400, f"unknown provider {provider!r}; known: {', '.join(PROVIDERS)}")
        down = bool(body.get("down", True))
        with self._lock:
            if down:
                self.outages.add(provider)
            else:
                self.outages.discard(provider)
            return json_response({"provider": provider, "down": down,
                                  "outages": sorted(self.outages)})


def main(port: int, control_url: str, name: str) -> None:
    """Run the gateway stub until signalled."""
    runtime.serve(Gateway().router(), port)
