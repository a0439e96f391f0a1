"""A tiny JSON-over-HTTP server and client on the standard library.

The stubs must start in well under 0.3 s, so they cannot afford a web framework;
this module gives them routing with path parameters, JSON bodies, FastAPI-style
error bodies (`{"detail": ...}`) and a matching synchronous client, and nothing else.
Servers only ever bind 127.0.0.1.
"""

from __future__ import annotations

import http.client
import json
import re
import sys
import traceback
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOST = "127.0.0.1"
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class Request:
    """One parsed request, handed to a route handler."""

    method: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    headers: Message
    body: bytes

    def json(self) -> Any:
        """The body as JSON; an empty body reads as `{}`. Raises HttpError 400 if malformed."""
        if not self.body.strip():
            return {}
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise HttpError(400, f"request body is not valid JSON: {exc}") from exc


@dataclass(frozen=True)
class Response:
    """What a handler returns; bytes plus the few headers the stubs need."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)


class HttpError(Exception):
    """Raised by handlers to answer an error with a FastAPI-style `{"detail": ...}` body."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


def json_response(payload: Any, status: int = 200,
                  headers: tuple[tuple[str, str], ...] = ()) -> Response:
    """Serialise a payload as a JSON response."""
    return Response(status, json.dumps(payload).encode(), "application/json", headers)


def text_response(text: str, status: int = 200, content_type: str = PROMETHEUS_TEXT) -> Response:
    """A plain-text response (Prometheus exposition by default)."""
    return Response(status, text.encode(), content_type)


Handler = Callable[[Request], Response]


class Router:
    """Maps (method, path pattern) to handlers; `{name}` in a pattern captures one segment."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        """Register a handler; patterns are matched in registration order."""
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
        self._routes.append((method.upper(), re.compile(f"^{regex}$"), handler))

    def dispatch(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        """Find the handler for a request; raises HttpError 404/405 like FastAPI would."""
        path_matched = False
        for route_method, regex, handler in self._routes:
            match = regex.match(path)
            if match is None:
                continue
            path_matched = True
            if route_method == method:
                params = {k: urllib.parse.unquote(v) for k, v in match.groupdict().items()}
                return handler, params
        if path_matched:
            raise HttpError(405, "Method Not Allowed")
        raise HttpError(404, "Not Found")


def _make_handler_class(router: Router) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        server_version = "sandbox/1"

        def _serve(self) -> None:
            split = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else b""
            try:
                handler, params = router.dispatch(self.command, split.path)
                response = handler(Request(self.command, split.path, params, query,
                                           self.headers, body))
            except HttpError as exc:
                response = json_response({"detail": exc.detail}, exc.status)
            except Exception as exc:
                traceback.print_exc(file=sys.stderr)
                response = json_response({"detail": f"internal error: {exc}"}, 500)
            self._write(response)

        def _write(self, response: Response) -> None:
            try:
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(response.body)))
                for name, value in response.headers:
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(response.body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        do_GET = _serve
        do_POST = _serve
        do_PUT = _serve
        do_DELETE = _serve
        do_PATCH = _serve

        def log_message(self, format: str, *args: Any) -> None:
            """Access logs would drown the child logs; errors go through traceback instead."""

    return _Handler


class JsonServer(ThreadingHTTPServer):
    """A threading HTTP server on 127.0.0.1 whose threads never block process exit."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, router: Router, port: int) -> None:
        super().__init__((HOST, port), _make_handler_class(router))

    @property
    def port(self) -> int:
        """The bound port (useful when asked for port 0)."""
        return int(self.server_address[1])


# ---------------------------------------------------------------- client side


@dataclass(frozen=True)
class Reply:
    """An HTTP answer as the stubs and the control client see it."""

    status: int
    body: bytes
    headers: Message

    def json(self) -> Any:
        """The body as JSON, or None when it is empty or not JSON."""
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    @property
    def ok(self) -> bool:
        """True for any 2xx."""
        return 200 <= self.status < 300


#: Never consult http_proxy & co: every sandbox address is loopback and must stay so.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def request(method: str, url: str, payload: Any = None, *, timeout: float = 2.0,
            headers: dict[str, str] | None = None) -> Reply:
    """Send one request and return the reply, including 4xx/5xx (which urllib would raise).

    Connection failures still raise OSError (urllib.error.URLError is one; a broken
    answer is turned into ConnectionError), so callers can tell "answered with an
    error" from "did not answer".
    """
    data = None if payload is None else json.dumps(payload).encode()
    all_headers = {"Content-Type": "application/json"} if data is not None else {}
    all_headers.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method.upper(), headers=all_headers)
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return Reply(resp.status, resp.read(), resp.headers)
    except urllib.error.HTTPError as exc:
        with exc:
            return Reply(exc.code, exc.read(), exc.headers)
    except http.client.HTTPException as exc:
        # A peer killed mid-answer: to callers this is "did not answer", like a refusal.
        raise ConnectionError(f"broken HTTP answer from {url}: {exc!r}") from exc
