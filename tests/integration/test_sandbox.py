"""The sandbox as the watchdog meets it: real processes, real HTTP, the documented traps.

Every wait polls with a deadline. The only fixed-length waits are observation windows
for properties of the form "X does not happen" (a breaker stays closed, a counter stops
growing), which cannot be proven any other way.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from watchdog.sandbox.catalog import HTTP_HEALTH_ROLES, PROVIDERS, SERVICES
from watchdog.sandbox.control import SandboxError
from watchdog.sandbox.gateway import Breaker
from watchdog.sandbox.rabbitmq import DeadLetterQueue
from watchdog.sandbox.stack import SandboxStack

CONFIG = "metadata_enrichment_config"
ENRICHMENT = "metadata-enrichment"
GATEWAY = "api-gateway-internal"
DLQ_PATH = "/api/queues/musicdb/enrichment.dlq.queue"
RABBIT_AUTH = ("guest", "guest")
WORKERS = ("enrichment-worker-1", "enrichment-worker-2", "enrichment-worker-3")


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    """An HTTP client that never goes through a proxy (every address is loopback)."""
    with httpx.Client(trust_env=False, timeout=5.0) as client:
        yield client


def eventually(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = check()
            if value:
                return value
            last = value
        except (httpx.HTTPError, OSError) as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout} s (last: {last!r})")
        time.sleep(0.05)


def sample(text: str, name: str, **labels: str) -> float | None:
    """One sample's value from Prometheus text, matched on the exact label set."""
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        metric, _, rest = series.partition("{")
        if metric == name and dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', rest)) == labels:
            return float(value)
    return None


def alive(pid: int) -> bool:
    """Running (a zombie counts as gone: it holds no port and runs no code)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            return not any(line.startswith("State:") and "Z" in line for line in status)
    except FileNotFoundError:
        return False


def without_provider(rows: list[dict[str, Any]], provider: str) -> list[dict[str, Any]]:
    """The surgical fix: drop a provider from each waterfall (later ones move up with
    their confidences); disable only rows left with no provider."""
    result = []
    for original in rows:
        row = dict(original)
        chain = [
            (row[f"priority_{i}_provider"], row[f"priority_{i}_confidence"])
            for i in range(1, 5)
            if row[f"priority_{i}_provider"] and row[f"priority_{i}_provider"] != provider
        ]
        for i in range(1, 5):
            name, confidence = chain[i - 1] if i <= len(chain) else (None, None)
            row[f"priority_{i}_provider"] = name
            row[f"priority_{i}_confidence"] = confidence
        if not chain:
            row["enabled"] = False
        result.append(row)
    return result


# ---------------------------------------------------------------- shapes and lifecycle


def test_every_service_answers_with_the_documented_shapes(
    sandbox_stack: SandboxStack, http: httpx.Client
) -> None:
    stack = sandbox_stack
    urls = stack.urls
    services = stack.control.services()
    assert set(services) == set(SERVICES)
    for name, entry in services.items():
        assert entry["running"] is True and isinstance(entry["pid"], int), name
        assert entry["restarts"] == 0
        if entry["role"] in ("worker", "backlog"):
            assert entry["port"] is None and entry["url"] is None
        else:
            assert isinstance(entry["port"], int) and urls[name] == entry["url"]
            assert entry["url"].endswith(f"127.0.0.1:{entry['port']}")

    # metadata-enrichment
    enrichment = urls[ENRICHMENT]
    health = http.get(enrichment + "/health")
    assert health.status_code == 200
    body = health.json()
    assert body["service"] == ENRICHMENT and body["status"] == "healthy"
    assert {"timestamp", "version"} <= set(body)
    assert body["connections"] == {
        "database": "healthy",
        "redis": "healthy",
        "http_client": "healthy",
    }
    assert set(body["api_clients"]) == set(PROVIDERS)
    stats = http.get(enrichment + "/stats")
    assert stats.status_code == 200 and "error_rate" not in stats.text
    spotify_ok = eventually(
        lambda: (
            sample(
                http.get(enrichment + "/metrics").text,
                "api_calls_total",
                api="spotify",
                status="success",
            )
            or 0
        )
        >= 20,
        10,
        "twenty successful spotify calls",
    )
    assert spotify_ok
    metrics = http.get(enrichment + "/metrics").text
    # Healthy traffic is overwhelmingly successful; a call made while the gateway was
    # still starting, or that timed out on a loaded machine, may count as an error.
    errors = sample(metrics, "api_calls_total", api="spotify", status="error")
    successes = sample(metrics, "api_calls_total", api="spotify", status="success")
    assert errors is not None and successes is not None and errors <= 0.1 * successes
    assert sample(metrics, "enrichment_tasks_total", source="api", status="completed") == 0
    config = http.get(enrichment + "/admin/config").json()
    assert config["status"] == "success" and isinstance(config["note"], str)
    assert "providers" not in config
    configuration = config["configuration"]
    assert configuration["total_fields"] == 14
    assert configuration["reload_interval_seconds"] == 300
    assert configuration["last_reload"]
    assert configuration["fields"]["isrc"] == {
        "enabled": True,
        "provider_count": 4,
        "providers": ["spotify", "musicbrainz", "beatport", "discogs"],
        "last_updated": configuration["fields"]["isrc"]["last_updated"],
    }
    with_spotify = [
        f for f, spec in configuration["fields"].items() if "spotify" in spec["providers"]
    ]
    assert len(with_spotify) == 12
    assert "artist_name" not in with_spotify and "track_title" not in with_spotify
    reload = http.post(enrichment + "/admin/config/reload").json()
    assert reload["status"] == "reloaded" and reload["timestamp"]
    assert reload["configuration"]["total_fields"] == 14
    providers = http.get(enrichment + "/admin/config/providers").json()
    assert providers["total_providers"] == 5
    assert {p["name"] for p in providers["providers"]} == set(PROVIDERS)
    track = {"track_id": "t-1", "artist_name": "Deadmau5", "track_title": "Strobe"}
    enriched = http.post(enrichment + "/enrich", json=track)
    assert enriched.status_code == 200
    result = enriched.json()
    assert result["track_id"] == "t-1" and result["status"] == "completed"
    assert "spotify" in result["sources_used"] and result["errors"] == []
    assert result["metadata_acquired"]["artist_name"] == "Deadmau5"
    assert result["cached"] is False and isinstance(result["duration_seconds"], float)
    assert result["timestamp"]
    missing = http.post(enrichment + "/enrich", json={"track_id": "t-2"})
    assert missing.status_code == 422
    assert {tuple(d["loc"]) for d in missing.json()["detail"]} == {
        ("body", "artist_name"),
        ("body", "track_title"),
    }

    # api-gateway-internal
    gateway = urls[GATEWAY]
    gateway_health = http.get(gateway + "/health").json()
    assert gateway_health["status"] == "healthy" and gateway_health["redis"] == "connected"
    assert gateway_health["circuit_breakers"] == dict.fromkeys(PROVIDERS, "CLOSED")
    assert set(gateway_health["adapters"]) == set(PROVIDERS)
    assert "implementation" in gateway_health
    breakers = http.get(gateway + "/admin/circuit-breakers").json()
    assert breakers["spotify"] == {
        "state": "CLOSED",
        "failure_count": 0,
        "failure_threshold": 5,
        "last_failure_time": None,
    }
    reset = http.post(gateway + "/admin/circuit-breakers/spotify/reset").json()
    assert reset["new_state"] == "CLOSED"
    gateway_metrics = http.get(gateway + "/metrics").text
    assert sample(gateway_metrics, "api_gateway_circuit_breaker_state", provider="spotify") == 0
    assert (
        sample(gateway_metrics, "api_gateway_circuit_breaker_opens_total", provider="spotify") == 0
    )
    calls = sample(
        gateway_metrics,
        "api_gateway_requests_total",
        provider="spotify",
        endpoint="call",
        status="success",
    )
    assert calls is not None and calls > 0

    # dlq-manager: the blind spot
    dlq = urls["dlq-manager"]
    assert http.get(dlq + "/health").json()["status"] == "healthy"
    assert http.get(dlq + "/dlq/stats").json() == {
        "total_messages": 0,
        "by_error_type": {},
        "by_service": {},
        "oldest_message_age_seconds": None,
        "newest_message_age_seconds": None,
        "queue_stats": {},
    }
    assert sample(http.get(dlq + "/metrics").text, "dlq_messages_total") == 0

    # rabbitmq management API
    queue_url = urls["rabbitmq"] + DLQ_PATH
    assert http.get(queue_url).status_code == 401
    assert http.get(queue_url, auth=("guest", "wrong")).status_code == 401
    queue = http.get(queue_url, auth=RABBIT_AUTH).json()
    assert queue["name"] == "enrichment.dlq.queue" and queue["vhost"] == "musicdb"
    assert queue["messages"] == queue["messages_ready"] == 0
    assert queue["messages_unacknowledged"] == 0
    assert queue["message_stats"]["publish_details"]["rate"] == 0
    assert (
        http.get(urls["rabbitmq"] + "/api/queues/musicdb/other", auth=RABBIT_AUTH).status_code
        == 404
    )

    # rest-api, health-only services, postgres
    rest = http.get(urls["rest-api"] + "/health")
    assert rest.status_code == 200
    assert rest.json()["status"] == "healthy" and rest.json()["database_connected"] is True
    assert isinstance(rest.json()["services_available"], dict) and rest.json()["timestamp"]
    for name in (
        "audio-analysis",
        "api-gateway",
        "graph-visualization-api",
        "scraper-mixesdb",
        "scraper-1001tracklists",
    ):
        assert http.get(urls[name] + "/health").json()["status"] == "healthy", name
    with socket.create_connection(("127.0.0.1", services["postgres"]["port"]), timeout=2):
        pass

    # the "database" is persisted where it was asked to be
    persisted = json.loads((stack.state_dir / f"{CONFIG}.json").read_text())
    assert persisted == stack.control.table(CONFIG) and len(persisted) == 14


def test_stop_leaves_no_process_behind(sandbox_stack: SandboxStack) -> None:
    pids = [entry["pid"] for entry in sandbox_stack.control.services().values()]
    assert sandbox_stack.pid is not None
    pids.append(sandbox_stack.pid)
    sandbox_stack.stop()
    eventually(lambda: not [p for p in pids if alive(p)], 5, "exit of every sandbox process")


def test_stubs_exit_when_their_supervisor_is_killed(sandbox_stack: SandboxStack) -> None:
    pids = [entry["pid"] for entry in sandbox_stack.control.services().values()]
    assert sandbox_stack.pid is not None
    os.kill(sandbox_stack.pid, signal.SIGKILL)
    eventually(lambda: not [p for p in pids if alive(p)], 5, "exit of the orphaned stubs")


# ---------------------------------------------------------------- faults


def test_crash_stays_down_until_restarted_on_the_same_port(
    sandbox_stack: SandboxStack, http: httpx.Client
) -> None:
    control = sandbox_stack.control
    before = sandbox_stack.service(GATEWAY)
    url = sandbox_stack.urls[GATEWAY]

    result = sandbox_stack.inject("crash", service=GATEWAY)
    assert result["killed_pid"] == before["pid"] and result["running"] is False

    def refused() -> bool:
        try:
            http.get(url + "/health", timeout=0.5)
        except httpx.TransportError:
            return True
        return False

    eventually(refused, 3, "the crashed gateway to stop answering")
    assert sandbox_stack.service(GATEWAY)["running"] is False
    assert sandbox_stack.service(GATEWAY)["pid"] is None
    assert any(f["kind"] == "crash" and f["service"] == GATEWAY for f in control.faults())

    restarted = control.restart(GATEWAY)
    assert restarted["running"] is True and restarted["pid"] != before["pid"]
    after = sandbox_stack.service(GATEWAY)
    assert after["port"] == before["port"] and after["restarts"] == 1
    assert http.get(url + "/health").json()["status"] == "healthy"
    assert not [f for f in control.faults() if f["kind"] == "crash"]

    # start and stop are idempotent
    assert control.start(GATEWAY)["pid"] == restarted["pid"]
    assert control.stop("scraper-mixesdb")["running"] is False
    assert control.stop("scraper-mixesdb") == {
        "name": "scraper-mixesdb",
        "running": False,
        "pid": None,
    }


def test_database_down_hides_behind_http_200(
    sandbox_stack: SandboxStack, http: httpx.Client
) -> None:
    urls = sandbox_stack.urls
    result = sandbox_stack.inject("database_down")
    assert result["was_running"] is True and result["running"] is False
    assert any(f["kind"] == "database_down" for f in sandbox_stack.control.faults())

    health = http.get(urls[ENRICHMENT] + "/health")
    assert health.status_code == 200 and health.json()["status"] == "healthy"
    assert health.json()["connections"]["database"].startswith("unhealthy")
    rest = http.get(urls["rest-api"] + "/health")
    assert rest.status_code == 200
    assert rest.json()["status"] == "unhealthy" and rest.json()["database_connected"] is False

    sandbox_stack.control.start("postgres")
    assert http.get(urls[ENRICHMENT] + "/health").json()["connections"]["database"] == "healthy"
    assert http.get(urls["rest-api"] + "/health").json()["status"] == "healthy"
    assert not sandbox_stack.control.faults()


def test_system_down_kills_every_application_service_and_leaves_the_data_stores(
    sandbox_stack: SandboxStack,
) -> None:
    control = sandbox_stack.control
    application = sorted(n for n, role in SERVICES.items() if role in HTTP_HEALTH_ROLES)
    assert len(application) == 9  # the nine scenario 5's daemon test kills one by one
    result = sandbox_stack.inject("system_down")
    assert sorted(result["killed"]) == application
    assert result["left_running"] == sorted(set(SERVICES) - set(application))
    running = {n: s["running"] for n, s in control.services().items()}
    assert not any(running[n] for n in application) and all(
        running[n] for n in ("postgres", "redis", "rabbitmq", *WORKERS))
    (fault,) = control.faults()
    assert fault["kind"] == "system_down" and sorted(fault["services"]) == application
    assert "system_down" in control.request("GET", "/faults")[1]["kinds"]

    for name in application[1:]:
        control.start(name)
    assert control.faults(), "one service still down: the system is not back"
    control.start(application[0])
    assert not control.faults()


def test_provider_outage_opens_the_breaker_until_the_provider_is_taken_out(
    sandbox_stack: SandboxStack, http: httpx.Client
) -> None:
    control = sandbox_stack.control
    enrichment, gateway = sandbox_stack.urls[ENRICHMENT], sandbox_stack.urls[GATEWAY]

    def spotify_errors() -> float:
        value = sample(
            http.get(enrichment + "/metrics").text, "api_calls_total", api="spotify", status="error"
        )
        assert value is not None
        return value

    def spotify_breaker() -> str:
        return str(http.get(gateway + "/admin/circuit-breakers").json()["spotify"]["state"])

    assert sandbox_stack.inject("provider_outage", provider="spotify")["gateway"] == "notified"
    eventually(lambda: spotify_breaker() == "OPEN", 5, "spotify breaker OPEN")
    gateway_metrics = http.get(gateway + "/metrics").text
    assert sample(gateway_metrics, "api_gateway_circuit_breaker_state", provider="spotify") == 2
    assert sample(gateway_metrics, "api_gateway_circuit_breaker_state", provider="lastfm") == 0
    assert (
        sample(gateway_metrics, "api_gateway_circuit_breaker_opens_total", provider="spotify") == 1
    )
    first = spotify_errors()
    eventually(lambda: spotify_errors() > first, 3, "growth of spotify's error counter")
    assert [f["provider"] for f in control.faults() if f["kind"] == "provider_outage"] == [
        "spotify"
    ]

    control.put_table(CONFIG, without_provider(control.table(CONFIG), "spotify"))
    reloaded = http.post(enrichment + "/admin/config/reload").json()
    fields = reloaded["configuration"]["fields"]
    assert not [f for f, spec in fields.items() if "spotify" in spec["providers"]]
    assert "spotify_id" not in fields and fields["isrc"]["providers"][0] == "musicbrainz"
    assert (
        http.post(gateway + "/admin/circuit-breakers/spotify/reset").json()["new_state"] == "CLOSED"
    )
    settled = spotify_errors()
    window_end = time.monotonic() + 1.0  # ten traffic rounds
    while time.monotonic() < window_end:
        assert spotify_breaker() == "CLOSED"
        time.sleep(0.1)
    assert spotify_errors() == settled

    restored = sandbox_stack.inject("provider_restore", provider="spotify")
    assert restored["was_down"] is True
    assert not control.faults()


def test_corrupt_config_then_restoring_the_rows_restores_admin_config(
    sandbox_stack: SandboxStack, http: httpx.Client
) -> None:
    control = sandbox_stack.control
    enrichment = sandbox_stack.urls[ENRICHMENT]
    good_rows = control.table(CONFIG)
    before = http.get(enrichment + "/admin/config").json()["configuration"]["fields"]

    result = sandbox_stack.inject("corrupt_config")
    assert result["reload"] == "reloaded"
    nulled = [
        c["metadata_field"] for c in result["changes"] if c["column"] == "priority_1_provider"
    ]
    assert len(nulled) == 3
    assert [c for c in result["changes"] if c["after"] == 1.7]
    corrupted = http.get(enrichment + "/admin/config").json()["configuration"]["fields"]
    for name in nulled:
        assert corrupted[name]["providers"] == before[name]["providers"][1:]
    assert [
        n for n, spec in corrupted.items() if len(set(spec["providers"])) < len(spec["providers"])
    ]
    assert any(r["priority_1_confidence"] == 1.7 for r in control.table(CONFIG))
    assert [f for f in control.faults() if f["kind"] == "corrupt_config"]

    control.put_table(CONFIG, good_rows)
    assert http.post(enrichment + "/admin/config/reload").json()["status"] == "reloaded"
    assert http.get(enrichment + "/admin/config").json()["configuration"]["fields"] == before
    assert control.table(CONFIG) == good_rows
    assert not control.faults()


def test_dlq_overflow_is_invisible_to_dlq_manager_and_ends_with_worker_restarts(
    sandbox_stack: SandboxStack, http: httpx.Client
) -> None:
    control = sandbox_stack.control
    queue_url = sandbox_stack.urls["rabbitmq"] + DLQ_PATH
    dlq = sandbox_stack.urls["dlq-manager"]

    def depth() -> int:
        return int(http.get(queue_url, auth=RABBIT_AUTH).json()["messages"])

    old_pids = {name: sandbox_stack.service(name)["pid"] for name in WORKERS}
    assert sorted(sandbox_stack.inject("dlq_overflow")["signalled"]) == list(WORKERS)
    eventually(lambda: depth() > 5000, 8, "DLQ depth above 5000")
    queue = http.get(queue_url, auth=RABBIT_AUTH).json()
    assert queue["message_stats"]["publish_details"]["rate"] > 100
    stats = http.get(dlq + "/dlq/stats").json()
    assert stats["total_messages"] == 0 and stats["queue_stats"] == {}
    assert sample(http.get(dlq + "/metrics").text, "dlq_messages_total") == 0
    assert [f for f in control.faults() if f["kind"] == "dlq_overflow"]

    for name in WORKERS:
        restarted = control.restart(name)
        assert restarted["running"] is True and restarted["pid"] != old_pids[name]
    assert not control.faults()

    observed = [depth()]

    def drained() -> bool:
        observed.append(depth())
        return observed[-1] == 0

    eventually(drained, 15, "the DLQ to drain to 0")
    rises = [(a, b) for a, b in itertools.pairwise(observed) if b > a]
    assert not rises, f"the DLQ grew after the workers were restarted: {rises}"


def test_redis_requires_auth_before_ping(sandbox_stack: SandboxStack) -> None:
    port = sandbox_stack.service("redis")["port"]

    def exchange(*commands: bytes) -> list[bytes]:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=2) as sock,
            sock.makefile("rb") as replies,
        ):
            answers = []
            for command in commands:
                sock.sendall(command)
                answers.append(replies.readline())
            return answers

    assert exchange(b"AUTH sandbox-redis\r\n", b"PING\r\n", b"QUIT\r\n") == [
        b"+OK\r\n",
        b"+PONG\r\n",
        b"+OK\r\n",
    ]
    assert exchange(b"PING\r\n") == [b"-NOAUTH Authentication required.\r\n"]
    assert exchange(b"AUTH nope\r\n")[0].startswith(b"-WRONGPASS")
    assert exchange(b"*2\r\n$4\r\nAUTH\r\n$13\r\nsandbox-redis\r\n", b"*1\r\n$4\r\nPING\r\n") == [
        b"+OK\r\n",
        b"+PONG\r\n",
    ]


def test_bad_requests_are_refused_with_a_message_naming_the_problem(
    sandbox_stack: SandboxStack,
) -> None:
    control = sandbox_stack.control

    status, body = control.request("POST", "/services/nope/restart")
    assert status == 404 and "'nope'" in body["detail"] and ENRICHMENT in body["detail"]
    with pytest.raises(SandboxError) as error:
        control.start("nope")
    assert error.value.status == 404

    status, body = control.request("POST", "/faults/meteor", {})
    assert status == 404 and "'meteor'" in body["detail"] and "dlq_overflow" in body["detail"]
    status, body = control.request("POST", "/faults/crash", {"service": "nope"})
    assert status == 404 and "'nope'" in body["detail"]
    status, body = control.request("POST", "/faults/provider_outage", {"provider": "myspace"})
    assert status == 400 and "myspace" in body["detail"]

    rows = control.table(CONFIG)
    status, body = control.request(
        "PUT", f"/db/tables/{CONFIG}", {"rows": [*rows, {"priority_1_provider": "spotify"}]}
    )
    assert status == 400 and "metadata_field" in body["detail"] and "row 14" in body["detail"]
    assert control.table(CONFIG) == rows
    status, body = control.request("GET", "/db/tables/tracks")
    assert status == 404 and "'tracks'" in body["detail"]

    # a service that cannot come up is named in a 504 (its port is taken here)
    control.stop("rest-api")
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", sandbox_stack.service("rest-api")["port"]))
        squatter.listen()
        status, body = control.request("POST", "/services/rest-api/start")
    assert status == 504 and "'rest-api'" in body["detail"]


# ---------------------------------------------------------------- the models, on a fake clock


class FakeClock:
    """Time that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_at_threshold_half_opens_after_timeout_and_recloses() -> None:
    clock = FakeClock()
    breaker = Breaker(clock=clock)
    opened = [breaker.record_failure() for _ in range(5)]
    assert opened == [False, False, False, False, True]
    assert breaker.state == "OPEN" and not breaker.allow()
    clock.now += 59.9
    assert breaker.state == "OPEN"
    clock.now += 0.1
    assert breaker.state == "HALF_OPEN" and breaker.allow()
    assert breaker.record_failure() is True  # a failure while half-open re-opens
    assert breaker.state == "OPEN"
    clock.now += 60
    breaker.record_success()
    assert breaker.describe()["state"] == "CLOSED" and breaker.describe()["failure_count"] == 0


def test_dead_letter_queue_drains_only_after_two_quiet_seconds() -> None:
    clock = FakeClock()
    queue = DeadLetterQueue(clock=clock)
    for _ in range(30):  # 3 s of one broken worker: 100 messages every 0.1 s
        queue.add(100)
        clock.now += 0.1
    depth, rate, published = queue.snapshot()
    assert depth == 3000 and published == 3000 and rate == pytest.approx(1000, rel=0.05)
    clock.now += 1.9 - 0.1  # 1.9 s after the last arrival: nothing drained yet
    assert queue.snapshot()[0] == 3000
    clock.now += 1.1  # 1 s into the drain
    assert queue.snapshot()[0] == 2000
    clock.now += 5
    assert queue.snapshot()[:2] == (0, 0.0)
