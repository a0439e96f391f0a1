"""The container's health check: exit 0 when the daemon's /healthz says it is ticking.

Why a script of its own: python:3.11-slim has no curl or wget, and the port comes
from WATCHDOG_LISTEN (the same setting the daemon reads), so the check follows the
daemon wherever it listens. Standard library only, so it runs with any Python.
/healthz answers 503 while the daemon starts or when its decision loop stalls.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request

DEFAULT_LISTEN = "0.0.0.0:9095"
TIMEOUT_SECONDS = 4.0


def healthz_url(listen: str) -> str:
    """The /healthz URL for a WATCHDOG_LISTEN value; a wildcard host is asked on loopback."""
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(
            f"WATCHDOG_LISTEN must be host:port such as 0.0.0.0:9095, found {listen!r}"
        )
    if host in ("0.0.0.0", "::", "[::]", "*"):
        host = "127.0.0.1"
    return f"http://{host}:{port}/healthz"


def main() -> int:
    """Ask /healthz once; print why when unhealthy (Docker keeps it in `docker inspect`)."""
    try:
        url = healthz_url(os.environ.get("WATCHDOG_LISTEN", DEFAULT_LISTEN))
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as answer:
            body = json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as exc:
        print(f"{url}: HTTP {exc.code} {exc.read()[:200]!r}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1
    if body.get("status") != "ok":
        print(f"{url}: status {body.get('status')!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
