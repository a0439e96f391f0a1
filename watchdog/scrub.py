"""No secret out: the one scrubber every output of the process goes through.

The daemon holds pager keys, tokens, database and broker passwords and the
Sentry DSN. Each output path (log lines, CLI errors, Sentry events) used to
guard itself or not at all; here is the single function they all call.

A secret is known in two ways. By value: `register_startup_secrets`, called
once as the process starts (the CLI's `main`, and `serve` for a daemon built
in-process), registers every value the settings, the Alertmanager receiver's
settings, the policy and the WATCHDOG_* environment hold under a secret-like
name; whatever is registered is replaced wherever it appears. By shape:
credentials inside any `scheme://user:password@` URL, bearer / GenieKey /
basic headers and Slack webhook paths are replaced even when nobody registered
them (a URL typed on the command line, a password in an error message).

This module imports no adapter: the journal, the notifiers, the log pipeline
and the commands may all use it.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, SecretStr

FILTERED = "[Filtered]"
SENSITIVE_KEY = re.compile(
    r"(?i)(passw|pwd|secret|token|api_?key|routing_?key|genie|dsn|authori[sz]ation|"
    r"cookie|credential|webhook|session|private|signature)"
)
SECRET_PATTERNS = (
    # the password in any URL: postgresql://user:pass@host keeps its user, loses its password
    (
        re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s@:'\"]*):[^/\s@'\"]*@"),
        rf"\1:{FILTERED}@",
    ),
    (re.compile(r"(?i)\b(bearer|geniekey|basic)\s+[^\s'\",]+"), rf"\1 {FILTERED}"),
    (re.compile(r"(?i)hooks\.slack\.com/[^\s'\"]*"), f"hooks.slack.com/{FILTERED}"),
    (re.compile(r"(?i)(sentry_key=)[^,\s'\"]+"), rf"\1{FILTERED}"),
)
#: A field of the settings or the policy whose string value is a secret (its name says so).
SECRET_FIELD = re.compile(r"(?i)(passw|pwd|secret|token|api_?key|routing_?key|dsn|credential)")
#: Environment variables read as settings or interpolated into the policy.
ENVIRONMENT_PREFIXES = ("WATCHDOG_", "SENTRY_", "PG")
#: Shorter values are not registered: replacing "a" or "x1" everywhere would garble every line.
MIN_SECRET_LENGTH = 4


class Scrubber:
    """Replaces the given secret values and every secret-shaped text, in any nested value."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = sorted(
            {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True
        )

    def text(self, value: str) -> str:
        for secret in self.secrets:
            value = value.replace(secret, FILTERED)
        for pattern, replacement in SECRET_PATTERNS:
            value = pattern.sub(replacement, value)
        return value

    def scrub(self, value: Any) -> Any:
        """Strings scrubbed, mappings and sequences walked; under a secret-like key, a leaf
        value is replaced whole (a routing key in a variable named `routing_key`)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, bytes):
            return self.text(value.decode("utf-8", "replace"))
        if isinstance(value, Mapping):
            return {
                key: FILTERED
                if isinstance(key, str) and SENSITIVE_KEY.search(key) and _is_leaf(item)
                else self.scrub(item)
                for key, item in value.items()
            }
        if isinstance(value, list | tuple | set | frozenset):
            return [self.scrub(item) for item in value]
        if isinstance(value, SecretStr | BaseException):
            return self.text(str(value))
        return value

    def before_send(self, event: Any, hint: Any) -> Any:
        """sentry-sdk's `before_send`: the whole event, scrubbed."""
        scrubbed: Any = self.scrub(event)
        return scrubbed


def _is_leaf(value: Any) -> bool:
    return not isinstance(value, Mapping | list | tuple) or not value


# The process's registry ---------------------------------------------------------

class _Registry:
    """The secrets registered in this process, and the scrubber built from them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values: set[str] = set()
        self.scrubber = Scrubber()

    def add(self, found: set[str]) -> None:
        with self.lock:
            if found <= self.values:
                return
            self.values.update(found)
            self.scrubber = Scrubber(self.values)

    def clear(self) -> None:
        with self.lock:
            self.values.clear()
            self.scrubber = Scrubber()


_REGISTRY = _Registry()


def register_secrets(values: Iterable[str | SecretStr | None]) -> None:
    """Add secret values to the process's scrubber (empty and very short ones are ignored)."""
    _REGISTRY.add({_reveal(v) for v in values} - {""})


def registered_secrets() -> list[str]:
    return list(_REGISTRY.scrubber.secrets)


def process_scrubber() -> Scrubber:
    """The scrubber of every secret registered so far (and of every secret shape)."""
    return _REGISTRY.scrubber


def scrub_text(text: str) -> str:
    """`text` with every registered secret and every credential-shaped string replaced."""
    return _REGISTRY.scrubber.text(text)


def scrub_value(value: Any) -> Any:
    """Any value (str, mapping, sequence, nested) with every secret replaced."""
    return _REGISTRY.scrubber.scrub(value)


def scrub_log_event(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: the event and every value, nested, scrubbed."""
    scrubbed: dict[str, Any] = _REGISTRY.scrubber.scrub(dict(event_dict))
    return scrubbed


def forget_secrets() -> None:
    """Empty the registry (tests start each process-like run afresh)."""
    _REGISTRY.clear()


# What counts as a secret ----------------------------------------------------------


def secrets_in(model: Any) -> list[str]:
    """Every secret a settings object or a policy holds: SecretStr values, strings under a
    secret-like field name, and the password of every URL in it, walked recursively."""
    found: list[str] = []
    _walk(model, "", found)
    return found


def _walk(value: Any, name: str, found: list[str]) -> None:
    if isinstance(value, SecretStr | str):
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(value, SecretStr) or (name and SECRET_FIELD.search(name)):
            found.append(text)
            found += _dsn_key(text)
        found += url_secrets(text)
    elif isinstance(value, BaseModel):
        for field in type(value).model_fields:
            _walk(getattr(value, field, None), field, found)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _walk(item, str(key) if isinstance(key, str) else name, found)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _walk(item, name, found)


def url_secrets(text: str) -> list[str]:
    """The password of a `scheme://user:password@host` URL; else nothing. (Not the URL
    whole: an error naming the URL stays useful, `postgresql://wd:[Filtered]@db/wd`.)"""
    if "://" not in text or "@" not in text:
        return []
    try:
        password = urlsplit(text.strip()).password
    except ValueError:
        return []
    return [password] if password else []


def _dsn_key(text: str) -> list[str]:
    """A Sentry DSN's public key is its URL's user name, with no password."""
    if "://" not in text or "@" not in text:
        return []
    try:
        user = urlsplit(text.strip()).username
    except ValueError:
        return []
    return [user] if user else []


def environment_secrets(environ: Mapping[str, str]) -> list[str]:
    """Values of WATCHDOG_* / SENTRY_* / PG* variables named like a secret, and URL passwords
    in any of them (a policy's `${WATCHDOG_RABBITMQ_PASSWORD}` is caught here too)."""
    found: list[str] = []
    for key, value in environ.items():
        if not key.startswith(ENVIRONMENT_PREFIXES):
            continue
        if SECRET_FIELD.search(key) or key.endswith("_KEY"):
            found += [value, *_dsn_key(value)]
        found += url_secrets(value)
    return found


def register_startup_secrets(
    *sources: Any, environ: Mapping[str, str] | None = None
) -> None:
    """THE place secrets are registered: every settings object or policy in `sources`, and
    the environment. Called by the CLI's `main` and the daemon's `serve`."""
    register_secrets(environment_secrets(os.environ if environ is None else environ))
    for source in sources:
        if source is not None:
            register_secrets(secrets_in(source))


def _reveal(value: str | SecretStr | None) -> str:
    if value is None:
        return ""
    text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
    return text if len(text) >= MIN_SECRET_LENGTH else ""


# stdlib logging (uvicorn, libraries) ----------------------------------------------


def scrub_stdlib_logging() -> None:
    """Every stdlib log record is scrubbed as it is made: its message and its traceback
    (pre-formatted here, so a handler's Formatter prints the scrubbed text)."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "scrubbing", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg, record.args = scrub_text(message), None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = scrub_text(logging.Formatter().formatException(record.exc_info))
        return record

    factory.scrubbing = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
