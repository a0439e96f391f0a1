"""What an answer means for a delivery, and how long to wait before the next try: pure.

As Alertmanager's notifiers do, the integration decides what is worth a retry:
2xx is delivered; 429 waits as long as the vendor's Retry-After says, but never
longer than a cap (five minutes by default: a vendor asking for a day would hold
an on-call page for a day), and the reason says when it was capped; 408, 5xx
and network errors back off exponentially; any other 4xx (400 invalid event,
401/403 bad key, 404 no such hook, 422 semantic error) will fail the same way
again, so it is given up at once and surfaced.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Literal

Outcome = Literal["sent", "retry", "rejected"]
EXCERPT = 200
RETRY_AFTER_MAX = 300.0
"""The longest a vendor's Retry-After may hold a page, in seconds; the daemon's comes from
WATCHDOG_NOTIFY_RETRY_AFTER_MAX."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try: first wait, longest wait, per-attempt timeout, attempts before giving up.

    The values come from the settings (WATCHDOG_NOTIFY_*), which hold the defaults.
    """

    base_seconds: float
    cap_seconds: float
    timeout_seconds: float
    max_attempts: int
    retry_after_max_seconds: float = RETRY_AFTER_MAX  # a longer Retry-After waits this long


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    reason: str
    delay: float | None = None  # set for retries that the vendor timed (Retry-After)


def classify(
    status: int,
    body: str,
    *,
    retry_after: str | None,
    now: float,
    retry_after_max: float = RETRY_AFTER_MAX,
) -> Verdict:
    """The verdict on one HTTP answer from a vendor."""
    said = f"HTTP {status}" + (f": {excerpt(body)}" if body.strip() else "")
    if 200 <= status < 300:
        return Verdict("sent", f"HTTP {status}")  # the vendor's receipt adds nothing to read
    if status == 429:
        asked = retry_after_seconds(retry_after, now)
        if asked is not None and asked > retry_after_max:
            capped = f"{said}; Retry-After {asked:g} s capped at {retry_after_max:g} s"
            return Verdict("retry", capped, retry_after_max)
        return Verdict("retry", said, asked)
    if status == 408 or status >= 500:
        return Verdict("retry", said)
    return Verdict("rejected", f"{said} (not retried: the vendor refuses this page)")


def backoff(attempts: int, *, base: float, cap: float) -> float:
    """Seconds to wait after the `attempts`-th failed try: base, 2×base, 4×base … up to cap."""
    return float(min(cap, base * 2 ** max(0, attempts - 1)))


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Retry-After as seconds, from delta-seconds or an HTTP date; None if absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def excerpt(text: str) -> str:
    """The start of a vendor's answer on one line, enough to say what it refused."""
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT else flat[: EXCERPT - 1] + "…"


def redact(text: str, secrets: list[str]) -> str:
    """`text` with every secret replaced, longest first, so no error can carry one."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "[secret]")
    return text
