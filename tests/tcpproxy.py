"""A TCP proxy on 127.0.0.1 that a test can cut and heal: a network partition on demand.

Why a proxy and not stopping the server: a partition is one client losing the
database while the database and everyone else carry on, which is exactly what a
leader cut from its journal sees. A daemon given `port` instead of the server's
talks through this proxy; the test then calls:

- `cut()`: every open connection is dropped (closed both ways) and new ones are
  closed as soon as they are accepted: the client sees errors at once.
- `cut(blackhole=True)`: connections stay open but nothing is forwarded any more
  and new ones are accepted and left hanging: the client sees silence, as behind a
  dead router, and must rely on its own timeouts and deadlines.
- `heal()`: whatever was held during the cut is closed (its protocol state is lost)
  and new connections are forwarded again.

Threads, not asyncio: two per connection, daemons, and sockets closed on `close()`.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from types import TracebackType

HOST = "127.0.0.1"
_CHUNK = 65536


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `upstream_port`; `cut()` and `heal()` a partition."""

    def __init__(self, upstream_port: int, upstream_host: str = HOST) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server((HOST, 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._cut = False
        self._blackhole = False
        self._closed = False
        self.accepted = 0  # connections accepted, forwarded or not (for test diagnostics)
        self._thread = threading.Thread(target=self._accept, name="tcpproxy", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ control

    @property
    def is_cut(self) -> bool:
        return self._cut

    def cut(self, *, blackhole: bool = False) -> None:
        """Partition: drop the connections (or, with `blackhole`, silence them)."""
        with self._lock:
            self._cut, self._blackhole = True, blackhole
            dropped = set() if blackhole else set(self._open)
        for sock in dropped:
            self._drop(sock)

    def heal(self) -> None:
        """End the partition; what was held during it is closed, new connections forward."""
        with self._lock:
            self._cut = self._blackhole = False
            held = set(self._open)
        for sock in held:
            self._drop(sock)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            every = set(self._open)
        with contextlib.suppress(OSError):  # wakes the accept() (close alone does not)
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for sock in every:
            self._drop(sock)
        self._thread.join(5)

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------ forwarding

    def _drop(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # the listener was closed
            self.accepted += 1
            with self._lock:
                if self._closed:
                    client.close()
                    return
                cut, blackhole = self._cut, self._blackhole
                if not cut or blackhole:
                    self._open.add(client)
            if cut and not blackhole:
                client.close()
            elif cut:
                self._hold(client)
            else:
                threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _hold(self, client: socket.socket) -> None:
        """Blackhole a connection: read and discard until it closes or the cut heals."""
        threading.Thread(target=self._pump, args=(client, None), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            self._drop(client)
            return
        server.settimeout(None)
        with self._lock:
            self._open.add(server)
        for source, target in ((client, server), (server, client)):
            threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket | None) -> None:
        """Copy source → target while not cut; a blackhole swallows; an end closes both."""
        try:
            while data := source.recv(_CHUNK):
                if target is None or self._blackhole:
                    continue
                target.sendall(data)
        except OSError:
            pass
        self._drop(source)
        if target is not None:
            self._drop(target)


@contextlib.contextmanager
def tcp_proxy(upstream_port: int) -> Iterator[TcpProxy]:
    with TcpProxy(upstream_port) as proxy:
        yield proxy
