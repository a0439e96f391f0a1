"""Which services run something other than their last known good version, since when.

Runbook scenario 1 is "a new service fails": to tell a bad deploy from a plain
crash, the daemon must know that the failing service changed just before. The
engine knows what runs (each container's image, command, environment, Compose
config hash and creation time: the `create` of its event stream, kept in the
inspect data so a restarted daemon still knows it); the journal knows what last
worked (`docker:last_good:<service>`, recorded while the service was healthy).
A `changed` Docker signal compares the two, one series per service: its value is
the seconds since the newest replica that differs was created, with the words of
what differs; no value while every replica matches (or nothing was recorded yet).
The pure core (`watchdog.policy.changes`) decides what that means for a failure.

The registry is read through `last_good` (a callable the daemon builds on the
journal): probes import no store. It is called on the event loop, never in the
SDK's worker thread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from watchdog.model import Observation
from watchdog.policy.changes import CHANGED
from watchdog.policy.schema import DockerSignal
from watchdog.probes.docker import (
    ONEOFF_LABEL,
    SERVICE_LABEL,
    ClientFactory,
    DockerProbe,
    _Answer,
    summarize,
)
from watchdog.probes.stamp import Stamp, clip

#: The rows of a service's last known good record (None when none was recorded).
LastGoodRows = Callable[[str], Sequence[Mapping[str, Any]] | None]
#: A revert parks the previous container under this mark (actions.docker_spec.PREV_MARK):
#: it is on its way out, not what the service runs.
PARKED = "-watchdog-prev-"
#: Compose's hash of a service's configuration: it moves with any edit of the service.
CONFIG_HASH = "com.docker.compose.config-hash"
SAME = "runs its last known good image and configuration"
UNRECORDED = "no last known good record yet"


def created_at(text: str) -> float | None:
    """The engine's RFC 3339 time with nanoseconds ("2026-12-05T00:36:42.123456789Z")."""
    head, dot, fraction = text.rstrip("Z").partition(".")
    try:
        stamp = datetime.fromisoformat(head + "+00:00").timestamp()
    except ValueError:
        return None
    digits = "".join(ch for ch in fraction if ch.isdigit())[:9] if dot else ""
    return stamp + (int(digits) / 10 ** len(digits) if digits else 0.0)


def _config(attrs: Mapping[str, Any]) -> Mapping[str, Any]:
    return attrs.get("Config") or {}


def _differences(attrs: Mapping[str, Any], row: Mapping[str, Any]) -> str:
    """"image changed: <now>, last good <then>", "configuration changed: ...", or ""."""
    config = _config(attrs)
    image, good = str(config.get("Image", "")), str(row.get("image", ""))
    image_id, good_id = str(attrs.get("Image", "")), str(row.get("image_id", ""))
    if image_id != good_id:
        if image == good:  # the same tag, rebuilt: only the ids tell them apart
            image, good = f"{image} ({image_id[7:19]})", f"{good} ({good_id[7:19]})"
        return f"image{CHANGED}{image}, last good {good}"
    changed = []
    labels = config.get("Labels") or {}
    good_labels = row.get("labels") or {}
    if labels.get(CONFIG_HASH, "") != good_labels.get(CONFIG_HASH, ""):
        changed.append("Compose config hash")
    if sorted(config.get("Env") or []) != sorted(row.get("env") or []):
        changed.append("environment")
    if config.get("Cmd") != row.get("command"):
        changed.append("command")
    if config.get("Entrypoint") != row.get("entrypoint"):
        changed.append("entrypoint")
    if not changed:
        return ""
    return f"configuration{CHANGED}{', '.join(changed)} differ from the last good record"


def change_of(
    containers: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]]
) -> tuple[float, str] | None:
    """(created at, what differs) of the newest replica unlike its last good row, or None.

    A replica is matched to its row by name, else by its Compose number; a replica
    the record does not know (scaled up since) is not a change of version.
    """
    by_name = {str(r.get("name", "")): r for r in rows}
    by_number = {str(r.get("number", "")): r for r in rows}
    found: list[tuple[float, str]] = []
    for attrs in containers:
        name = str(attrs.get("Name", "")).lstrip("/")
        number = (_config(attrs).get("Labels") or {}).get("com.docker.compose.container-number")
        row = by_name.get(name) or by_number.get(str(number))
        if row is None:
            continue
        words = _differences(attrs, row)
        when = created_at(str(attrs.get("Created", "")))
        if words and when is not None:
            found.append((when, words))
    return max(found) if found else None


class ChangeProbe(DockerProbe):
    """A `changed` Docker signal: the engine's containers against the last good registry."""

    def __init__(
        self, signal: DockerSignal, client_factory: ClientFactory, last_good: LastGoodRows | None
    ) -> None:
        super().__init__(signal, client_factory)
        self._last_good = last_good

    def _readings(self, stamp: Stamp, answer: _Answer) -> list[Observation]:
        if answer.known_projects is not None:  # a wrong project: the base says it loudly
            return super()._readings(stamp, answer)
        summaries = summarize(answer.containers)
        wanted = [s for s in self.signal.services or summaries if self._present(s, summaries)]
        self._seen_services = tuple(wanted)
        observations = []
        for service in wanted:
            mine = [
                c for c in answer.containers
                if (_config(c).get("Labels") or {}).get(SERVICE_LABEL) == service
                and str((_config(c).get("Labels") or {}).get(ONEOFF_LABEL, "False")).lower()
                != "true"
                and PARKED not in str(c.get("Name", ""))
            ]
            rows = self._last_good(service) if self._last_good is not None else None
            change = change_of(mine, rows) if rows else None
            value = None if change is None else max(0.0, stamp.at - change[0])
            detail = change[1] if change is not None else (SAME if rows else UNRECORDED)
            observations.append(
                Observation(
                    signal=self.signal.name,
                    at=stamp.at,
                    value=value,
                    series=service,
                    detail=clip(detail),
                    duration_seconds=stamp.duration_seconds,
                )
            )
        return observations
