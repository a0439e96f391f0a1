"""Properties of the counter arithmetic that probes and rules share.

A rate must never go negative because a service restarted, and without a
restart the increase is simply last minus first.
"""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from watchdog.policy.windows import counter_increase, counter_rate

readings = st.lists(
    st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False),
    min_size=0,
    max_size=50,
)


@given(readings)
def test_increase_is_never_negative_for_non_negative_readings(values: list[float]) -> None:
    assert counter_increase(values) >= 0


@given(readings)
def test_increase_without_resets_is_last_minus_first(values: list[float]) -> None:
    ordered = sorted(values)
    expected = ordered[-1] - ordered[0] if ordered else 0.0
    assert math.isclose(counter_increase(ordered), expected, rel_tol=1e-9, abs_tol=1e-3)


@given(readings, st.integers(min_value=0, max_value=50))
def test_increase_adds_up_over_consecutive_spans(values: list[float], cut: int) -> None:
    cut = min(cut, max(len(values) - 1, 0))
    whole = counter_increase(values)
    parts = counter_increase(values[: cut + 1]) + counter_increase(values[cut:])
    assert math.isclose(whole, parts, rel_tol=1e-9, abs_tol=1e-3)


@given(readings)
def test_a_reset_counts_the_new_reading_as_increase(values: list[float]) -> None:
    """At least as much growth as the climb from the first reading to the highest."""
    if values:
        assert counter_increase(values) >= max(values) - values[0] - 1e-3


def test_rate_is_increase_per_second_and_needs_two_points() -> None:
    assert counter_rate([(0.0, 5.0)]) is None
    assert counter_rate([(0.0, 100.0), (10.0, 130.0), (20.0, 10.0)]) == (30 + 10) / 20
