"""The verdicts on keys and on retries (watchdog.keys), the bounded session store, and the
bounded pool the people file's scrypt runs in."""

from __future__ import annotations

import secrets
import threading
from pathlib import Path

import pytest

import watchdog.people as people_module
from watchdog.api.sessions import SESSION_SECONDS, Sessions
from watchdog.keys import MIN_BITS, assess_attempts, assess_token, entropy_bits, new_key, weak_keys
from watchdog.people import Busy, People, add_person, new_token


@pytest.mark.parametrize(
    "token",
    ["CHANGE-ME", "changeme", "Secret", "PASSWORD", "token", "example", "xxxxxxxxxxxxxxxxxx",
     "my-change_me-Qk3vT9xLpZ2mW7rB5nYc8dHf1sJ6gA4eU0oIuKtRwXqV", "X" * 200, "ab" * 100,
     "am-token-0123456789abcdef", "S3cretPW", "9f1c2b7e4a6d8c0b3e5f7a9d1c2b4e6f"],
)
def test_placeholders_patterns_and_short_tokens_are_not_keys(token: str) -> None:
    verdict = assess_token(token)
    assert not verdict.strong
    assert token not in verdict.reason, "the reason never quotes the value"


def test_a_token_urlsafe_32_is_a_key_and_the_estimate_is_classes_times_length() -> None:
    for _ in range(200):
        assert assess_token(new_key()).strong
    assert entropy_bits("abc") == pytest.approx(3 * 4.700439718)  # 26 letters
    assert entropy_bits("aB1-") == pytest.approx(4 * 6.554588852)  # 26+26+10+32
    assert entropy_bits("") == 0.0
    assert assess_token(secrets.token_hex(32)).bits >= MIN_BITS  # 64 hex characters


def test_new_key_draws_again_when_a_draw_is_weak() -> None:
    strong = secrets.token_urlsafe(32)
    assert new_key(iter(["token" + strong, "CHANGE-ME", strong])) == strong
    with pytest.raises(ValueError, match="no strong key"):
        new_key(iter(["CHANGE-ME"]))


def test_weak_keys_names_settings_never_values_and_empty_is_off() -> None:
    problems = weak_keys(
        {"WATCHDOG_ALERTMANAGER_TOKEN": "CHANGE-ME", "WATCHDOG_READ_TOKEN": "",
         "WATCHDOG_ALERTMANAGER_PASSWORD": None, "OTHER": new_key()}
    )
    assert len(problems) == 1
    assert problems[0].startswith("WATCHDOG_ALERTMANAGER_TOKEN is not a usable key")
    assert "CHANGE-ME" not in problems[0] and "watchdog token new" in problems[0]


def test_five_failures_a_minute_and_the_client_waits_for_the_oldest_to_age_out() -> None:
    assert assess_attempts([], 100.0, limit=5, window=60).allowed
    four = [90.0, 91, 92, 93]
    assert assess_attempts(four, 100.0, limit=5, window=60).allowed
    refused = assess_attempts([*four, 94], 100.0, limit=5, window=60)
    assert not refused.allowed and refused.retry_after == 50 and "limit 5" in refused.reason
    assert assess_attempts([*four, 94], 150.0, limit=5, window=60).allowed  # 90 is out


def test_the_revoked_sessions_are_bounded_and_none_comes_back() -> None:
    now = [1000.0]
    sessions = Sessions(b"k" * 32, lambda: now[0], revoked_max=3)
    signed = []
    for n in range(5):
        now[0] += 1
        session = sessions.new(f"p{n}")
        signed.append((session, sessions.cookie(session)))
        sessions.revoke(session)
    assert sessions.revoked() == 3
    assert all(sessions.read(cookie) is None for _, cookie in signed), "evicted stays out"
    fresh = sessions.new("p9")
    assert sessions.read(sessions.cookie(fresh)) == fresh, "later sessions still work"
    anonymous = sessions.new()
    sessions.revoke(anonymous)  # carries no rights: not remembered
    assert sessions.revoked() == 3
    now[0] += SESSION_SECONDS + 10
    sessions.revoke(sessions.new("late"))
    assert sessions.revoked() == 1, "entries leave once their sessions would have expired"


def test_the_scrypt_pool_refuses_past_its_waiting_room(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "people.yaml"
    token = new_token()
    add_person(path, "lee", ["lead"], token)
    people = People(path, workers=1, waiting=1)
    release = threading.Event()
    entered = threading.Semaphore(0)
    real = people_module.token_matches

    def held(given: str, stored: str) -> bool:
        entered.release()
        release.wait(10)
        return real(given, stored)

    monkeypatch.setattr(people_module, "token_matches", held)
    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(people.bearer(token))) for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    assert entered.acquire(timeout=10)  # one is hashing, the other waits for the slot
    for _ in range(1000):  # until the second is admitted (its wait is not observable otherwise)
        if people._admitted._value == 0:  # type: ignore[attr-defined]
            break
        threading.Event().wait(0.01)
    with pytest.raises(Busy):
        people.sign_in("lee", token)  # a third: refused at once, no thread held
    release.set()
    for thread in threads:
        thread.join(10)
    assert [getattr(r, "name", None) for r in results] == ["lee", "lee"]
