"""The API's listening socket, bound before the daemon starts or says it listens.

uvicorn binds inside its own task, after the daemon has logged "listening" and
"daemon_started"; a busy port then ended in hundreds of lines of asyncio tracebacks
and exit 3. Binding here first turns it into one line naming the setting, exit 2.
"""

from __future__ import annotations

import errno
import socket

from watchdog.settings import Settings

#: What a failed bind means, for the one line `watchdog run` ends with.
BIND_ERRORS = {
    errno.EADDRINUSE: "the address is already in use",
    errno.EADDRNOTAVAIL: "no interface of this host has that address",
    errno.EACCES: "permission denied (ports below 1024 need privileges)",
}


def listening_socket(settings: Settings) -> socket.socket:
    """The API's socket, bound before anything starts or claims to listen: a busy port is
    one line and exit 2 (ValueError), not a daemon that starts and then dies in uvicorn."""
    where = f"cannot listen on {settings.listen}"
    flag = "(--listen / WATCHDOG_LISTEN)"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            settings.listen_host.strip("[]"), settings.listen_port,
            type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE,
        )[0]
    except (OSError, UnicodeError) as error:
        raise ValueError(f"{where}: unknown host ({error}) {flag}") from None
    listener = socket.socket(family, kind, proto)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        listener.bind(address)
    except OSError as error:
        listener.close()
        reason = BIND_ERRORS.get(error.errno or 0, error.strerror or str(error))
        raise ValueError(f"{where}: {reason} {flag}") from None
    return listener
