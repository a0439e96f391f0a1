"""The HTTP server every fake vendor shares: a thread, a free port, scripted failures.

A subclass says what its vendor accepts (`handle`); the base records every
request, lets a test make the next N requests fail (500, or 429 with a
Retry-After), or answer the vendor's own 400, and keeps what was accepted.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass(frozen=True, slots=True)
class Received:
    """One request as it arrived, with what the fake answered."""

    method: str
    path: str
    headers: dict[str, str]
    raw: bytes
    status: int
    answer: bytes

    def json(self) -> Any:
        return json.loads(self.raw)


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of_json(cls, status: int, body: Any, **headers: str) -> Answer:
        return cls(
            status, json.dumps(body).encode(), {"Content-Type": "application/json", **headers}
        )

    @classmethod
    def of_text(cls, status: int, body: str, **headers: str) -> Answer:
        return cls(status, body.encode(), {"Content-Type": "text/plain", **headers})


class FakeReceiver:
    """Base of the fakes. Use as a context manager; `url` is its base URL."""

    name = "receiver"

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.accepted: list[Received] = []
        self._scripted: list[Answer] = []  # answered before the vendor's own rules
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                fake._serve(self)

            def do_GET(self) -> None:
                fake._serve(self)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    # ---- scripting ------------------------------------------------------------

    def fail_next(self, count: int, *, status: int = 500, retry_after: str | None = None) -> None:
        """The next `count` requests fail with `status` (429 carries Retry-After)."""
        failure = self.failure(status)
        if retry_after is not None:
            failure = Answer(
                failure.status, failure.body, {**failure.headers, "Retry-After": retry_after}
            )
        with self._lock:
            self._scripted += [failure] * count

    def reject_next(self, count: int = 1) -> None:
        """The next `count` requests get the vendor's 400."""
        with self._lock:
            self._scripted += [self.bad_request("rejected by the test") for _ in range(count)]

    # ---- what a vendor says ------------------------------------------------------

    def failure(self, status: int) -> Answer:
        return Answer.of_json(status, {"message": "scripted failure"})

    def bad_request(self, why: str) -> Answer:
        return Answer.of_json(400, {"message": why})

    def handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Answer:
        raise NotImplementedError

    # ---- serving --------------------------------------------------------------

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in request.headers.items()}
        with self._lock:
            scripted = self._scripted.pop(0) if self._scripted else None
        try:
            answer = scripted or self.handle(request.command, request.path, headers, raw)
        except Exception as error:  # a bug in the fake must show, not hang the test
            answer = Answer.of_text(599, f"fake {self.name} crashed: {error!r}")
        record = Received(request.command, request.path, headers, raw, answer.status, answer.body)
        with self._lock:
            self.received.append(record)
            if scripted is None and 200 <= answer.status < 300:
                self.accepted.append(record)
        request.send_response(answer.status)
        for key, value in answer.headers.items():
            request.send_header(key, value)
        request.send_header("Content-Length", str(len(answer.body)))
        request.end_headers()
        request.wfile.write(answer.body)


def parse_json(raw: bytes) -> tuple[Any, str | None]:
    """The body as JSON, or the reason it is not JSON."""
    try:
        return json.loads(raw), None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return None, f"body is not JSON: {error}"


@contextmanager
def running(*fakes: FakeReceiver) -> Iterator[None]:
    for fake in fakes:
        fake.__enter__()
    try:
        yield
    finally:
        for fake in fakes:
            fake.__exit__(None, None, None)
