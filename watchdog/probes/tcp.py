"""Reachability of a TCP port, and for Redis a real AUTH + PING.

Stateful services (postgres, redis, rabbitmq) have no HTTP health endpoint the
watchdog can use, and an open port alone does not prove Redis will serve: with
`redis_password` the probe speaks just enough RESP to send `AUTH` and `PING`
and accepts only `+PONG`. Down is down: every failure is value 0.0. A Redis
error reply is quoted as evidence, but the password never appears in any text.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse

from watchdog.model import Observation
from watchdog.policy.schema import TargetSpec, TcpSignal
from watchdog.probes.stamp import Stopwatch


def parse_address(url: str) -> tuple[str, int]:
    """(host, port) from `host:port`, `tcp://host:port` or `redis://host:port`."""
    rest = url.split("://", 1)[1] if "://" in url else url
    try:
        parts = urllib.parse.urlsplit(f"//{rest}")
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise ValueError(f"expected host:port, found {url!r}: {exc}") from exc
    if not host or port is None:
        raise ValueError(f"expected host:port, found {url!r}")
    return host, port


def resp_command(*words: str) -> bytes:
    """One command in RESP, the Redis wire format."""
    encoded = [word.encode() for word in words]
    parts = [b"*%d\r\n" % len(encoded)]
    parts.extend(b"$%d\r\n%s\r\n" % (len(word), word) for word in encoded)
    return b"".join(parts)


class TcpProbe:
    """Reads one `TcpSignal`: 1.0 when the port accepts (and Redis answers PONG)."""

    def __init__(self, signal: TcpSignal, target_name: str, target: TargetSpec) -> None:
        self.signal = signal
        self.host, self.port = parse_address(target.url)
        self._where = f"{target_name} tcp {self.host}:{self.port}"

    async def observe(self) -> list[Observation]:
        watch = Stopwatch(self.signal.name)
        timeout = self.signal.timeout
        try:
            problem = await asyncio.wait_for(self._converse(), timeout)
        except TimeoutError:
            problem = f"no answer within {timeout:g} s (expected the port to accept)"
        except OSError as exc:
            problem = f"cannot connect: {exc.strerror or exc} (expected an open port)"
        except ValueError as exc:  # a reply line longer than the stream's limit
            problem = f"unreadable reply: {exc} (expected a short RESP line)"
        stamp = watch.stop()
        if problem:
            return [stamp.failure(f"{self._where}: {self._redact(problem)}", value=0.0)]
        detail = "PONG" if self.signal.redis_password is not None else "connected"
        return [stamp.reading(1.0, detail=detail)]

    async def _converse(self) -> str:
        """Empty when healthy, else what went wrong; connection errors raise OSError."""
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            password = self.signal.redis_password
            if password is None:
                return ""
            writer.write(resp_command("AUTH", password) + resp_command("PING"))
            await writer.drain()
            auth = (await reader.readline()).decode(errors="replace").strip()
            if not auth.startswith("+"):
                return _bad_reply("AUTH", auth, "+OK")
            pong = (await reader.readline()).decode(errors="replace").strip()
            return "" if pong == "+PONG" else _bad_reply("PING", pong, "+PONG")
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def _redact(self, text: str) -> str:
        password = self.signal.redis_password
        return text.replace(password, "***") if password else text


def _bad_reply(command: str, reply: str, expected: str) -> str:
    if not reply:
        return f"{command}: connection closed without a reply (expected {expected})"
    return f"{command} answered {reply[:120]!r} (expected {expected})"
