"""Who may read: the incidents, their evidence and plans are for people, not the network.

`GET /incidents`, `/incidents/{id}` and the web page's read pages need one of:
`Authorization: Bearer <personal token>` of anyone in the people file (any role:
`viewer` is the least), or `Authorization: Bearer <WATCHDOG_READ_TOKEN>` (a key
for dashboards and scripts, which reads and decides nothing). `/healthz` and
`/metrics` stay open: they say how the daemon is, not what the stack holds.

Every failed attempt counts against its client address (`FailureLimiter`): five
in a minute and it gets 429 with Retry-After, before any hashing, so guessing
costs the guesser time and the daemon nothing. The personal token's scrypt is
bounded by `People` itself (`people.Busy` becomes 503 with Retry-After).
"""

from __future__ import annotations

import hmac
from collections import OrderedDict, deque
from collections.abc import Callable

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from watchdog.keys import ThrottleVerdict, assess_attempts
from watchdog.people import Busy, People, Person

FAILURES_PER_MINUTE = 5
WINDOW_SECONDS = 60.0
CLIENTS_TRACKED = 4096
BUSY_RETRY_SECONDS = 1


class FailureLimiter:
    """Recent failed sign-ins per client address; bounded (the least recently failing
    clients are forgotten first) so a flood of addresses cannot grow it."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        limit: int = FAILURES_PER_MINUTE,
        window: float = WINDOW_SECONDS,
        clients: int = CLIENTS_TRACKED,
    ) -> None:
        self._clock = clock
        self.limit, self.window, self._clients = limit, window, clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def verdict(self, client: str) -> ThrottleVerdict:
        return assess_attempts(
            self._failures.get(client, ()), self._clock(), limit=self.limit, window=self.window
        )

    def failed(self, client: str) -> None:
        times = self._failures.setdefault(client, deque(maxlen=self.limit))
        times.append(self._clock())
        self._failures.move_to_end(client)
        while len(self._failures) > self._clients:
            self._failures.popitem(last=False)


def client_of(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def throttled(verdict: ThrottleVerdict) -> JSONResponse:
    return JSONResponse(
        {"detail": f"too many failed sign-ins from this address: {verdict.reason}"},
        status_code=429,
        headers={"Retry-After": str(int(verdict.retry_after))},
    )


def busy() -> JSONResponse:
    return JSONResponse(
        {"detail": "too many token checks at once; try again in a second"},
        status_code=503,
        headers={"Retry-After": str(BUSY_RETRY_SECONDS)},
    )


def bearer_of(request: Request) -> str:
    """The credentials of `Authorization: Bearer ...`, or '' (never a match)."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


def same_secret(expected: str, given: str) -> bool:
    """Constant-time equality for any text; an empty secret matches nothing."""
    return bool(expected) and hmac.compare_digest(
        expected.encode("utf-8", "surrogatepass"), given.encode("utf-8", "surrogatepass")
    )


class ReadAccess:
    """The check in front of every read route: a person, or the read token."""

    def __init__(self, people: People | None, read_token: str | None, limiter: FailureLimiter):
        self.people = people
        self.read_token = read_token or ""
        self.limiter = limiter

    async def reader(self, request: Request) -> str | Person | JSONResponse:
        """'read token', the person, or the refusal (401, 429, 503) to send."""
        client = client_of(request)
        verdict = self.limiter.verdict(client)
        if not verdict.allowed:
            return throttled(verdict)
        given = bearer_of(request)
        if given and same_secret(self.read_token, given):
            return "read token"
        if given and self.people is not None:
            try:
                person = await run_in_threadpool(self.people.bearer, given)
            except Busy:
                return busy()
            if person is not None:
                return person  # any role reads: `viewer` is the least
        if given:
            self.limiter.failed(client)
        return JSONResponse(
            {"detail": self.needed()}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )

    def needed(self) -> str:
        ways = []
        if self.people is not None:
            ways.append("Authorization: Bearer <personal token> (anyone in the people file)")
        if self.read_token:
            ways.append("Authorization: Bearer <WATCHDOG_READ_TOKEN>")
        if ways:
            return "reading incidents needs " + " or ".join(ways)
        return (
            "reading incidents needs a key, and none is configured: set WATCHDOG_READ_TOKEN "
            "(make one with `watchdog token new`), or add a person with "
            "`watchdog people add NAME --role oncall --people FILE` (it prints their personal "
            "token once) and start the daemon with WATCHDOG_PEOPLE=FILE"
        )
