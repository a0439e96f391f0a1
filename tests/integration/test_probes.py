"""Probes against real sockets on 127.0.0.1 that speak the stack's shapes and traps.

Each test starts a small threaded HTTP server (or a RESP server on the loop) on
a free port, serves bodies shaped like TARGET-STACK.md's endpoints, and checks
the Observations a probe makes of them, failures included.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from structlog.testing import capture_logs

from watchdog.model import Observation, Severity
from watchdog.policy.schema import (
    AlertSignal,
    AnySignal,
    AuthorityRow,
    DerivedSignal,
    HostSignal,
    HttpSignal,
    Policy,
    PrometheusSignal,
    StackSpec,
    TargetSpec,
    TcpSignal,
)
from watchdog.probes.base import ProbedSignal, build_probe
from watchdog.probes.host import HostProbe
from watchdog.probes.http import NOT_JSON, HttpProbe
from watchdog.probes.prometheus import WARMING_UP, PrometheusProbe
from watchdog.probes.scheduler import ProbeScheduler, observe_all
from watchdog.probes.tcp import TcpProbe

HOST = "127.0.0.1"
PROM = "text/plain; version=0.0.4; charset=utf-8"


# --- a stub HTTP server ---------------------------------------------------------------


@dataclass
class Route:
    bodies: list[bytes]
    status: int = 200
    content_type: str = "application/json"
    hang: float = 0.0
    auth: tuple[str, str] | None = None


@dataclass
class StubServer:
    """Serves fixed routes; successive GETs of a route walk through its bodies."""

    routes: dict[str, Route] = field(default_factory=dict)
    hits: Counter[str] = field(default_factory=Counter)
    release: threading.Event = field(default_factory=threading.Event)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def json(self, path: str, payload: Any, *, status: int = 200, **options: Any) -> None:
        self.routes[path] = Route([json.dumps(payload).encode()], status=status, **options)

    def text(self, path: str, *bodies: str, content_type: str = PROM, **options: Any) -> None:
        encoded = [body.encode() for body in bodies]
        self.routes[path] = Route(encoded, content_type=content_type, **options)

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        route = self.routes.get(handler.path)
        if route is None:
            self._send(handler, 404, "application/json", b'{"detail":"Not Found"}')
            return
        if route.auth is not None:
            user, password = route.auth
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            if handler.headers.get("Authorization") != f"Basic {token}":
                self._send(handler, 401, "application/json", b'{"error":"not authorised"}')
                return
        if route.hang:
            self.release.wait(route.hang)
        body = route.bodies[min(self.hits[handler.path], len(route.bodies) - 1)]
        self.hits[handler.path] += 1
        self._send(handler, route.status, route.content_type, body)

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, kind: str, body: bytes) -> None:
        with contextlib.suppress(OSError):
            handler.send_response(status)
            handler.send_header("Content-Type", kind)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)


@pytest.fixture
def stub() -> Iterator[StubServer]:
    server = StubServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server.answer(self)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer((HOST, 0), Handler)
    httpd.daemon_threads = True
    server.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield server
    server.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest_asyncio.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as shared:
        yield shared


def free_port() -> int:
    """A port nothing listens on: bound once by us, then closed."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    return port


def policy(signals: list[AnySignal], **targets: TargetSpec) -> Policy:
    row = AuthorityRow(safe="auto", risky="never", destructive="never")
    return Policy(
        version=1,
        stack=StackSpec(name="songnodes"),
        targets=targets,
        signals=signals,
        authority=dict.fromkeys(Severity, row),
    )


def http_probe(
    client: httpx.AsyncClient, url: str, target: str = "metadata-enrichment", **spec: Any
) -> HttpProbe:
    spec.setdefault("timeout", 5.0)  # roomy, so a loaded test machine is not a failure
    signal = HttpSignal(kind="http", name=spec.pop("name", "probe"), target=target, **spec)
    probe = build_probe(signal, policy([signal], **{target: TargetSpec(url=url)}), client)
    assert isinstance(probe, HttpProbe)
    return probe


async def observe_one(probe: HttpProbe | PrometheusProbe | TcpProbe | HostProbe) -> Observation:
    observations = await probe.observe()
    assert len(observations) == 1, observations
    return observations[0]


# --- HTTP health, value and series ----------------------------------------------------

ENRICHMENT_HEALTHY_WHEN = [
    "status == 'healthy'",
    "connections.database == 'healthy'",
    "connections.redis == 'healthy'",
]


def enrichment_health(database: str) -> dict[str, Any]:
    return {
        "service": "metadata-enrichment",
        "status": "healthy",
        "timestamp": "2024-05-01T12:00:00Z",
        "version": "1.0.0",
        "connections": {"database": database, "redis": "healthy", "http_client": "healthy"},
        "api_clients": {"spotify": "healthy", "musicbrainz": "no_credentials"},
    }


@pytest.mark.asyncio
async def test_enrichment_200_healthy_with_dead_database_is_down(
    stub: StubServer, client: httpx.AsyncClient
) -> None:
    stub.json("/health", enrichment_health("unhealthy: connection refused"))
    probe = http_probe(client, stub.url, healthy_when=ENRICHMENT_HEALTHY_WHEN)

    seen = await observe_one(probe)

    assert seen.value == 0.0
    assert seen.error is None
    assert "connections.database = 'unhealthy: connection refused'" in seen.detail
    assert "connections.redis" not in seen.detail
    assert seen.duration_seconds > 0
    assert abs(seen.at - time.time()) < 5


@pytest.mark.asyncio
async def test_enrichment_all_connections_healthy_is_up(
    stub: StubServer, client: httpx.AsyncClient
) -> None:
    stub.json("/health", enrichment_health("healthy"))
    probe = http_probe(client, stub.url, healthy_when=ENRICHMENT_HEALTHY_WHEN)

    assert (await observe_one(probe)).value == 1.0


@pytest.mark.asyncio
async def test_rest_api_unhealthy_with_http_200_is_down(
    stub: StubServer, client: httpx.AsyncClient
) -> None:
    body = {"status": "unhealthy", "timestamp": "t", "database_connected": False}
    stub.json("/health", body)
    probe = http_probe(
        client, stub.url, "rest-api", healthy_when=["status == 'healthy'", "database_connected"]
    )

    seen = await observe_one(probe)

    assert seen.value == 0.0
    assert "status = 'unhealthy'" in seen.detail
    assert "database_connected = false" in seen.detail


@pytest.mark.asyncio
async def test_health_503_is_down_with_an_error_naming_the_status(
    stub: StubServer, client: httpx.AsyncClient
) -> None:
    stub.json("/health", {"service": "x", "status": "unhealthy", "error": "db"}, status=503)
    probe = http_probe(client, stub.url, healthy_when=["status == 'healthy'"])

    seen = await observe_one(probe)

    assert seen.value == 0.0
    assert seen.error is not None
    assert "metadata-enrichment GET /health" in seen.error
    assert "HTTP 503 (expected 200)" in seen.error
    assert "unhealthy" in seen.detail


@pytest.mark.asyncio
async def test_gateway_circuit_breakers_become_one_series_per_provider(
    stub: StubServer, client: httpx.AsyncClient
) -> None:
    breakers = {"spotify": "CLOSED", "musicbrainz": "OPEN", "discogs": "HALF_OPEN"}
    stub.json("/health", {"status": "healthy", "redis": "connected", "circuit_breakers": breakers})
    probe = http_probe(
        client,
        stub.url,
        "api-gateway-internal",
        series="circuit_breakers",
        states={"CLOSED": 0, "HALF_OPEN": 1, "OPEN": 2},
    )

    seen = await probe.observe()

    assert {o.series: o.value for o in seen} == {"spotify": 0.0, "musicbrainz": 2.0, "discogs": 1.0}
    assert all(o.error is None for o in seen)


@pytest.mark.asyncio
async def test_value_mode_reads_numbers_booleans_and_states(
    stub: StubServer, client: httpx.AsyncClient
) -> None:
    stub.json("/api/queues/musicdb/enrichment.dlq.queue", {"messages": 612, "consumers": 0})
    stub.json("/health", {"database_connected": True, "status": "degraded"})
    depth = http_probe(
        client,
        stub.url,
        "rabbitmq",
        path="/api/queues/musicdb/enrichment.dlq.queue",
        value="messages",
    )
    connected = http_probe(client, stub.url, "rest-api", value="database_connected")
    status = http_probe(
        client, stub.url, "rest-api", value="status", states={"healthy": 1, "degraded": 0.5}
    )

    assert (await observe_one(depth)).value == 612.0
    assert (await observe_one(connected)).value == 1.0
    assert (await observe_one(status)).value == 0.5


@pytest.mark.asyncio
async def test_unreachable_port_is_an_error_observation(client: httpx.AsyncClient) -> None:
    probe = http_probe(client, f"http://{HOST}:{free_port()}", "audio-analysis", timeout=2.0)

    seen = await observe_one(probe)

    assert seen.value == 0.0
    assert seen.error is not None
    assert seen.error.startswith("audio-analysis GET /health: cannot connect")


@pytest.mark.asyncio
async def test_a_hanging_server_gives_an_error_after_the_timeout(
    stub: StubServer, client: httpx.AsyncClient
) -> None:
    stub.json("/health", {"status": "healthy"}, hang=10.0)
    probe = http_probe(client, stub.url, timeout=0.5)

    started = time.monotonic()
    seen = await observe_one(probe)
    took = time.monotonic() - started

    assert seen.value == 0.0
    assert seen.error is not None
    assert "no answer within 0.5 s" in seen.error
    assert seen.duration_seconds < 0.5 + 2
    assert took < 0.5 + 5  # generous: only proves the probe did not wait for the server


@pytest.mark.asyncio
async def test_round_trip_is_the_seconds_any_answer_took_and_unknown_without_one(
    stub: StubServer, client: httpx.AsyncClient
) -> None:
    """The P2 latency row's signal: a slow 503 is still a time; no answer is no value."""
    stub.json("/health", {"status": "degraded"}, status=503, hang=0.3)
    probe = http_probe(client, stub.url, round_trip=True, unit="seconds")
    gone = http_probe(client, f"http://{HOST}:{free_port()}", round_trip=True, unit="seconds")

    seen, none = await observe_one(probe), await observe_one(gone)

    assert seen.error is None and seen.value is not None
    assert seen.value >= 0.3 and seen.value == seen.duration_seconds  # it waited the hang
    assert seen.detail == "HTTP 503"
    assert none.value is None and none.error is not None and "cannot connect" in none.error


@pytest.mark.asyncio
async def test_non_json_body_is_an_error_observation(
    stub: StubServer, client: httpx.AsyncClient
) -> None:
    stub.text("/health", "<html>502 Bad Gateway</html>", content_type="text/html")
    probe = http_probe(client, stub.url, healthy_when=["status == 'healthy'"])

    seen = await observe_one(probe)

    assert seen.value == 0.0
    assert seen.error == f"metadata-enrichment GET /health: {NOT_JSON}"
    assert "502 Bad Gateway" in seen.detail


@pytest.mark.asyncio
async def test_missing_field_and_wrong_type_are_error_observations(
    stub: StubServer, client: httpx.AsyncClient
) -> None:
    stub.json("/stats", {"total_enriched": 10, "providers": ["spotify"]})
    missing = http_probe(client, stub.url, path="/stats", value="error_rate")
    wrong = http_probe(client, stub.url, path="/stats", value="providers")
    no_series = http_probe(client, stub.url, path="/stats", series="circuit_breakers")

    seen_missing = await observe_one(missing)
    seen_wrong = await observe_one(wrong)
    seen_series = await observe_one(no_series)

    assert seen_missing.value is None
    assert seen_missing.error is not None
    assert "`error_rate` is missing (expected a number)" in seen_missing.error
    assert seen_wrong.value is None
    assert seen_wrong.error is not None
    assert "`providers` is an array (expected a number)" in seen_wrong.error
    assert seen_series.error is not None
    assert "`circuit_breakers` is missing" in seen_series.error


@pytest.mark.asyncio
async def test_unexpected_status_in_value_mode_is_an_error(
    stub: StubServer, client: httpx.AsyncClient
) -> None:
    stub.json("/dlq/stats", {"detail": "broker unavailable"}, status=503)
    probe = http_probe(client, stub.url, "dlq-manager", path="/dlq/stats", value="total_messages")

    seen = await observe_one(probe)

    assert seen.value is None
    assert seen.error == "dlq-manager GET /dlq/stats: HTTP 503 (expected 200)"
    assert "broker unavailable" in seen.detail


@pytest.mark.asyncio
async def test_basic_auth_is_sent_and_a_401_is_an_error(
    stub: StubServer, client: httpx.AsyncClient
) -> None:
    path = "/api/queues/musicdb/enrichment.dlq.queue"
    stub.json(path, {"messages": 3}, auth=("guest", "s3cret"))

    def probe(password: str) -> HttpProbe:
        signal = HttpSignal(kind="http", name="dlq", target="rabbitmq", path=path, value="messages")
        target = TargetSpec(url=stub.url, username="guest", password=password)
        built = build_probe(signal, policy([signal], rabbitmq=target), client)
        assert isinstance(built, HttpProbe)
        return built

    good = await observe_one(probe("s3cret"))
    bad = await observe_one(probe("wrong"))

    assert good.value == 3.0
    assert bad.value is None
    assert bad.error is not None
    assert "HTTP 401" in bad.error
    assert "wrong" not in bad.error + bad.detail


# --- Prometheus -----------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def prometheus_probe(
    client: httpx.AsyncClient, url: str, clock: FakeClock | None = None, **spec: Any
) -> PrometheusProbe:
    signal = PrometheusSignal(kind="prometheus", name="metric", target="enrichment", **spec)
    if clock is None:
        return PrometheusProbe(signal, "enrichment", TargetSpec(url=url), client)
    return PrometheusProbe(signal, "enrichment", TargetSpec(url=url), client, clock=clock)


def api_calls(success: dict[str, int], error: dict[str, int]) -> str:
    lines = [
        "# HELP api_calls_total External API calls",
        "# TYPE api_calls_total counter",
    ]
    for status, counts in (("success", success), ("error", error)):
        for api, count in counts.items():
            lines.append(f'api_calls_total{{api="{api}",status="{status}"}} {count}.0')
    lines.append('api_calls_created{api="spotify",status="success"} 1.7e9')
    return "\n".join(lines) + "\n"


async def scrape_each(probe: PrometheusProbe, clock: FakeClock, step: float, n: int) -> Any:
    """n scrapes `step` seconds apart on the fake clock; the last scrape's Observations."""
    seen: list[Observation] = []
    for _ in range(n):
        seen = await probe.observe()
        clock.now += step
    return seen


@pytest.mark.asyncio
async def test_prometheus_ratio_over_two_scrapes(
    stub: StubServer, client: httpx.AsyncClient
) -> None:
    stub.text(
        "/metrics",
        api_calls({"spotify": 10, "musicbrainz": 5}, {"spotify": 0}),
        api_calls({"spotify": 16, "musicbrainz": 9}, {"spotify": 4}),
    )
    clock = FakeClock()
    probe = prometheus_probe(
        client,
        stub.url,
        clock,
        metric="api_calls",
        match={"api": "spotify"},
        mode="ratio",
        numerator={"status": "error"},
        window=60,
    )

    first = await probe.observe()
    clock.now += 10
    second = await probe.observe()

    assert [(o.value, o.error) for o in first] == [(None, WARMING_UP)]
    assert len(second) == 1
    assert second[0].value == pytest.approx(4 / 10)
    assert second[0].error is None


@pytest.mark.asyncio
async def test_prometheus_ratio_by_label_and_no_calls(
    stub: StubServer, client: httpx.AsyncClient
) -> None:
    stub.text(
        "/metrics",
        api_calls({"spotify": 10, "musicbrainz": 5}, {"spotify": 0, "musicbrainz": 1}),
        api_calls({"spotify": 20, "musicbrainz": 5}, {"spotify": 10, "musicbrainz": 1}),
    )
    clock = FakeClock()
    probe = prometheus_probe(
        client,
        stub.url,
        clock,
        metric="api_calls_total",
        mode="ratio",
        numerator={"status": "error"},
        by="api",
        window=60,
    )

    seen = await scrape_each(probe, clock, 5, 2)

    by_api = {o.series: o for o in seen}
    assert by_api["spotify"].value == pytest.approx(0.5)
    assert by_api["musicbrainz"].value == 0.0
    assert by_api["musicbrainz"].detail == "no calls in window"


@pytest.mark.asyncio
async def test_prometheus_rate_survives_a_counter_reset_and_forgets_old_points(
    stub: StubServer, client: httpx.AsyncClient
) -> None:
    page = '# TYPE enrichment_tasks counter\nenrichment_tasks_total{{status="ok"}} {}\n'
    stub.text("/metrics", page.format(100), page.format(130), page.format(10), page.format(16))
    clock = FakeClock()
    probe = prometheus_probe(
        client, stub.url, clock, metric="enrichment_tasks_total", mode="rate", window=25
    )

    after_reset = await scrape_each(probe, clock, 10, 3)  # points at 0, 10, 20 s
    beyond_window = await scrape_each(probe, clock, 10, 1)  # 30 s: the 0 s point drops

    assert after_reset[0].value == pytest.approx((30 + 10) / 20)
    assert beyond_window[0].value == pytest.approx((10 + 6) / 20)


@pytest.mark.asyncio
async def test_prometheus_gauge_by_label_with_match(
    stub: StubServer, client: httpx.AsyncClient
) -> None:
    stub.text(
        "/metrics",
        "# HELP api_gateway_circuit_breaker_state 0 closed, 1 half open, 2 open\n"
        "# TYPE api_gateway_circuit_breaker_state gauge\n"
        'api_gateway_circuit_breaker_state{provider="spotify",region="eu"} 2\n'
        'api_gateway_circuit_breaker_state{provider="discogs",region="eu"} 0\n'
        'api_gateway_circuit_breaker_state{provider="spotify",region="us"} 1\n',
    )
    probe = prometheus_probe(
        client,
        stub.url,
        metric="api_gateway_circuit_breaker_state",
        match={"region": "eu"},
        by="provider",
    )

    seen = await probe.observe()

    assert {o.series: o.value for o in seen} == {"spotify": 2.0, "discogs": 0.0}


@pytest.mark.asyncio
async def test_prometheus_malformed_page_and_absent_metric_are_errors(
    stub: StubServer, client: httpx.AsyncClient
) -> None:
    stub.text("/metrics", "<html>not metrics {{{</html>\n")
    stub.text("/other", "# TYPE up gauge\nup 1\n")
    malformed = prometheus_probe(client, stub.url, metric="up")
    absent = prometheus_probe(client, stub.url, metric="dlq_messages_total", path="/other")

    bad = await observe_one(malformed)
    gone = await observe_one(absent)

    assert bad.value is None
    assert bad.error is not None
    assert "malformed metrics page" in bad.error
    assert gone.error is not None
    assert "`dlq_messages_total` not on the page" in gone.error


# --- TCP and Redis --------------------------------------------------------------------


def tcp_probe(client: httpx.AsyncClient, url: str, password: str | None = None) -> TcpProbe:
    signal = TcpSignal(kind="tcp", name="redis", target="redis", redis_password=password)
    probe = build_probe(signal, policy([signal], redis=TargetSpec(url=url)), client)
    assert isinstance(probe, TcpProbe)
    return probe


@contextlib.asynccontextmanager
async def resp_server(password: str) -> AsyncIterator[int]:
    """Just enough Redis: AUTH checks the password, PING answers PONG once authorised."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        authorised = False
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ValueError):
            while header := await reader.readline():
                words = []
                for _ in range(int(header[1:])):
                    await reader.readline()
                    words.append((await reader.readline()).strip().decode())
                if words[0] == "AUTH":
                    authorised = words[1] == password
                    writer.write(
                        b"+OK\r\n"
                        if authorised
                        else b"-WRONGPASS invalid username-password pair\r\n"
                    )
                elif words[0] == "PING":
                    writer.write(b"+PONG\r\n" if authorised else b"-NOAUTH Auth required\r\n")
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, HOST, 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


@pytest.mark.asyncio
async def test_tcp_open_and_closed_ports(client: httpx.AsyncClient) -> None:
    async with resp_server("unused") as port:
        opened = await observe_one(tcp_probe(client, f"{HOST}:{port}"))
    closed = await observe_one(tcp_probe(client, f"tcp://{HOST}:{free_port()}"))

    assert opened.value == 1.0
    assert opened.error is None
    assert closed.value == 0.0
    assert closed.error is not None
    assert closed.error.startswith(f"redis tcp {HOST}:")


@pytest.mark.asyncio
async def test_redis_auth_and_ping(client: httpx.AsyncClient) -> None:
    async with resp_server("hunter2") as port:
        good = await observe_one(tcp_probe(client, f"redis://{HOST}:{port}", "hunter2"))
        bad = await observe_one(tcp_probe(client, f"redis://{HOST}:{port}", "not-the-password"))

    assert good.value == 1.0
    assert good.detail == "PONG"
    assert bad.value == 0.0
    assert bad.error is not None
    assert "-WRONGPASS" in bad.error
    assert "not-the-password" not in bad.error + bad.detail


# --- host -----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_host_disk_and_memory_ratios(tmp_path: Path) -> None:
    disk = HostSignal(kind="host", name="disk", metric="disk_used_ratio", path=str(tmp_path))
    memory = HostSignal(kind="host", name="memory", metric="memory_used_ratio")
    nowhere = HostSignal(kind="host", name="gone", metric="disk_used_ratio", path="/no/such/dir")
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  1000 kB\nMemFree:  100 kB\nMemAvailable:  250 kB\n")

    seen = await observe_all([HostProbe(disk), HostProbe(memory), HostProbe(nowhere)])
    fake = await observe_one(HostProbe(memory, meminfo=meminfo))

    assert seen[0].value is not None
    assert 0.0 <= seen[0].value <= 1.0
    if Path("/proc/meminfo").exists():
        assert seen[1].value is not None
        assert 0.0 <= seen[1].value <= 1.0
    assert seen[2].value is None
    assert seen[2].error is not None
    assert "/no/such/dir" in seen[2].error
    assert fake.value == pytest.approx(0.75)


# --- building and scheduling ----------------------------------------------------------


@pytest.mark.asyncio
async def test_build_probe_returns_none_for_kinds_not_probed(client: httpx.AsyncClient) -> None:
    derived = DerivedSignal(kind="derived", name="d", op="max", of=["x"])
    alert = AlertSignal(kind="alert", name="a", alertname="CircuitBreakerOpen")
    orphan = HttpSignal(kind="http", name="h", target="nowhere")
    rules = policy([derived, alert])

    assert build_probe(derived, rules, client) is None
    assert build_probe(alert, rules, client) is None
    with pytest.raises(ValueError, match="target 'nowhere' is not defined"):
        build_probe(orphan, rules, client)


class HangingProbe:
    """Satisfies Probe and never answers within the test."""

    def __init__(self, signal: ProbedSignal) -> None:
        self.signal = signal
        self.started = 0

    async def observe(self) -> list[Observation]:
        self.started += 1
        await asyncio.sleep(60)
        return []


class BrokenProbe:
    def __init__(self, signal: ProbedSignal) -> None:
        self.signal = signal

    async def observe(self) -> list[Observation]:
        raise RuntimeError("bug")


@pytest.mark.asyncio
async def test_a_hanging_probe_never_delays_a_fast_one(
    stub: StubServer, client: httpx.AsyncClient
) -> None:
    stub.json("/health", {"status": "healthy"})
    fast = http_probe(client, stub.url, name="fast", interval=0.1)
    slow = HangingProbe(HttpSignal(kind="http", name="slow", target="x", interval=0.1))
    queue: asyncio.Queue[list[Observation]] = asyncio.Queue()
    reported: list[str] = []
    scheduler = ProbeScheduler(
        [slow, fast], queue, on_result=lambda probe, _: reported.append(probe.signal.name)
    )

    scheduler.start()
    try:
        results = [await asyncio.wait_for(queue.get(), timeout=10) for _ in range(5)]
    finally:
        scheduler.shutdown()
        await asyncio.sleep(0.05)  # the asyncio scheduler shuts down on the loop's next turn

    assert all(o.signal == "fast" and o.value == 1.0 for batch in results for o in batch)
    times = [batch[0].at for batch in results]
    assert times == sorted(times)
    assert reported.count("fast") >= 5
    assert slow.started == 1
    assert scheduler.skipped["slow"] >= 1
    assert not scheduler.running


@pytest.mark.asyncio
async def test_run_once_reads_every_probe_and_turns_a_crash_into_an_error(
    stub: StubServer, client: httpx.AsyncClient
) -> None:
    stub.json("/health", {"status": "healthy"})
    fast = http_probe(client, stub.url, name="fast")
    broken = BrokenProbe(HttpSignal(kind="http", name="broken", target="x"))
    queue: asyncio.Queue[list[Observation]] = asyncio.Queue()

    with capture_logs() as logs:
        seen = await ProbeScheduler([fast, broken], queue).run_once()

    assert [(o.signal, o.value) for o in seen] == [("fast", 1.0), ("broken", None)]
    assert [(e["event"], e["signal"]) for e in logs] == [("probe_crashed", "broken")]
    assert seen[1].error is not None
    assert "RuntimeError: bug" in seen[1].error
    assert queue.empty()
