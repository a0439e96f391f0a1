"""The sandbox's metadata-enrichment stub, reading its configuration from real PostgreSQL.

Why: the watchdog's configuration repair is only done when the *service* has loaded
the repaired table (a fix takes effect on `POST /admin/config/reload`, not before).
With the real table in a real server, a test can corrupt or repair rows by SQL and
see what the service reports on `GET /admin/config`, exactly as in production.

`EnrichmentStub` is `watchdog.sandbox.enrichment.Enrichment` with three things
swapped: the rows come from `metadata_enrichment_config` through psycopg (one short
connection per load, as the real loader holds none between reloads), `/admin/config/
providers` reads `enrichment_providers`, and `/health` checks the database by
connecting to it. Nothing else runs: no provider traffic loop and no 300 s auto
reload (both are started only by `start_background`, which is never called), so the
only reloads are the initial one and those a test asks for.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row

from watchdog.sandbox import jsonhttp, runtime
from watchdog.sandbox.catalog import CONFIG_TABLE, PROVIDERS, PROVIDERS_TABLE
from watchdog.sandbox.enrichment import SERVICE, VERSION, Enrichment, ReloadError
from watchdog.sandbox.jsonhttp import HttpError, Request, Response, json_response

#: The control API is never asked for anything; Enrichment only wants a URL to hold.
_NO_CONTROL_API = "http://127.0.0.1:9"


def _plain(value: Any) -> Any:
    """What the JSON answers need: numeric as float, timestamps as ISO text."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


class EnrichmentStub(Enrichment):
    """The enrichment routes over a PostgreSQL `dsn`; counts and can refuse reloads.

    `reloads` counts the `POST /admin/config/reload` requests received (refused ones
    included); while `fail_reloads` is true they answer 503 with a `detail`, the
    shape the real service gives when it cannot read the table. `url` is set once
    `enrichment_stub` has bound the port.
    """

    def __init__(self, dsn: str) -> None:
        super().__init__(_NO_CONTROL_API)
        self.dsn = dsn
        self.url = ""
        self.fail_reloads = False
        self._reloads = 0
        self._reloads_lock = threading.Lock()

    @property
    def reloads(self) -> int:
        """How many `POST /admin/config/reload` requests have arrived."""
        with self._reloads_lock:
            return self._reloads

    def _query(self, query: str) -> list[dict[str, Any]]:
        try:
            with psycopg.connect(self.dsn, connect_timeout=2, row_factory=dict_row) as conn:
                rows = conn.execute(query).fetchall()
        except psycopg.Error as exc:
            raise ReloadError(f"database error: {exc}") from exc
        return [{key: _plain(value) for key, value in row.items()} for row in rows]

    def _fetch_rows(self) -> list[dict[str, Any]]:
        """Every row, as the sandbox's loader gets them; LoadedConfig keeps enabled ones."""
        return self._query(f"SELECT * FROM {CONFIG_TABLE} ORDER BY metadata_field")

    def post_reload(self, request: Request) -> Response:
        """Count the request, refuse it while `fail_reloads`, else reload from the table."""
        with self._reloads_lock:
            self._reloads += 1
        if self.fail_reloads:
            raise HttpError(503, "Failed to reload configuration: "
                                 "database error: connection refused (stub told to fail)")
        return super().post_reload(request)

    def get_providers(self, request: Request) -> Response:
        """enrichment_providers in the real endpoint's shape, read from the table."""
        try:
            rows = self._query(f"SELECT * FROM {PROVIDERS_TABLE} ORDER BY provider_name")
        except ReloadError as exc:
            raise HttpError(500, f"Failed to get providers: {exc}") from exc
        providers = [{
            "name": row.get("provider_name"),
            "type": row.get("provider_type"),
            "supported_fields": row.get("supported_fields"),
            "enabled": row.get("enabled"),
            "health_status": row.get("health_status"),
            "avg_confidence": row.get("avg_confidence_score"),
            "success_rate": row.get("success_rate"),
            "last_health_check": row.get("last_health_check"),
        } for row in rows]
        return json_response({"providers": providers, "total_providers": len(providers)})

    def health(self, request: Request) -> Response:
        """The real shape and trap; the database entry is a real connect to the dsn.

        There is no Redis beside this stub, so `redis` reads "healthy": a test that
        wants the service unhealthy stops or breaks the database.
        """
        try:
            with psycopg.connect(self.dsn, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            database = "healthy"
        except psycopg.Error as exc:
            database = f"unhealthy: {exc}"
        connections = {"database": database, "redis": "healthy", "http_client": "healthy"}
        body: dict[str, Any] = {
            "service": SERVICE,
            "status": "healthy",
            "timestamp": runtime.utc_now_iso(),
            "version": VERSION,
            "connections": connections,
            "api_clients": dict.fromkeys(PROVIDERS, "healthy"),
        }
        if not all("healthy" in value for value in connections.values()):
            body["status"] = "degraded"
            return json_response(body, 503)
        return json_response(body)


@contextlib.contextmanager
def enrichment_stub(dsn: str) -> Iterator[EnrichmentStub]:
    """The stub serving on 127.0.0.1:<free port> in a thread, config loaded once.

    The initial load must succeed (a test that wants a broken table breaks it after
    the start); the server thread is stopped and joined and its socket closed at exit.
    """
    stub = EnrichmentStub(dsn)
    stub.reload()
    server = jsonhttp.JsonServer(stub.router(), 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="enrichment-stub", daemon=True)
    try:
        stub.url = f"http://{jsonhttp.HOST}:{server.port}"
        thread.start()
        yield stub
    finally:
        if thread.is_alive():
            server.shutdown()
            thread.join(5)
        server.server_close()
