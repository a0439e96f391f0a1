"""The stand the API fuzz runs against, and the keys it calls with (tests/api_fuzz.py).

The daemon's own app (`create_app` with the AlertIntake the daemon reads, a real
people file, the policy's roles and close roles) served by a real uvicorn on
127.0.0.1, over a real SQLite journal holding incidents in six states: awaiting
approval at P0, P1 and P2, executing, resolved, escalated.

The credentials live in one place, `keys()`: a new kind of key (a read token, a
second receiver's) is one more `Key` there.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests
from fastapi import FastAPI
from pydantic import SecretStr

from tests.integration.approvals_fixtures import awaiting, write_crew
from tests.served import served
from watchdog.api.alertmanager import ReceiverSettings
from watchdog.api.app import create_app
from watchdog.demo import POLICY
from watchdog.engine.alerts import AlertIntake
from watchdog.engine.health import Health
from watchdog.keys import new_key
from watchdog.metrics import Metrics
from watchdog.people import People
from watchdog.policyfile import load_policy
from watchdog.store.journal import Journal, open_journal

ALERTMANAGER_TOKEN = new_key()  # strong enough for the receiver (watchdog/keys.py)
READ_TOKEN = new_key()
PERSON_ROUTES = ("/api/incidents/",)
WEB_ROUTES = ("/ui/",)
ALERT_ROUTES = ("/api/alertmanager",)
SIGNED_OUT = ""  # a web session nobody signed in to: a valid CSRF token, no person


@dataclass(frozen=True)
class Key:
    """One way of calling. `grants` are the route prefixes where this key may change the
    journal; everywhere else a case sent with it must leave the journal as it was."""

    name: str
    headers: dict[str, str] = field(default_factory=dict)
    grants: tuple[str, ...] = ()
    web: str | None = None  # a web session: SIGNED_OUT, or the name of the person signed in

    def may_write(self, path: str) -> bool:
        return any(path.startswith(prefix) for prefix in self.grants)


def keys(tokens: dict[str, str], alertmanager: str) -> list[Key]:
    """Every credential the fuzz sends, valid and not, in one list."""
    lee, tara = tokens["lee"], tokens["tara"]
    return [
        Key("no credentials"),
        Key("unknown bearer", {"Authorization": "Bearer " + "x" * 43}),
        Key("empty bearer", {"Authorization": "Bearer "}),
        Key("lee's token as basic", {"Authorization": f"Basic {lee}"}),
        Key("lee's token, one character short", {"Authorization": f"Bearer {lee[:-1]}"}),
        Key("alertmanager's token elsewhere", {"Authorization": f"Bearer {alertmanager}"},
            grants=ALERT_ROUTES),
        Key("person lee (lead)", {"Authorization": f"Bearer {lee}"}, grants=PERSON_ROUTES),
        Key("person tara (team)", {"Authorization": f"Bearer {tara}"}, grants=PERSON_ROUTES),
        Key("person olga (oncall)", {"Authorization": f"Bearer {tokens['olga']}"},
            grants=PERSON_ROUTES),
        Key("read token", {"Authorization": f"Bearer {READ_TOKEN}"}),
        Key("web session, signed out", web=SIGNED_OUT),
        Key("web session, lee", web="lee", grants=WEB_ROUTES),
        Key("web session, tara", web="tara", grants=WEB_ROUTES),
    ]


# ---- the stand: a served app over a journal with history ---------------------------


class SkippingClock:
    """The app's clock: the wall clock, moved on by `skip`. The fuzz's own failed keys shut
    the sign-in throttle (5 a minute from 127.0.0.1) for the rest of a minute; letting that
    minute pass every so many cases (not seconds) makes which valid cases get through
    depend on the cases alone, not on how fast a loaded machine sends them."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def skip(self, seconds: float) -> None:
        self.offset += seconds


class Stand:
    """The daemon's app on a real uvicorn, its journal, and the keys to call it with."""

    def __init__(self, folder: Path, base: str, app: FastAPI, journal: Journal, health: Health,
                 keys: list[Key], tokens: dict[str, str], clock: SkippingClock) -> None:
        self.folder, self.base, self.app, self.journal = folder, base, app, journal
        self.clock = clock
        self.health = health
        self.keys, self.tokens = keys, tokens
        self.policy = load_policy(POLICY)
        self.watcher = sqlite3.connect(folder / "journal.db", isolation_level=None)
        self.http = requests.Session()
        self._web: dict[str, tuple[dict[str, str], str]] = {}

    def data_version(self) -> int:
        """Moves whenever another connection (the server's journal) commits."""
        return int(self.watcher.execute("PRAGMA data_version").fetchone()[0])

    def incidents(self) -> list[int]:
        return [r.id for r in self.journal.list_incidents(limit=200, include_closed=True)]

    def waiting(self) -> list[int]:
        """Open incidents whose plan waits for a person: where a granted key goes deepest."""
        return [r.id for r in self.journal.open_incidents() if r.state == "awaiting_approval"]

    def replenish(self) -> None:
        """Keep incidents awaiting approval at each severity, as the fuzz decides and closes."""
        waiting = {r.scenario for r in self.journal.open_incidents()
                   if r.state == "awaiting_approval"}
        for scenario in SCENARIOS:
            if scenario not in waiting:
                awaiting(self.journal, self.policy, scenario)

    def web(self, who: str, *, fresh: bool = False) -> tuple[dict[str, str], str]:
        """(cookies, CSRF token) of a web session: signed out, or signed in as `who`."""
        if fresh or who not in self._web:
            session = requests.Session()
            page = session.get(f"{self.base}/ui/")
            if who != SIGNED_OUT:
                form = {"csrf": _csrf(page.text), "name": who, "token": self.tokens[who]}
                signed = session.post(f"{self.base}/ui/signin", data=form,
                                      allow_redirects=False)
                # Refused once the fuzz's own failures from this address passed the sign-in
                # limit: the session stays signed out, which only narrows what it may do.
                assert signed.status_code in (303, 429), signed.text
                page = session.get(f"{self.base}/ui/")
            self._web[who] = (dict(session.cookies), _csrf(page.text))
        return self._web[who]

    def close(self) -> None:
        self.http.close()
        self.watcher.close()


SCENARIOS = ("database_unavailable", "database_migration_failure", "stateful_service_failure")


@contextlib.contextmanager
def stand(folder: Path) -> Iterator[Stand]:
    """A served app over a journal holding incidents in six states."""
    crew = write_crew(folder)
    policy = load_policy(POLICY, environ={})
    journal = open_journal(str(folder / "journal.db"))
    for scenario in SCENARIOS:
        awaiting(journal, policy, scenario)
    now = time.time()
    running, resolved, escalated = (awaiting(journal, policy, s) for s in SCENARIOS)
    journal.set_state(running, state="executing", at=now, reason="approved by lee")
    journal.set_state(resolved, state="resolved", at=now, reason="verified", closed=True)
    journal.set_state(escalated, state="escalated", at=now, reason="rejected", closed=True)
    health = Health(started_at=now)
    clock = SkippingClock()
    app = create_app(
        journal, Metrics.for_policy(policy), health, clock,
        alerts=AlertIntake(policy, journal, time.time),
        receiver=ReceiverSettings(token=SecretStr(ALERTMANAGER_TOKEN)),
        people=People(crew.path, policy.roles),
        close_roles=policy.close_roles,
        read_token=READ_TOKEN,
    )
    with served(app) as base:
        fuzzed = Stand(folder, base, app, journal, health, keys(crew.tokens, ALERTMANAGER_TOKEN),
                       crew.tokens, clock)
        for key in fuzzed.keys:  # signed in before the fuzz's failures can throttle it
            if key.web is not None:
                fuzzed.web(key.web)
        try:
            yield fuzzed
        finally:
            fuzzed.close()
    journal.close()


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)
