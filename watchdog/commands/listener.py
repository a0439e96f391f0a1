"""The API's listening socket, bound before the daemon starts or says it listens.

uvicorn binds inside its own task, after the daemon has logged "listening" and
"daemon_started"; a busy port then ended in hundreds of lines of asyncio tracebacks
and exit 3. Binding here first turns it into one line naming the setting, exit 2.
"""

from __future__ import annotations

import errno
import socket

from watchdog.settings import Settings

#: Seconds an idle keep-alive connection stays open (uvicorn's default is 5). A client
#: that reuses an idle connection just as the server closes it gets a connection error
#: for a request the server never read; Go's http.Transport (Alertmanager's, Prometheus's)
#: does not resend a POST, so a webhook was lost to Alertmanager's next retry. In
#: bench/alert_intake.py at 200 requests/s of 100 alerts on a PostgreSQL journal (past
#: its capacity, so connections wait), 3 runs in 9 ended in such an error at 5 s, none of
#: 12 at 60 s nor of 6 at 310 s. Longer than the clients' own idle timeout (Go's default:
#: 90 s; prometheus/common's: 5 min), the client closes first and never races the server.
KEEP_ALIVE_SECONDS = 310

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
