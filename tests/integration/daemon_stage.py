"""A sandbox and a daemon process, with the helpers the daemon tests share."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from watchdog.demo import POLICY, DaemonProcess, has_last_good, quiet, wait_for
from watchdog.sandbox.stack import SandboxStack
from watchdog.store.journal import Journal, open_journal


class DaemonView:
    """A running daemon seen from outside: its API and its journal."""

    def __init__(self, folder: Path, daemon: DaemonProcess, state: str | None = None) -> None:
        self.folder = folder
        self.daemon = daemon
        self.state = state or str(folder / "journal.db")  # the journal's path or URL

    @property
    def url(self) -> str:
        return self.daemon.url

    def journal(self) -> Journal:
        return open_journal(self.state)

    def incidents(self) -> list[dict[str, Any]]:
        return self.daemon.incidents()

    def follow(
        self,
        known: set[int],
        states: tuple[str, ...],
        seconds: float = 45,
        *,
        scenario: str | None = None,
    ) -> dict[str, Any]:
        """The first incident opened after `known` (of `scenario`), once it reaches `states`."""
        found: dict[str, Any] = {}

        def reached() -> bool:
            new = [
                i
                for i in self.incidents()
                if i["id"] not in known and scenario in (None, i["scenario"])
            ]
            if new:
                found.clear()
                found.update(min(new, key=lambda i: i["id"]))
            return bool(found) and found["state"] in states

        wait_for(reached, seconds, f"an incident in {states}")
        return found


class Stage(DaemonView):
    def __init__(
        self, folder: Path, stack: SandboxStack, daemon: DaemonProcess, state: str | None = None
    ) -> None:
        super().__init__(folder, daemon, state)
        self.stack = stack

    def wait_for_baseline(self) -> None:
        wait_for(self._has_last_good, 30, "a last known good configuration")

    def _has_last_good(self) -> bool:
        if self.state == str(self.folder / "journal.db"):
            return has_last_good(self.folder)
        journal = self.journal()
        try:
            return journal.latest_snapshot("metadata_enrichment_config") is not None
        finally:
            journal.close()

    def inject(self, kind: str, **body: Any) -> set[int]:
        """Inject a fault once nothing is open; the incident ids known before it."""
        wait_for(lambda: quiet(self.url, self.daemon.read_token), 30, "no open incident")
        known = {i["id"] for i in self.incidents()}
        self.stack.inject(kind, **body)
        return known

    def inject_and_follow(self, kind: str, seconds: float = 45, **body: Any) -> dict[str, Any]:
        known = self.inject(kind, **body)
        return self.follow(known, ("resolved", "closed", "escalated"), seconds)

    def metric(self, name: str, **labels: str) -> float:
        for line in httpx.get(self.url + "/metrics", timeout=5).text.splitlines():
            if line.startswith(name + ("{" if labels else " ")):
                label_part = line[len(name) :].split(" ")[0]
                if all(f'{k}="{v}"' in label_part for k, v in labels.items()):
                    return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"no sample {name} {labels} in /metrics")


@contextmanager
def staged_daemon(
    folder: Path, policy: Path = POLICY, *, state: str | None = None, **options: Any
) -> Iterator[Stage]:
    """A sandbox and `watchdog run` on `policy` (`options` as DaemonProcess takes them),
    started, with a last known good baseline; stopped on exit. `state` is the journal's
    path or URL (default: journal.db in `folder`)."""
    if state is not None:
        options["environment"] = {**options.get("environment", {}), "WATCHDOG_STATE": state}
    with SandboxStack(folder / "sandbox") as stack:
        daemon = DaemonProcess(stack, folder, policy=policy, **options).start()
        try:
            stage = Stage(folder, stack, daemon, state)
            stage.wait_for_baseline()
            yield stage
        finally:
            daemon.stop()


def songnodes_variant(folder: Path, change: Any) -> Path:
    """songnodes.yaml with `change(data)` applied, written beside the test's journal."""
    data = yaml.safe_load(POLICY.read_text())
    change(data)
    path = folder / "policy.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
