"""What to do when the Docker socket refuses us: the group that owns it, by number.

The sidecar runs as an unprivileged user and reaches the engine through the host's
socket only by being in the socket's group (`group_add: ${DOCKER_GID}` in the
Compose file). That number differs from host to host (999, 107, 994 ...), and a
wrong one reads as "Docker engine unreachable": a P0 with no hint. So every place
that reports the engine unreachable (the probe, the actions) adds this module's
advice when the cause is a permission refusal: the socket's path, its group and
mode, this process's groups, and the exact setting to change.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping

DEFAULT_SOCKET = "/var/run/docker.sock"


def socket_path(environ: Mapping[str, str] | None = None) -> str | None:
    """The unix socket DOCKER_HOST names (the SDK's default when unset); None for TCP."""
    host = (os.environ if environ is None else environ).get("DOCKER_HOST", "")
    if not host:
        return DEFAULT_SOCKET
    for prefix in ("unix://", "http+unix://"):
        if host.startswith(prefix):
            return host.removeprefix(prefix) or DEFAULT_SOCKET
    return None


def permission_advice(error: BaseException | str, socket: str | None = None) -> str:
    """'' unless `error` is a permission refusal on a unix socket; then, from the socket's
    own metadata, which group to run with ("; ..." to append to the error)."""
    if "permission denied" not in str(error).lower() and not _permission_error(error):
        return ""
    path = socket if socket is not None else socket_path()
    if path is None:
        return ""
    try:
        info = os.stat(path)
    except OSError as missing:
        return f"; the Docker socket {path} cannot be read ({missing.strerror or missing})"
    groups = sorted({os.getgid(), *os.getgroups()})
    member = info.st_gid in groups
    mode = stat.filemode(info.st_mode)
    # The setting first: evidence is clipped to one line of 300 characters downstream.
    return (
        f"; set DOCKER_GID={info.st_gid} in deploy/.env (the Compose file's group_add): the "
        f"socket {path} belongs to group {info.st_gid} ({mode}) and this process (uid "
        f"{os.getuid()}, groups {', '.join(map(str, groups))}) is "
        + ("in it, but the socket's mode refuses the group" if member else "not in it")
    )


def _permission_error(error: BaseException | str) -> bool:
    seen: BaseException | None = error if isinstance(error, BaseException) else None
    while seen is not None:
        if isinstance(seen, PermissionError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
