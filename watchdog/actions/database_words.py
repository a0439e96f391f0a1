"""Words and files shared by the database actions: ages and sizes as a page says them,
timestamps in backup names, and the write-then-rename that never leaves half a file."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

from watchdog.actions.base import ActionFailed

_STAMP = re.compile(r"(\d{4})-?(\d{2})-?(\d{2})[-_T]?(\d{2}):?(\d{2}):?(\d{2})")


def age_words(seconds: float) -> str:
    """An age as people say it on a page: '45 s', '12 min', '7 h 12 min', '2 d 3 h'."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    days, hours = divmod(hours, 24)
    return f"{days} d" + (f" {hours} h" if hours else "")


def human_bytes(size: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover - the loop returns


def taken_at_from_name(name: str) -> float | None:
    match = _STAMP.search(name)
    if match is None:
        return None
    try:
        return time.mktime(time.strptime("".join(match.groups()), "%Y%m%d%H%M%S"))
    except (ValueError, OverflowError):
        return None


def local_time(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def ms(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def optional_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def error_text(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return " / ".join(line.strip() for line in text.splitlines() if line.strip())


def unique_path(path: Path) -> Path:
    """`path`, or `name-2.ext`... when two runs land in the same second."""
    if not path.exists():
        return path
    stem, dot, suffix = path.name.partition(".")
    for number in range(2, 1000):
        candidate = path.with_name(f"{stem}-{number}{dot}{suffix}")
        if not candidate.exists():
            return candidate
    raise ActionFailed(f"too many files named like {path}")


def fsync_and_rename(temporary: Path, path: Path) -> None:
    descriptor = os.open(temporary, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(temporary, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
