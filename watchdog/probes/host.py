"""The watchdog's own host: disk and memory use as ratios from 0 to 1.

A full disk stops postgres and the backups long before any service reports it,
so the host is read directly: `shutil.disk_usage` for a path (used over used +
available, as `df` reports it) and `/proc/meminfo` for memory (1 - MemAvailable /
MemTotal). Both are blocking calls, so they run in a worker thread. Failures
(no such path, no /proc) are value None with the reason in `error`.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from watchdog.model import Observation
from watchdog.policy.schema import HostSignal
from watchdog.probes.stamp import Stopwatch

MEMINFO = Path("/proc/meminfo")


def disk_used_ratio(path: str) -> tuple[float, str]:
    usage = shutil.disk_usage(path)
    usable = usage.used + usage.free
    ratio = usage.used / usable if usable else 0.0
    return ratio, f"{path}: {usage.used / 2**30:.1f} GiB used of {usable / 2**30:.1f} GiB"


def memory_used_ratio(meminfo: Path = MEMINFO) -> tuple[float, str]:
    """Raises OSError if the file cannot be read, ValueError if it lacks the fields."""
    fields: dict[str, int] = {}
    for line in meminfo.read_text().splitlines():
        name, _, rest = line.partition(":")
        words = rest.split()
        if words and words[0].isdigit():
            fields[name.strip()] = int(words[0])
    total, available = fields.get("MemTotal"), fields.get("MemAvailable")
    if not total or available is None:
        raise ValueError(f"{meminfo} has no MemTotal/MemAvailable")
    used = 1.0 - available / total
    return used, f"{available // 1024} MiB available of {total // 1024} MiB"


class HostProbe:
    """Reads one `HostSignal` on the machine the watchdog runs on."""

    def __init__(self, signal: HostSignal, *, meminfo: Path = MEMINFO) -> None:
        self.signal = signal
        self._meminfo = meminfo

    async def observe(self) -> list[Observation]:
        watch = Stopwatch(self.signal.name)
        metric = self.signal.metric
        try:
            if metric == "disk_used_ratio":
                value, detail = await asyncio.to_thread(disk_used_ratio, self.signal.path)
            else:
                value, detail = await asyncio.to_thread(memory_used_ratio, self._meminfo)
        except (OSError, ValueError) as exc:
            where = self.signal.path if metric == "disk_used_ratio" else str(self._meminfo)
            error = f"host {metric} of {where}: cannot read ({exc}) (expected a readable path)"
            return [watch.stop().failure(error)]
        return [watch.stop().reading(value, detail=detail)]
