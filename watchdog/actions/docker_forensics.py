"""Scenario 5's forensic snapshot: the failing state kept in a folder before anything acts.

The runbook's first look at a complete failure is `docker compose ps`, each
container's logs, `df -h`, `free -h`, `docker volume ls` and the system's logs.
An emergency stop and a rebuild destroy most of that (a recreated container's
logs go with the old one), so `system.snapshot` writes it all first, into one
folder named in the step's output (the page and the report quote it):

- `ps.json`: every container of the Compose project (service, state, health,
  image, created), found by its labels as every other action finds them;
- `logs/<container>.log`: each container's last `lines` lines, through the
  process's scrubber (a log may print a password);
- `df.json`: the state folder's filesystem and the Docker root's, when readable here;
- `meminfo.txt`: `/proc/meminfo` as it was (`free`);
- `volumes.json`: the project's volumes, names and mountpoints, never their content;
- `journal.jsonl`: the journal's events of the last hour, one JSON object a line;
- `README.txt`: what each file holds.

It reads through the Docker SDK the rest of the project uses, never a `docker`
command, and changes nothing on the engine: safe, and a second run only writes
another folder.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from watchdog.actions.base import ActionFailed, ActionOutcome
from watchdog.actions.docker_engine import Engine, connect
from watchdog.actions.docker_evidence import tail_logs
from watchdog.actions.docker_spec import health, is_replica, name, service_of, state_words
from watchdog.model import Step
from watchdog.scrub import scrub_text, scrub_value
from watchdog.store.records import EventRecord, IncidentRecord

LOG_LINES = 200
JOURNAL_SECONDS = 3600.0
PROJECT_LABEL = "com.docker.compose.project"
MEMINFO = Path("/proc/meminfo")


class EventSource(Protocol):
    """The journal, as far as the snapshot reads it."""

    def list_incidents(self, *, limit: int = ...) -> list[IncidentRecord]: ...

    def timeline(self, incident_id: int) -> list[EventRecord]: ...


class DockerForensics:
    """Writes the forensic snapshot of one Compose project under `root` (or a step's `dir`)."""

    def __init__(
        self,
        client_factory: Callable[[], Any] | None,
        project: str,
        *,
        root: Path,
        journal: EventSource | None = None,
        meminfo: Path = MEMINFO,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._factory = client_factory
        self.project = project
        self.root = root
        self._journal = journal
        self._meminfo = meminfo
        self._clock = clock

    def folder_for(self, step: Step) -> Path:
        """The step's `dir` (relative: under the journal's folder), or a stamped one; a
        folder that exists already (a second snapshot, a resumed step) is never reused."""
        given = step.param_map().get("dir")
        if given:
            base = Path(str(given))
            folder = base if base.is_absolute() else self.root / base
        else:
            stamp = datetime.fromtimestamp(self._clock(), UTC).strftime("%Y%m%dT%H%M%SZ")
            folder = self.root / "forensics" / f"{self.project}-{stamp}"
        first, again = folder, 1
        while folder.exists():
            again += 1
            folder = first.with_name(f"{first.name}-{again}")
        return folder

    async def snapshot(self, step: Step) -> ActionOutcome:
        """Keep the snapshot. With `best_effort` (the daemon's own P0 plan), a snapshot that
        cannot be written (a full disk is one of scenario 5's causes) is said and the plan
        goes on: evidence must never keep the stack down."""
        folder = self.folder_for(step)
        params = step.param_map()
        lines = int(params.get("lines", LOG_LINES))
        try:
            (folder / "logs").mkdir(parents=True, exist_ok=False)
            return await self._keep(folder, lines)
        except OSError as error:
            said = f"cannot write the snapshot folder {folder}: {error}"
            if str(params.get("best_effort", "")).lower() not in ("true", "1"):
                raise ActionFailed(said) from error
            return ActionOutcome(
                True, f"{said} (best effort: the plan goes on without it)",
                {"folder": str(folder), "error": str(error)},
            )

    async def _keep(self, folder: Path, lines: int) -> ActionOutcome:
        index: dict[str, str] = {}
        ps: list[dict[str, Any]] = []
        volumes: list[dict[str, Any]] = []
        docker_root = ""
        if self._factory is None:  # the sandbox: no engine to read, the rest is kept
            index["ps.json"] = "not kept: no Docker engine in this deployment"
        else:
            ps, volumes, docker_root = await self._engine_part(folder, lines, index)
        disks = _disks({"state": str(self.root), "docker_root": docker_root})
        _write_json(folder / "df.json", disks)
        index["df.json"] = "disk use of the state folder's and the Docker root's filesystems"
        index["meminfo.txt"] = self._memory(folder / "meminfo.txt")
        events = self._events()
        (folder / "journal.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
        index["journal.jsonl"] = f"{len(events)} journal event(s) of the last hour"
        readme = [f"Forensic snapshot of Compose project {self.project}", ""]
        readme += [f"{file:<14} {what}" for file, what in index.items()]
        (folder / "README.txt").write_text("\n".join(readme) + "\n")
        down = [r for r in ps if r["state"] != "running"]
        output = (
            f"snapshot in {folder}: {len(ps)} container(s) ({len(down)} not running), "
            f"{len(volumes)} volume(s), {len(events)} journal event(s)"
        )
        return ActionOutcome(True, output, {"folder": str(folder), "files": index})

    async def _engine_part(
        self, folder: Path, lines: int, index: dict[str, str]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
        """ps, each container's logs and the volumes, from the engine."""
        assert self._factory is not None
        async with connect(self._factory, self.project) as engine:
            containers = await engine.project_containers()
            ps = [_ps_row(c.attrs) for c in containers]
            _write_json(folder / "ps.json", ps)
            index["ps.json"] = f"{len(ps)} container(s) of Compose project {self.project}"
            for container in containers:
                kept = await tail_logs(engine, container, lines)
                (folder / "logs" / f"{name(container.attrs)}.log").write_text(
                    "\n".join(kept) + ("\n" if kept else "")
                )
            index["logs/"] = f"each container's last {lines} log lines, secrets scrubbed"
            volumes = await _volumes(engine, containers)
            _write_json(folder / "volumes.json", volumes)
            index["volumes.json"] = f"{len(volumes)} volume(s): names and mountpoints only"
            docker_root = await _docker_root(engine)
        return ps, volumes, docker_root

    def _memory(self, target: Path) -> str:
        try:
            text = self._meminfo.read_text()
        except OSError as error:
            target.write_text(f"unreadable: {error}\n")
            return f"memory unreadable: {error}"
        target.write_text(text)
        return f"the host's {self._meminfo} as it was"

    def _events(self) -> list[dict[str, Any]]:
        if self._journal is None:
            return []
        since = self._clock() - JOURNAL_SECONDS
        found: list[dict[str, Any]] = []
        for record in self._journal.list_incidents(limit=200):
            if record.closed_at is not None and record.closed_at < since:
                continue
            for event in self._journal.timeline(record.id):
                if event.at >= since:
                    found.append(
                        {
                            "at": event.at,
                            "incident": record.id,
                            "kind": event.kind,
                            "summary": scrub_text(event.summary),
                            "data": scrub_value(event.data),
                        }
                    )
        return sorted(found, key=lambda e: float(e["at"]))


def _ps_row(attrs: dict[str, Any]) -> dict[str, Any]:
    state = attrs.get("State") or {}
    config = attrs.get("Config") or {}
    return {
        "service": service_of(attrs),
        "name": name(attrs),
        "id": str(attrs.get("Id", ""))[:12],
        "replica": is_replica(attrs),
        "state": str(state.get("Status", "")),
        "health": health(attrs),
        "words": state_words(attrs),
        "image": str(config.get("Image", "")),
        "image_id": str(attrs.get("Image", "")),
        "created": str(attrs.get("Created", "")),
    }


async def _volumes(engine: Engine, containers: list[Any]) -> list[dict[str, str]]:
    """The project's labelled volumes and every volume its containers mount."""
    labelled = await engine.call(
        f"list volumes of Compose project {engine.project!r}",
        lambda: engine.client.volumes.list(filters={"label": f"{PROJECT_LABEL}={engine.project}"}),
    )
    found = {v.name: str(v.attrs.get("Mountpoint", "")) for v in labelled}
    for container in containers:
        for mount in container.attrs.get("Mounts") or []:
            if mount.get("Type") == "volume" and mount.get("Name"):
                found.setdefault(str(mount["Name"]), str(mount.get("Source", "")))
    users = {
        volume: sorted(
            name(c.attrs)
            for c in containers
            for m in c.attrs.get("Mounts") or []
            if m.get("Name") == volume
        )
        for volume in found
    }
    return [
        {"name": v, "mountpoint": found[v], "used_by": ", ".join(users[v])} for v in sorted(found)
    ]


async def _docker_root(engine: Engine) -> str:
    try:
        info = await engine.call("read the engine's info", engine.client.info)
    except ActionFailed:
        return ""
    return str(info.get("DockerRootDir", ""))


def _disks(paths: dict[str, str]) -> dict[str, Any]:
    """`df` of each path that is readable from here; why not for the others."""
    disks: dict[str, Any] = {}
    for label, path in paths.items():
        if not path:
            disks[label] = {"error": "not known"}
            continue
        try:
            usage = shutil.disk_usage(path)
        except OSError as error:
            disks[label] = {"path": path, "error": f"not readable here: {error.strerror}"}
            continue
        usable = usage.used + usage.free
        disks[label] = {
            "path": path,
            "total_bytes": usage.total,
            "used_bytes": usage.used,
            "free_bytes": usage.free,
            "used_ratio": round(usage.used / usable, 4) if usable else 0.0,
        }
    return disks


def _write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")
