"""Hand-written Prometheus text exposition for the stubs.

prometheus_client would cost import time in every stub process and a global registry
per process; the stubs need only labelled counters and gauges, rendered the way
prometheus_client renders them (`# HELP`, `# TYPE`, float values).
"""

from __future__ import annotations

import threading


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Family:
    """One metric family (a name, a type, fixed label names) with thread-safe samples."""

    def __init__(self, name: str, help_text: str, kind: str, labels: tuple[str, ...]) -> None:
        if kind not in ("counter", "gauge"):
            raise ValueError(f"unsupported metric type {kind!r}")
        self.name = name
        self.help_text = help_text
        self.kind = kind
        self.labels = labels
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def _key(self, labels: dict[str, str]) -> tuple[str, ...]:
        if set(labels) != set(self.labels):
            raise ValueError(f"{self.name} takes labels {self.labels}, got {sorted(labels)}")
        return tuple(labels[name] for name in self.labels)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        """Add to the sample with these labels (created at 0 on first use)."""
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def set(self, value: float, **labels: str) -> None:
        """Set a gauge sample."""
        key = self._key(labels)
        with self._lock:
            self._values[key] = value

    def touch(self, **labels: str) -> None:
        """Make the sample exist (at 0) so it is exported before its first increment."""
        self.inc(0.0, **labels)

    def get(self, **labels: str) -> float:
        """Current value of one sample, 0 if never touched."""
        key = self._key(labels)
        with self._lock:
            return self._values.get(key, 0.0)

    def render(self) -> str:
        """This family in text exposition format."""
        lines = [f"# HELP {self.name} {self.help_text}", f"# TYPE {self.name} {self.kind}"]
        with self._lock:
            samples = sorted(self._values.items())
        for key, value in samples:
            if self.labels:
                pairs = ",".join(f'{n}="{_escape(v)}"'
                                 for n, v in zip(self.labels, key, strict=True))
                lines.append(f"{self.name}{{{pairs}}} {float(value)!r}")
            else:
                lines.append(f"{self.name} {float(value)!r}")
        return "\n".join(lines) + "\n"


def render_all(*families: Family) -> str:
    """Concatenate families into one /metrics body."""
    return "".join(family.render() for family in families)
