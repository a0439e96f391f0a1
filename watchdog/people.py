"""The people who may approve plans: names, roles and personal tokens, stored hashed.

The people file (`WATCHDOG_PEOPLE`) is YAML:

    people:
      - name: lee
        roles: [lead]
        token_hash: scrypt$16384$8$1$<salt, base64>$<hash, base64>

Only a salted scrypt hash of each token is ever written, so a leaked file gives
no one a token; `watchdog people add` prints a new token once and stores its
hash. Tokens are compared in constant time, and a name that does not exist costs
the same hashing as one that does, so timing tells nothing about who exists.

A token is `<salt>.<secret>`: its public first part is its hash's salt, so a
bearer token is checked against the one person whose salt it names, with one
scrypt; a made-up token names no one and costs no hashing at all (otherwise every
bad request would cost one scrypt per person, on the daemon's own CPU).
Every mistake in the file is a `PeopleError` naming the file, the entry and
what was expected.

Each check costs 16 MiB and ~50 ms of CPU, so the daemon runs at most
`HASH_WORKERS` at once and lets at most `HASH_WAITING` more wait; beyond that a
check is refused at once (`Busy`: the API answers 503 with Retry-After) rather
than queueing memory and threads without end.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
import yaml

log = structlog.get_logger("watchdog.people")

SCHEME = "scrypt"
# OWASP's minimum for scrypt: N=2^14 (16 MiB), r=8, p=1; about 50 ms a check here.
COST, BLOCK, PARALLEL = 2**14, 8, 1
SALT_BYTES, KEY_BYTES = 16, 32
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
NAME_FORM = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
_DUMMY_HASH_SALT = b"watchdog-no-such-person"
HASH_WORKERS, HASH_WAITING = 2, 8


class Busy(RuntimeError):
    """Too many token checks already running or waiting: refused, try again shortly."""


class PeopleError(ValueError):
    """A people file that cannot be used, or a person that cannot be added."""


@dataclass(frozen=True, slots=True)
class Person:
    name: str
    roles: tuple[str, ...]
    token_hash: str

    def has_role(self, role: str) -> bool:
        return role in self.roles

    @property
    def lookup(self) -> str:
        """The public part of this person's token: the salt of its hash."""
        return self.token_hash.split("$")[4]


def new_token() -> str:
    """A fresh personal token: a random salt (public, for lookup), a dot, 256 secret bits."""
    return f"{_b64(secrets.token_bytes(SALT_BYTES))}.{secrets.token_urlsafe(32)}"


def hash_token(token: str, *, salt: bytes | None = None) -> str:
    """The stored form of a token: scheme, cost parameters, salt and derived key.

    The salt is the token's own public part when it has one (see `new_token`).
    """
    if salt is None:
        salt = _salt_of(token) or secrets.token_bytes(SALT_BYTES)
    key = _derive(token, salt, COST, BLOCK, PARALLEL)
    return "$".join((SCHEME, str(COST), str(BLOCK), str(PARALLEL), _b64(salt), _b64(key)))


def token_matches(token: str, stored: str) -> bool:
    """Whether `token` hashes to `stored`, compared in constant time."""
    scheme, cost, block, parallel, salt, key = _parse_hash(stored)
    del scheme
    derived = _derive(token, salt, cost, block, parallel)
    return hmac.compare_digest(derived, key)


def _derive(token: str, salt: bytes, cost: int, block: int, parallel: int) -> bytes:
    return hashlib.scrypt(
        token.encode("utf-8", "surrogatepass"),
        salt=salt,
        n=cost,
        r=block,
        p=parallel,
        maxmem=256 * 1024 * 1024,
        dklen=KEY_BYTES,
    )


def _parse_hash(stored: str) -> tuple[str, int, int, int, bytes, bytes]:
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        raise ValueError("expected scrypt$N$r$p$salt$hash")
    try:
        cost, block, parallel = int(parts[1]), int(parts[2]), int(parts[3])
        salt, key = _unb64(parts[4]), _unb64(parts[5])
    except ValueError as error:
        raise ValueError("expected scrypt$N$r$p$salt$hash with integers and base64") from error
    if cost < 2 or cost & (cost - 1) or not (1 <= block <= 64 and 1 <= parallel <= 16):
        raise ValueError("expected N a power of two, 1 <= r <= 64 and 1 <= p <= 16")
    if len(salt) < 8 or len(key) < 16:
        raise ValueError("expected a salt of 8+ bytes and a hash of 16+ bytes")
    return SCHEME, cost, block, parallel, salt, key


def _salt_of(token: str) -> bytes | None:
    lookup, dot, secret = token.partition(".")
    if not (dot and lookup and secret):
        return None
    try:
        salt = _unb64(lookup)
    except ValueError:
        return None
    return salt if len(salt) == SALT_BYTES and _b64(salt) == lookup else None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# ---- the file ----------------------------------------------------------------


def parse_people(text: str, source: str, roles: Sequence[str] | None = None) -> list[Person]:
    """Validate a people file's text; `roles`, when given, are the only roles allowed."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise PeopleError(f"{source}: not well-formed YAML: {error}") from error
    if raw is None:
        return []
    if not isinstance(raw, dict) or set(raw) - {"people"}:
        raise PeopleError(f"{source}: expected a mapping with one key, people: [...]")
    entries = raw.get("people") or []
    if not isinstance(entries, list):
        raise PeopleError(f"{source}: people: expected a list of entries, found {_kind(entries)}")
    people: list[Person] = []
    for index, entry in enumerate(entries):
        person = _person(entry, f"{source}: people[{index}]", roles)
        if any(p.name == person.name for p in people):
            raise PeopleError(
                f"{source}: people[{index}]: name {person.name!r} appears twice; "
                "expected each person once"
            )
        people.append(person)
    return people


def _person(entry: Any, where: str, roles: Sequence[str] | None) -> Person:
    if not isinstance(entry, dict):
        raise PeopleError(f"{where}: expected a mapping with name, roles, token_hash")
    unknown = set(entry) - {"name", "roles", "token_hash"}
    if unknown:
        raise PeopleError(
            f"{where}: unknown key {sorted(unknown)[0]!r}; expected name, roles, token_hash"
        )
    name = entry.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise PeopleError(f"{where}: name {name!r}: expected {NAME_FORM}")
    where = f"{where} ({name})"
    found_roles = entry.get("roles")
    if (
        not isinstance(found_roles, list)
        or not found_roles
        or not all(isinstance(r, str) for r in found_roles)
    ):
        raise PeopleError(f"{where}: roles: expected a non-empty list of role names")
    for role in found_roles:
        if roles is not None and role not in roles:
            raise PeopleError(
                f"{where}: role {role!r} is not one of the policy's roles ({', '.join(roles)})"
            )
    stored = entry.get("token_hash")
    if not isinstance(stored, str):
        raise PeopleError(
            f"{where}: token_hash: expected the hash `watchdog people add` writes, "
            f"found {_kind(stored)}"
        )
    try:
        _parse_hash(stored)
    except ValueError as error:
        # The value is a hash, but say nothing of it: it may be a pasted plain token.
        raise PeopleError(f"{where}: token_hash: {error}") from None
    return Person(name, tuple(found_roles), stored)


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"a {type(value).__name__}"


def first_person_hint(path: Path | str) -> str:
    """What to do when no one can approve: the command that adds the first person."""
    return (
        f"no one can approve or sign in yet: the people file {path} holds nobody. Add the "
        f"first person with `watchdog people add NAME --role oncall --people {path}` (in the "
        "sidecar: `docker compose exec watchdog watchdog people add ...`); it prints their "
        "personal token once, and the daemon reads the file without a restart. Until then "
        "plans that need approval page and wait"
    )


def load_people(path: Path, roles: Sequence[str] | None = None) -> list[Person]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise PeopleError(
            f"{path}: cannot read the people file: {error.strerror or error}"
        ) from error
    return parse_people(text, str(path), roles)


def add_person(
    path: Path,
    name: str,
    roles: Iterable[str],
    token: str,
    allowed: Sequence[str] | None = None,
    *,
    rotate: bool = False,
) -> Person:
    """Add a person (or, with `rotate`, replace their roles and token) in the file; only the
    hash is written. Without `rotate` an existing name is refused: typing `people add alice`
    a second time must not silently void the token she is using.

    `allowed` are the policy's roles: a role outside them is refused here rather
    than when the daemon next reads the file.

    The file is written to a temporary file and renamed over the old one, so a
    crash never leaves a half-written file, and it is readable by its owner only.
    """
    wanted = tuple(dict.fromkeys(roles))
    if not NAME.match(name):
        raise PeopleError(f"name {name!r}: expected {NAME_FORM}")
    if not wanted:
        raise PeopleError(f"{name}: expected at least one --role")
    unknown = [role for role in wanted if allowed is not None and role not in allowed]
    if unknown:
        raise PeopleError(
            f"{name}: role {unknown[0]!r} is not one of the policy's roles "
            f"({', '.join(allowed or ())})"
        )
    people = load_people(path) if path.exists() else []
    if not rotate and any(p.name == name for p in people):
        raise PeopleError(
            f"{name} is already in {path}; add --rotate to replace their roles and token "
            "(the old token stops working)"
        )
    person = Person(name, wanted, hash_token(token))
    people = [p for p in people if p.name != name] + [person]
    body = {
        "people": [
            {"name": p.name, "roles": list(p.roles), "token_hash": p.token_hash} for p in people
        ]
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(
            "# watchdog people: names, roles and hashed personal tokens "
            "(written by `watchdog people add`)\n"
        )
        yaml.safe_dump(body, handle, sort_keys=False)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    return person


# ---- who is asking -------------------------------------------------------------


class People:
    """The people file as the daemon reads it: re-read when it changes, checked on use.

    A file that turns bad while the daemon runs is logged (naming the problem) and
    the last good version stays in force, so a typo never locks everyone out
    mid-incident nor lets anyone in.
    """

    def __init__(
        self,
        path: Path,
        roles: Sequence[str] | None = None,
        *,
        workers: int = HASH_WORKERS,
        waiting: int = HASH_WAITING,
    ) -> None:
        self.path = path
        self.roles = tuple(roles) if roles is not None else None
        self._lock = threading.Lock()
        self._hashing = threading.BoundedSemaphore(workers)
        self._capacity = workers + waiting
        self._admitted = threading.BoundedSemaphore(self._capacity)
        # A file not there yet is an empty crew, not an error: a sidecar's first start on a
        # fresh volume must run (and act within its automatic authority) rather than exit
        # and be restarted forever; the file is read as soon as someone adds a person.
        self._people = [] if not path.exists() else load_people(path, self.roles)
        self._stamp = self._file_stamp()

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_ino, stat.st_mtime_ns, stat.st_size

    def everyone(self) -> list[Person]:
        with self._lock:
            stamp = self._file_stamp()
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._people = load_people(self.path, self.roles)
                except PeopleError as error:
                    log.error("people_file_rejected", error=str(error), kept="last good version")
            return list(self._people)

    def hint(self) -> str | None:
        """How to add the first approver, while nobody is in the file; None once someone is."""
        if self.everyone():
            return None
        return first_person_hint(self.path)

    def named(self, name: str) -> Person | None:
        return next((p for p in self.everyone() if p.name == name), None)

    def holders(self) -> dict[str, list[str]]:
        """Role → the names of the persons holding it: who a role-owned follow-up means."""
        found: dict[str, list[str]] = {}
        for person in self.everyone():
            for role in person.roles:
                found.setdefault(role, []).append(person.name)
        return found

    def sign_in(self, name: str, token: str) -> Person | None:
        """The person if `token` is theirs; the same work whether or not `name` exists."""
        person = self.named(name)
        if person is None:
            self._matches(token, _DUMMY_HASH)
            return None
        return person if self._matches(token, person.token_hash) else None

    def bearer(self, token: str) -> Person | None:
        """The person whose personal token this is, or None; one scrypt at most."""
        lookup = token.partition(".")[0]
        for person in self.everyone():
            if person.lookup == lookup and self._matches(token, person.token_hash):
                return person
        return None

    def _matches(self, token: str, stored: str) -> bool:
        """`token_matches` in the bounded pool: raises `Busy` when it is full."""
        if not self._admitted.acquire(blocking=False):
            raise Busy(f"more than {self._capacity} token checks at once")
        try:
            with self._hashing:
                return token_matches(token, stored)
        finally:
            self._admitted.release()


_DUMMY_HASH = "$".join(
    (SCHEME, str(COST), str(BLOCK), str(PARALLEL), _b64(_DUMMY_HASH_SALT), _b64(bytes(KEY_BYTES)))
)
