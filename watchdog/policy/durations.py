"""Durations as people write them in policy files ("30s", "5m", "1h", "250ms").

Kept apart from the schema so probes, settings and the CLI parse time the same way.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_EXPECTED = "a duration such as '500ms', '30s', '5m' or '1h'"
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")


def parse_duration(raw: object) -> float:
    """Seconds from a number or a string such as "90s"; the ValueError says what was expected."""
    if isinstance(raw, bool):
        raise ValueError(_EXPECTED)
    if isinstance(raw, int | float):
        seconds = float(raw)
    elif isinstance(raw, str):
        match = _PATTERN.match(raw)
        if match is None:
            raise ValueError(_EXPECTED)
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise ValueError(_EXPECTED)
    if seconds < 0:
        raise ValueError("a duration of zero or more")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest honest words for a duration: '45 s', '2.5 min', '1.2 h'."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 7200:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"


Duration = Annotated[float, BeforeValidator(parse_duration)]
