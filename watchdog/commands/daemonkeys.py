"""The daemon's secrets at start-up: registered with the scrubber, and weak keys refused.

Before anything listens or logs, every secret the daemon holds is known to the one
scrubber (watchdog/scrub.py), and a guessable key is a configuration error naming its
setting: both run first in `serve`, and the CLI refuses weak keys before it starts.
"""

from __future__ import annotations

from pydantic import ValidationError

from watchdog.api.alertmanager import ReceiverSettings
from watchdog.keys import weak_keys
from watchdog.policy.schema import Policy
from watchdog.scrub import register_startup_secrets
from watchdog.settings import Settings


def register_daemon_secrets(settings: Settings, policy: Policy) -> None:
    """Everything the daemon holds that must never be printed, logged or reported: the
    settings', the Alertmanager receiver's, the policy's (broker and Redis passwords) and
    the environment's secrets, registered with the one scrubber (watchdog/scrub.py)."""
    try:
        receiver: ReceiverSettings | None = ReceiverSettings()
    except ValidationError:
        receiver = None  # the API refuses the bad setting itself; the environment scan has it
    register_startup_secrets(settings, receiver, policy)


def configured_keys(settings: Settings) -> dict[str, str | None]:
    """Every secret the daemon accepts as a key, by setting name (for `keys.weak_keys`)."""
    read = settings.read_token.get_secret_value() if settings.read_token is not None else None
    return {**ReceiverSettings().keys(), "WATCHDOG_READ_TOKEN": read}


def refuse_weak_keys(settings: Settings) -> None:
    """Before anything starts: a guessable key is a configuration error naming its setting."""
    problems = weak_keys(configured_keys(settings))
    if problems:
        raise ValueError("; ".join(problems))
