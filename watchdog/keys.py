"""Whether a token is a key: pure verdicts on the shared secrets the daemon accepts.

A token anyone could guess is no key. The daemon accepts a few shared secrets
(Alertmanager's bearer token or basic-auth password, the read token); before it
starts, each one set is judged here, and a weak one is a configuration error
naming the setting, never the value. Empty means off, not weak: a receiver with
no token refuses everything (503) rather than accepting an empty one.

The strength is an estimate, as password meters make it: length × log2 of the
size of the character classes the token uses (26 lower, 26 upper, 10 digits, 32
ASCII punctuation, 100 for anything else). `secrets.token_urlsafe(32)`, what
`watchdog token new` prints, gives about 256-282 bits; the floor is 256 bits
(32 bytes). Known placeholders (CHANGE-ME, changeme, secret, password, token,
example, xxxx...) are refused whatever their length, as are tokens made of very
few distinct characters.
"""

from __future__ import annotations

import math
import secrets
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

MIN_BITS = 256  # 32 bytes of entropy
MIN_DISTINCT = 10  # fewer distinct characters than this is a pattern, whatever the length
PLACEHOLDERS = ("changeme", "secret", "password", "token", "example", "placeholder", "xxxx")
_CLASSES = (
    (frozenset(string.ascii_lowercase), 26),
    (frozenset(string.ascii_uppercase), 26),
    (frozenset(string.digits), 10),
    (frozenset(string.punctuation), 32),
)
_OTHER = 100  # spaces and anything outside ASCII


@dataclass(frozen=True, slots=True)
class TokenVerdict:
    strong: bool
    reason: str
    bits: float


def entropy_bits(token: str) -> float:
    """length × log2(size of the character classes used)."""
    if not token:
        return 0.0
    alphabet = 0
    rest = set(token)
    for members, size in _CLASSES:
        if rest & members:
            alphabet += size
            rest -= members
    if rest:
        alphabet += _OTHER
    return len(token) * math.log2(alphabet) if alphabet > 1 else 0.0


def assess_token(token: str) -> TokenVerdict:
    """The verdict on one token, with a reason that never quotes it."""
    bits = entropy_bits(token)
    folded = "".join(c for c in token.lower() if c.isalnum())
    placeholder = next((p for p in PLACEHOLDERS if p in folded), None)
    if placeholder is not None:
        # Which word is not said: the reason must tell nothing about the value.
        return TokenVerdict(
            False, "a known placeholder or one of its words (watchdog.keys.PLACEHOLDERS)", bits
        )
    distinct = len(set(token))
    if distinct < MIN_DISTINCT:
        return TokenVerdict(
            False, f"only {distinct} distinct characters (expected {MIN_DISTINCT} or more)", bits
        )
    if bits < MIN_BITS:
        return TokenVerdict(
            False,
            f"about {bits:.0f} bits of entropy ({len(token)} characters); expected "
            f"{MIN_BITS} or more (32 random bytes)",
            bits,
        )
    return TokenVerdict(True, f"about {bits:.0f} bits of entropy", bits)


def weak_keys(keys: Mapping[str, str | None]) -> list[str]:
    """`SETTING: why` for every set key that is not strong; unset or empty keys are off."""
    problems = []
    for setting, value in keys.items():
        if not value:
            continue
        verdict = assess_token(value)
        if not verdict.strong:
            problems.append(
                f"{setting} is not a usable key: {verdict.reason}; "
                "make one with `watchdog token new`"
            )
    return problems


def new_key(draws: Iterable[str] | None = None) -> str:
    """A fresh key (`secrets.token_urlsafe(32)`), drawn again in the rare case that the
    estimate above calls it weak (e.g. it happens to contain 'token')."""
    for candidate in draws if draws is not None else iter(lambda: secrets.token_urlsafe(32), ""):
        if assess_token(candidate).strong:
            return candidate
    raise ValueError("no strong key among the draws")


@dataclass(frozen=True, slots=True)
class ThrottleVerdict:
    allowed: bool
    reason: str
    retry_after: float = 0.0  # seconds, when refused


def assess_attempts(
    failures: Iterable[float], now: float, *, limit: int, window: float
) -> ThrottleVerdict:
    """Whether one client may try a credential again, from the times of its recent failures:
    `limit` failures within `window` seconds and it waits until the oldest leaves it."""
    recent = sorted(at for at in failures if now - at < window)
    if len(recent) < limit:
        return ThrottleVerdict(True, f"{len(recent)} failed attempts in the last {window:g} s")
    wait = max(1.0, math.ceil(recent[-limit] + window - now))
    return ThrottleVerdict(
        False,
        f"{len(recent)} failed attempts in the last {window:g} s (limit {limit}); "
        f"try again in {wait:g} s",
        wait,
    )
