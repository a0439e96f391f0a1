"""The two non-HTTP stand-ins: a bare TCP listener for postgres and a tiny RESP server
for redis.

Nothing in the sandbox speaks the PostgreSQL protocol: "the database is reachable"
means "a TCP connect succeeds", which is what the stubs' health checks test. Redis
gets just enough of RESP (AUTH, PING, QUIT) for a watchdog probe to check that the
password is required and accepted, the way `redis-cli -a ... PING` would.
"""

from __future__ import annotations

import hmac
import io
import socketserver

from watchdog.sandbox.catalog import REDIS_PASSWORD
from watchdog.sandbox.jsonhttp import HOST

NOAUTH = b"-NOAUTH Authentication required.\r\n"
WRONGPASS = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"


class ProtocolError(ValueError):
    """The client sent something that is not RESP."""


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class _AcceptAndClose(socketserver.BaseRequestHandler):
    """Postgres stand-in: accepting proves reachability; closing ends the conversation."""

    def handle(self) -> None:
        return


def read_command(rfile: io.BufferedIOBase) -> list[str] | None:
    """One command as a list of words (RESP array or inline form); None at EOF."""
    line = rfile.readline(65536)
    if not line:
        return None
    if not line.startswith(b"*"):
        return line.decode("utf-8", "replace").split()
    try:
        count = int(line[1:].strip())
        words: list[str] = []
        for _ in range(count):
            header = rfile.readline(65536)
            if not header.startswith(b"$"):
                raise ProtocolError("expected '$'")
            length = int(header[1:].strip())
            words.append(rfile.read(length + 2)[:length].decode("utf-8", "replace"))
    except ValueError as exc:
        raise ProtocolError(str(exc)) from exc
    return words


def answer(words: list[str], authed: bool) -> tuple[bytes, bool, bool]:
    """(reply, authed afterwards, close afterwards) for one command."""
    command = words[0].upper()
    args = words[1:]
    if command == "QUIT":
        return b"+OK\r\n", authed, True
    if command == "AUTH":
        if len(args) not in (1, 2):
            return b"-ERR wrong number of arguments for 'auth' command\r\n", authed, False
        user, password = ("default", args[0]) if len(args) == 1 else (args[0], args[1])
        if user == "default" and hmac.compare_digest(
            password.encode("utf-8", "surrogateescape"), REDIS_PASSWORD.encode()
        ):  # constant time, as the real Redis compares
            return b"+OK\r\n", True, False
        return WRONGPASS, authed, False
    if not authed:
        return NOAUTH, authed, False
    if command == "PING":
        if args:
            data = args[0].encode()
            return b"$%d\r\n%s\r\n" % (len(data), data), authed, False
        return b"+PONG\r\n", authed, False
    return f"-ERR unknown command '{words[0]}'\r\n".encode(), authed, False


class _Redis(socketserver.StreamRequestHandler):
    """One client connection: authentication state lives for the connection."""

    def handle(self) -> None:
        authed = False
        while True:
            try:
                words = read_command(self.rfile)
            except ProtocolError:
                self.wfile.write(b"-ERR Protocol error\r\n")
                return
            except OSError:
                return
            if words is None:
                return
            if not words:
                continue
            reply, authed, close = answer(words, authed)
            try:
                self.wfile.write(reply)
            except OSError:
                return
            if close:
                return


def _serve(handler: type[socketserver.BaseRequestHandler], port: int) -> None:
    server = _Server((HOST, port), handler)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()


def main_tcp(port: int, control_url: str, name: str) -> None:
    """Run the postgres stand-in until signalled."""
    _serve(_AcceptAndClose, port)


def main_redis(port: int, control_url: str, name: str) -> None:
    """Run the redis stand-in until signalled."""
    _serve(_Redis, port)
