"""Stub of `metadata-enrichment`: config-driven waterfall, steady provider traffic, traps.

What makes it useful to a watchdog:
- it loads `metadata_enrichment_config` from the sandbox database (enabled rows only) at
  start, on `POST /admin/config/reload`, and every 300 s, so a corrupted or repaired table
  only takes effect after a reload, as in the real service;
- a background loop calls the gateway every 0.1 s for every provider of the loaded config,
  so a provider outage shows up as `api_calls_total{status="error"}` growth and an open
  breaker, and removing the provider from the table (plus reload) makes it stop;
- `/health` keeps answering 200 "healthy" when the database is down, because the real
  check looks for the substring "healthy" in "unhealthy: ..." (the documented trap).
"""

from __future__ import annotations

import hashlib
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from watchdog.sandbox import jsonhttp, runtime
from watchdog.sandbox.catalog import CONFIG_TABLE, PROVIDERS, PROVIDERS_TABLE
from watchdog.sandbox.jsonhttp import HttpError, Request, Response, json_response
from watchdog.sandbox.metrics import Family, render_all

SERVICE = "metadata-enrichment"
VERSION = "1.0.0-sandbox"
RELOAD_INTERVAL_SECONDS = 300
TRAFFIC_INTERVAL_SECONDS = 0.1
REQUIRED_ENRICH_FIELDS = ("track_id", "artist_name", "track_title")


class ReloadError(RuntimeError):
    """The configuration table could not be read; the previous config stays loaded."""


@dataclass(frozen=True)
class LoadedConfig:
    """The configuration as the service holds it: enabled rows only, waterfalls in order."""

    fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_reload: float | None = None

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]]) -> LoadedConfig:
        """Keep enabled rows (ordered by field, like the real loader's query); a field's
        providers are its non-null priority_1..4 in order. A NULL priority_1 therefore
        shortens the waterfall but does not drop the field: total_fields stays the same.
        """
        fields: dict[str, dict[str, Any]] = {}
        for row in sorted(rows, key=lambda r: str(r["metadata_field"])):
            if row.get("enabled") is not True:
                continue
            providers = [p for p in (row.get(f"priority_{i}_provider") for i in range(1, 5))
                         if isinstance(p, str) and p]
            fields[str(row["metadata_field"])] = {
                "enabled": True,
                "provider_count": len(providers),
                "providers": providers,
                "last_updated": row.get("last_updated"),
            }
        return cls(fields, time.time())

    def summary(self) -> dict[str, Any]:
        """The `configuration` object of /admin/config."""
        return {
            "total_fields": len(self.fields),
            "last_reload": self.last_reload,
            "reload_interval_seconds": RELOAD_INTERVAL_SECONDS,
            "fields": self.fields,
        }

    def all_providers(self) -> list[str]:
        """Every provider named anywhere in the loaded waterfalls (traffic targets)."""
        seen: dict[str, None] = {}
        for spec in self.fields.values():
            seen.update(dict.fromkeys(spec["providers"]))
        return list(seen)

    def first_providers(self) -> dict[str, str]:
        """field -> the provider tried first for it (fields without one are skipped)."""
        return {name: spec["providers"][0] for name, spec in self.fields.items()
                if spec["providers"]}


def fake_value(field_name: str, track: dict[str, Any]) -> Any:
    """A deterministic plausible value, so repeated /enrich calls agree with each other."""
    if field_name in ("artist_name", "track_title"):
        return " ".join(str(track[field_name]).split())
    digest = hashlib.sha256(f"{field_name}:{track['track_id']}".encode()).hexdigest()
    number = int(digest[:8], 16)
    values: dict[str, Any] = {
        "spotify_id": digest[:22],
        "isrc": f"SB{digest[:3].upper()}{number % 10_000_000:07d}",
        "musicbrainz_id": f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-"
                          f"{digest[20:32]}",
        "beatport_id": str(number % 10_000_000),
        "bpm": 90 + number % 80,
        "key": f"{number % 12 + 1}{'AB'[number % 2]}",
        "release_date": f"20{10 + number % 15}-0{1 + number % 9}-1{number % 9}",
        "duration_ms": 180_000 + number % 240_000,
        "genre": ("techno", "house", "trance", "drum and bass")[number % 4],
    }
    return values.get(field_name, round((number % 1000) / 1000, 3))


class Enrichment:
    """State, background loops and routes of the enrichment stub."""

    def __init__(self, control_url: str) -> None:
        self.control_url = control_url.rstrip("/")
        self.peers = runtime.Peers(control_url)
        self.config = LoadedConfig()
        # Held for a whole traffic round and for the config swap: once a reload has
        # answered, no call planned from the old config can still be in flight.
        self._round_lock = threading.Lock()
        self._tasks_lock = threading.Lock()
        self._tasks: dict[str, int] = {}
        self._fields_found: dict[str, int] = {}
        self.api_calls = Family("api_calls_total", "Total API calls", "counter",
                                ("api", "status"))
        self.tasks_total = Family("enrichment_tasks_total", "Total enrichment tasks",
                                  "counter", ("source", "status"))
        for provider in PROVIDERS:
            for status in ("success", "error"):
                self.api_calls.touch(api=provider, status=status)
        for status in ("completed", "partial", "failed"):
            self.tasks_total.touch(source="api", status=status)

    # ------------------------------------------------------------ configuration

    def _fetch_rows(self) -> list[dict[str, Any]]:
        url = f"{self.control_url}/db/tables/{CONFIG_TABLE}"
        try:
            reply = jsonhttp.request("GET", url, timeout=2.0)
        except OSError as exc:
            raise ReloadError(f"database unreachable: {exc}") from exc
        body = reply.json()
        rows = body.get("rows") if isinstance(body, dict) else None
        if not reply.ok or not isinstance(rows, list):
            raise ReloadError(f"database answered HTTP {reply.status}")
        if not all(isinstance(r, dict) and "metadata_field" in r for r in rows):
            raise ReloadError("malformed rows in metadata_enrichment_config")
        return rows

    def reload(self) -> LoadedConfig:
        """Re-read the table and swap it in between two traffic rounds."""
        loaded = LoadedConfig.from_rows(self._fetch_rows())
        with self._round_lock:
            self.config = loaded
        return loaded

    def _auto_reload(self) -> None:
        while True:
            time.sleep(RELOAD_INTERVAL_SECONDS)
            try:
                self.reload()
            except ReloadError as exc:
                print(f"auto-reload failed: {exc}", file=sys.stderr)

    # ------------------------------------------------------------ provider calls

    def call_provider(self, provider: str) -> tuple[bool, str]:
        """One call through the gateway, counted in api_calls_total; (ok, error text)."""
        try:
            url = f"{self.peers.http_url('api-gateway-internal')}/providers/{provider}/call"
            reply = jsonhttp.request("POST", url, {}, timeout=1.0)
            ok, error = reply.ok, f"{provider}: HTTP {reply.status}"
        except OSError as exc:
            ok, error = False, f"{provider}: gateway unreachable ({exc})"
        self.api_calls.inc(api=provider, status="success" if ok else "error")
        return ok, "" if ok else error

    def _traffic(self) -> None:
        while True:
            started = time.monotonic()
            try:
                with self._round_lock:
                    for provider in self.config.all_providers():
                        self.call_provider(provider)
            except Exception:  # a dead traffic thread would silently end all traffic
                traceback.print_exc(file=sys.stderr)
            time.sleep(max(0.0, TRAFFIC_INTERVAL_SECONDS - (time.monotonic() - started)))

    def start_background(self) -> None:
        """Initial load (retried briefly: the control API is up before us), then loops."""
        deadline = time.monotonic() + 3.0
        while True:
            try:
                self.reload()
                break
            except ReloadError as exc:
                if time.monotonic() > deadline:
                    print(f"initial config load failed: {exc}", file=sys.stderr)
                    break
                time.sleep(0.1)
        for target in (self._traffic, self._auto_reload):
            threading.Thread(target=target, daemon=True, name=target.__name__).start()

    # ------------------------------------------------------------ routes

    def router(self) -> jsonhttp.Router:
        """All routes of the stub."""
        router = jsonhttp.Router()
        router.add("GET", "/health", self.health)
        router.add("GET", "/stats", self.stats)
        router.add("GET", "/metrics", self.metrics)
        router.add("GET", "/admin/config", self.get_config)
        router.add("POST", "/admin/config/reload", self.post_reload)
        router.add("GET", "/admin/config/providers", self.get_providers)
        router.add("POST", "/enrich", self.enrich)
        return router

    def health(self, request: Request) -> Response:
        """The real check: status stays "healthy" while every value *contains* "healthy"."""
        connections = {
            "database": runtime.peer_tcp_check(self.peers, "postgres"),
            "redis": runtime.peer_tcp_check(self.peers, "redis"),
            "http_client": "healthy",
        }
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

    def stats(self, request: Request) -> Response:
        """Counters of this process's work; deliberately no `error_rate` key."""
        with self._tasks_lock:
            tasks = dict(self._tasks)
            found = dict(self._fields_found)
        return json_response({
            "track_stats": {
                "total_tracks": sum(tasks.values()),
                "with_spotify_id": found.get("spotify_id", 0),
                "with_isrc": found.get("isrc", 0),
                "with_bpm": found.get("bpm", 0),
                "with_key": found.get("key", 0),
            },
            "enrichment_status": [{"status": s, "count": n} for s, n in sorted(tasks.items())],
            "retriable_failures": [],
            "timestamp": runtime.utc_now_iso(),
        })

    def metrics(self, request: Request) -> Response:
        """Prometheus text: api_calls_total and enrichment_tasks_total."""
        return jsonhttp.text_response(render_all(self.api_calls, self.tasks_total))

    def get_config(self, request: Request) -> Response:
        """The loaded configuration (not the table: they differ until a reload)."""
        return json_response({
            "status": "success",
            "configuration": self.config.summary(),
            "note": "Configuration is reloaded automatically every 5 minutes",
        })

    def post_reload(self, request: Request) -> Response:
        """Force a reload; 503 with the reason if the table cannot be read."""
        try:
            loaded = self.reload()
        except ReloadError as exc:
            raise HttpError(503, f"Failed to reload configuration: {exc}") from exc
        return json_response({"status": "reloaded", "timestamp": runtime.utc_now_iso(),
                              "configuration": loaded.summary()})

    def get_providers(self, request: Request) -> Response:
        """The enrichment_providers table, in the real endpoint's shape."""
        try:
            reply = jsonhttp.request("GET", f"{self.control_url}/db/tables/{PROVIDERS_TABLE}")
        except OSError as exc:
            raise HttpError(500, f"Failed to get providers: {exc}") from exc
        body = reply.json()
        rows = body.get("rows") if isinstance(body, dict) else None
        if not reply.ok or not isinstance(rows, list):
            raise HttpError(500, f"Failed to get providers: database HTTP {reply.status}")
        providers = [{
            "name": row.get("provider_name"),
            "type": row.get("provider_type"),
            "supported_fields": row.get("supported_fields"),
            "enabled": row.get("enabled"),
            "health_status": row.get("health_status"),
            "avg_confidence": row.get("avg_confidence_score"),
            "success_rate": row.get("success_rate"),
            "last_health_check": row.get("last_health_check"),
        } for row in sorted(rows, key=lambda r: str(r.get("provider_name")))]
        return json_response({"providers": providers, "total_providers": len(providers)})

    def enrich(self, request: Request) -> Response:
        """Run one track through the first provider of each enabled field."""
        try:
            raw = request.json()
        except HttpError as exc:
            raise HttpError(422, [{"type": "json_invalid", "loc": ["body"],
                                   "msg": str(exc.detail)}]) from exc
        body: dict[str, Any] = raw if isinstance(raw, dict) else {}
        missing = [name for name in REQUIRED_ENRICH_FIELDS
                   if not isinstance(body.get(name), str)]
        if missing:
            raise HttpError(422, [{"type": "missing", "loc": ["body", name],
                                   "msg": "Field required", "input": raw} for name in missing])
        started = time.monotonic()
        by_provider: dict[str, list[str]] = {}
        for field_name, provider in self.config.first_providers().items():
            by_provider.setdefault(provider, []).append(field_name)
        sources: list[str] = []
        acquired: dict[str, Any] = {}
        errors: list[str] = []
        for provider, fields in by_provider.items():
            ok, error = self.call_provider(provider)
            if ok:
                sources.append(provider)
                acquired.update({f: fake_value(f, body) for f in fields})
            else:
                errors.append(error)
        if not by_provider:
            errors.append("no enabled fields with a provider in the loaded configuration")
        status = "completed" if not errors else "partial" if sources else "failed"
        self.tasks_total.inc(source="api", status=status)
        with self._tasks_lock:
            self._tasks[status] = self._tasks.get(status, 0) + 1
            for name in acquired:
                self._fields_found[name] = self._fields_found.get(name, 0) + 1
        return json_response({
            "track_id": body["track_id"],
            "status": status,
            "sources_used": sources,
            "metadata_acquired": acquired,
            "errors": errors,
            "duration_seconds": round(time.monotonic() - started, 4),
            "cached": False,
            "timestamp": runtime.utc_now_iso(),
        })


def main(port: int, control_url: str, name: str) -> None:
    """Bind first (so the supervisor sees us quickly), then load config and serve."""
    service = Enrichment(control_url)
    server = jsonhttp.JsonServer(service.router(), port)
    try:
        service.start_background()
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
