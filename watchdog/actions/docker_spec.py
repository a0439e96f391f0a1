"""What a Compose container's inspect data says: its service, its dependencies, its health,
and the record to recreate it from.

Pure functions over `container.attrs` (the engine's inspect JSON), kept apart from
the calls that fetch it so the rules (which label counts, what a dependency is,
what "ready" means, which fields make a container) are read in one place and
need no engine to be checked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
NUMBER_LABEL = "com.docker.compose.container-number"
ONEOFF_LABEL = "com.docker.compose.oneoff"
DEPENDS_LABEL = "com.docker.compose.depends_on"
PREV_MARK = "-watchdog-prev-"
PREV_NAME = re.compile(re.escape(PREV_MARK) + r"\d+$")

# HostConfig keys the last-good row names on its own (readable in the journal);
# every other HostConfig key travels as-is in the row's "host_config".
NAMED_HOST_KEYS = ("Binds", "Mounts", "NetworkMode", "PortBindings", "RestartPolicy", "Init")


def labels(attrs: Mapping[str, Any]) -> dict[str, str]:
    return dict((attrs.get("Config") or {}).get("Labels") or {})


def name(attrs: Mapping[str, Any]) -> str:
    return str(attrs.get("Name", "")).lstrip("/")


def service_of(attrs: Mapping[str, Any]) -> str:
    return labels(attrs).get(SERVICE_LABEL, "")


def number(attrs: Mapping[str, Any]) -> int:
    value = labels(attrs).get(NUMBER_LABEL, "")
    return int(value) if value.isdigit() else 0


def is_replica(attrs: Mapping[str, Any]) -> bool:
    """A service's own container: not a `compose run` one-off, not a revert's parked previous.

    A previous container parked by a revert keeps its Compose labels (it must be
    able to come back), so it is told apart by its name.
    """
    if labels(attrs).get(ONEOFF_LABEL, "False").lower() == "true":
        return False
    return not PREV_NAME.search(name(attrs))


def short_id(image_or_container_id: str) -> str:
    return image_or_container_id.removeprefix("sha256:")[:12]


def has_healthcheck(attrs: Mapping[str, Any]) -> bool:
    test = ((attrs.get("Config") or {}).get("Healthcheck") or {}).get("Test") or []
    return bool(test) and test[0] != "NONE"


def health(attrs: Mapping[str, Any]) -> str:
    """Docker's health status ("healthy", "unhealthy", "starting"), or "" with no healthcheck."""
    state = attrs.get("State") or {}
    return str((state.get("Health") or {}).get("Status", "")) if has_healthcheck(attrs) else ""


def summary(attrs: Mapping[str, Any]) -> str:
    """`web-1 (image 3c0e98a1b2c3, was running/unhealthy, exit=0)`: the state before an action."""
    state = attrs.get("State") or {}
    status = str(state.get("Status", "?"))
    status += f"/{health(attrs)}" if health(attrs) else ""
    return (
        f"{name(attrs)} (image {short_id(str(attrs.get('Image', '?')))}, was {status}, "
        f"exit={state.get('ExitCode', '?')})"
    )


def gives_up(attrs: Mapping[str, Any]) -> bool:
    """Stopped for good: exited or dead, and no restart policy will bring it back."""
    state = attrs.get("State") or {}
    policy = ((attrs.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name") or "no"
    return state.get("Status") in ("exited", "dead") and policy == "no"


def state_words(attrs: Mapping[str, Any]) -> str:
    """The container's state in words, for a failure's message."""
    state = attrs.get("State") or {}
    words = f"status {state.get('Status', '?')}, exit={state.get('ExitCode', '?')}"
    if health(attrs):
        words += f", health {health(attrs)}"
        checks = (state.get("Health") or {}).get("Log") or []
        if checks:
            words += f" (last check: {str(checks[-1].get('Output', '')).strip()[:120]!r})"
    if state.get("Error"):
        words += f", error {state['Error']!r}"
    return words


# Dependencies ----------------------------------------------------------------


def dependency_graph(containers: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """service → {service it depends on: condition}, from Compose's label and network mode.

    Compose writes `com.docker.compose.depends_on` as `a:service_healthy:true,b:...`
    (older versions `a:service_started` or just `a`); a `network_mode` of
    `container:<id or name>` or `service:<name>` is a dependency too: the
    container cannot start before the one whose network it joins.
    """
    every = list(containers)
    owner: dict[str, str] = {}
    for attrs in every:
        owner[str(attrs.get("Id", ""))] = service_of(attrs)
        owner[name(attrs)] = service_of(attrs)
    graph: dict[str, dict[str, str]] = {}
    for attrs in every:
        own = service_of(attrs)
        deps = graph.setdefault(own, {})
        for item in labels(attrs).get(DEPENDS_LABEL, "").split(","):
            dep, _, rest = item.strip().partition(":")
            if dep and dep != own:
                deps.setdefault(dep, rest.partition(":")[0] or "service_started")
        mode = str((attrs.get("HostConfig") or {}).get("NetworkMode") or "")
        kind, _, ref = mode.partition(":")
        target = ""
        if kind == "service":
            target = ref
        elif kind == "container" and ref:
            target = owner.get(ref) or next(
                (svc for key, svc in owner.items() if len(ref) >= 12 and key.startswith(ref)), ""
            )
        if target and target != own:
            deps.setdefault(target, "service_started")
    return graph


def _closure(graph: Mapping[str, Mapping[str, str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = list(graph.get(start, {}))
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(graph.get(current, {}))
    return seen


def order(
    graph: Mapping[str, Mapping[str, str]], services: Sequence[str], *, dependents_first: bool
) -> list[str]:
    """`services` sorted so dependencies come first (or last), otherwise in the order given.

    A dependency through a service not in `services` still counts (a → x → b
    puts b before a). Raises `ValueError` naming a cycle, which Compose forbids.
    """
    wanted = list(dict.fromkeys(services))
    closures = {s: _closure(graph, s) for s in wanted}
    for s in wanted:
        if s in closures[s]:
            raise ValueError(f"services depend on each other in a cycle through {s!r}")
    # before[x] = the requested services that must come before x
    before = {
        s: {
            t
            for t in wanted
            if t != s and (t in closures[s] if not dependents_first else s in closures[t])
        }
        for s in wanted
    }
    result: list[str] = []
    while len(result) < len(wanted):
        ready = next(s for s in wanted if s not in result and before[s] <= set(result))
        result.append(ready)
    return result


def dependents(graph: Mapping[str, Mapping[str, str]], target: str) -> list[str]:
    """Every service that depends on `target`, directly or not, in the order to stop them."""
    found = sorted(s for s in graph if s != target and target in _closure(graph, s))
    return order(graph, found, dependents_first=True)


def dependents_of_all(
    graph: Mapping[str, Mapping[str, str]], services: Sequence[str]
) -> list[str]:
    """The services that depend on any of `services` (not themselves), in stop order;
    a dependency cycle is skipped, not raised: evidence is still worth keeping."""
    found: list[str] = []
    for service in services:
        try:
            found += dependents(graph, service)
        except ValueError:
            continue
    return list(dict.fromkeys(s for s in found if s not in services))


# Last known good -------------------------------------------------------------


def good_row(attrs: Mapping[str, Any], project: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What recreating this container needs, as JSON: one row of `docker:last_good:<service>`.

    The fields the runbook talks about are named (image, env, mounts, ports,
    restart policy, healthcheck, init ...); the rest of HostConfig (capabilities,
    devices, limits, logging, extra hosts) travels unchanged in `host_config`,
    the way the engine reported it, so nothing the Compose file set is lost.
    Nothing that differs between two containers of the same configuration (the
    container ID, the default hostname, the alias Docker adds for the ID) is
    kept, so recording an unchanged service stores nothing new.
    """
    config = attrs.get("Config") or {}
    host = dict(attrs.get("HostConfig") or {})
    own_id = str(attrs.get("Id", ""))
    hostname = str(config.get("Hostname") or "")
    mode = str(host.get("NetworkMode") or "")
    mode_service = ""
    if mode.startswith("container:"):
        ref = mode.partition(":")[2]
        mode_service = next(
            (
                service_of(other)
                for other in project
                if ref and (str(other.get("Id", "")).startswith(ref) or name(other) == ref)
            ),
            "",
        )
    networks = {}
    for network, endpoint in ((attrs.get("NetworkSettings") or {}).get("Networks") or {}).items():
        endpoint = endpoint or {}
        aliases = [a for a in endpoint.get("Aliases") or [] if not _is_own_id(a, own_id)]
        networks[network] = {
            "Aliases": aliases or None,
            "Links": endpoint.get("Links"),
            "IPAMConfig": endpoint.get("IPAMConfig"),
        }
    return {
        "name": name(attrs),
        "service": service_of(attrs),
        "number": number(attrs),
        "image_id": str(attrs.get("Image", "")),
        "image": str(config.get("Image", "")),
        "labels": labels(attrs),
        "env": list(config.get("Env") or []),
        "command": config.get("Cmd"),
        "entrypoint": config.get("Entrypoint"),
        "working_dir": config.get("WorkingDir") or "",
        "user": config.get("User") or "",
        "hostname": "" if _is_own_id(hostname, own_id) else hostname,
        "domainname": config.get("Domainname") or "",
        "exposed_ports": config.get("ExposedPorts"),
        "healthcheck": config.get("Healthcheck"),
        "stop_signal": config.get("StopSignal"),
        "stop_timeout": config.get("StopTimeout"),
        "tty": bool(config.get("Tty")),
        "open_stdin": bool(config.get("OpenStdin")),
        "binds": host.get("Binds"),
        "mounts": host.get("Mounts"),
        "network_mode": mode,
        "network_mode_service": mode_service,
        "networks": networks,
        "port_bindings": host.get("PortBindings"),
        "restart_policy": host.get("RestartPolicy"),
        "init": host.get("Init"),
        "host_config": {k: v for k, v in host.items() if k not in NAMED_HOST_KEYS},
    }


def _is_own_id(value: str, own_id: str) -> bool:
    """Docker's defaults derived from the container ID (hostname, network alias): not config."""
    return len(value) == 12 and own_id.startswith(value)


def _bind_target(bind: str) -> str:
    parts = bind.split(":")
    return parts[1] if len(parts) > 1 else parts[0]


def create_config(
    row: Mapping[str, Any],
    *,
    network_mode: str,
    current: Mapping[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The engine's create body for a row, and the networks to connect before it starts.

    `network_mode` is the row's, re-resolved by the caller when it names another
    container (whose ID a recreate changes). Anonymous volumes of the container
    being replaced (`current`) are carried over, as Compose does on a recreate,
    so a revert never loses data kept in an image-declared volume.
    """
    binds = list(row.get("binds") or [])
    volumes_now = {
        str(m.get("Destination", "")): str(m["Name"])
        for m in (current or {}).get("Mounts") or []
        if m.get("Type") == "volume" and m.get("Name")
    }
    mounts = []
    for mount in row.get("mounts") or []:
        mount = dict(mount)
        if mount.get("Type") == "volume" and not mount.get("Source"):
            # an anonymous volume Compose declared: keep the one holding the data now
            found = volumes_now.get(str(mount.get("Target")))
            if found:
                mount["Source"] = found
        mounts.append(mount)
    taken = {_bind_target(b) for b in binds} | {str(m.get("Target")) for m in mounts}
    for mount in (current or {}).get("Mounts") or []:
        target = str(mount.get("Destination", ""))
        if mount.get("Type") == "volume" and mount.get("Name") and target not in taken:
            mounts.append(
                {
                    "Type": "volume",
                    "Source": mount["Name"],
                    "Target": target,
                    "ReadOnly": not mount.get("RW", True),
                }
            )
            taken.add(target)
    host_config = dict(row.get("host_config") or {})
    host_config.update(
        {
            "Binds": binds or None,
            "Mounts": mounts or None,
            "NetworkMode": network_mode,
            "PortBindings": row.get("port_bindings"),
            "RestartPolicy": row.get("restart_policy"),
            "Init": row.get("init"),
        }
    )
    networks: dict[str, dict[str, Any]] = dict(row.get("networks") or {})
    own_mode = network_mode in ("host", "none") or network_mode.startswith("container:")
    primary_name = "bridge" if network_mode in ("default", "bridge") else network_mode
    primary = networks.pop(primary_name, None)
    if own_mode:
        networks.clear()
    body: dict[str, Any] = {
        "Image": row["image_id"],
        "Labels": row.get("labels") or {},
        "Env": row.get("env") or [],
        "Cmd": row.get("command"),
        "Entrypoint": row.get("entrypoint"),
        "WorkingDir": row.get("working_dir") or "",
        "User": row.get("user") or "",
        "Domainname": row.get("domainname") or "",
        "ExposedPorts": row.get("exposed_ports"),
        "Healthcheck": row.get("healthcheck"),
        "StopSignal": row.get("stop_signal"),
        "StopTimeout": row.get("stop_timeout"),
        "Tty": bool(row.get("tty")),
        "OpenStdin": bool(row.get("open_stdin")),
        "HostConfig": host_config,
    }
    if row.get("hostname"):
        body["Hostname"] = row["hostname"]
    if primary is not None and not own_mode:
        body["NetworkingConfig"] = {"EndpointsConfig": {primary_name: primary}}
    return body, networks
