"""`watchdog demo` end to end, as `make demo` runs it: exit 0 only when all five recovered."""

from __future__ import annotations

import pytest

from watchdog.demo import FAULTS, run_demo

pytestmark = pytest.mark.slow


def test_demo_recovers_every_scenario_and_exits_zero() -> None:
    lines: list[str] = []
    assert run_demo(out=lines.append) == 0, "\n".join(lines)
    text = "\n".join(lines)
    for fault in FAULTS:
        assert f"=== {fault.title} ===" in text
    assert text.count("verifying → resolved") == len(FAULTS)
    assert "all scenarios recovered" in text
    summary = text[text.index("SCENARIO") :].splitlines()[1 : 1 + len(FAULTS)]
    assert all("resolved" in row for row in summary), summary
