"""The web page's sessions: signed cookies, CSRF tokens, and the sessions signed out early.

A session is a signed cookie (HMAC-SHA256 with a secret made when the daemon
starts) holding a random session id, the person's name once signed in, and when
it was issued; it expires `SESSION_SECONDS` after that. Signing out revokes it,
so a copied cookie is worthless afterwards. The set of revoked sessions is
bounded: an entry leaves it once its session would have expired anyway, and
past `REVOKED_MAX` entries the oldest is dropped and every session issued no
later than it is refused from then on (a watermark), so nothing revoked ever
comes back to life. Only signed-in sessions are revoked: an anonymous one
carries no rights, and anyone can make as many of those as they like.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

SESSION_SECONDS = 12 * 3600
REVOKED_MAX = 10_000


@dataclass(frozen=True, slots=True)
class Session:
    sid: str
    person: str | None
    issued_at: float


class Sessions:
    """Signed session cookies and the CSRF tokens tied to them, under one per-daemon secret."""

    def __init__(
        self, secret: bytes, clock: Callable[[], float], *, revoked_max: int = REVOKED_MAX
    ) -> None:
        self._secret = secret
        self._clock = clock
        self._revoked: OrderedDict[str, float] = OrderedDict()  # sid -> issued_at, oldest first
        self._revoked_max = revoked_max
        self._not_after = float("-inf")  # sessions issued at or before this are refused

    def new(self, person: str | None = None) -> Session:
        return Session(secrets.token_urlsafe(18), person, self._clock())

    def cookie(self, session: Session) -> str:
        body = json.dumps([session.sid, session.person, session.issued_at]).encode()
        payload = base64.urlsafe_b64encode(body).decode().rstrip("=")
        return f"{payload}.{self._sign('session', payload)}"

    def read(self, cookie: str | None) -> Session | None:
        """The session in a cookie, if its signature holds and it has not expired."""
        if not cookie or cookie.count(".") != 1:
            return None
        payload, signature = cookie.split(".")
        if not same(signature, self._sign("session", payload)):
            return None
        try:
            sid, person, issued_at = json.loads(
                base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
            )
            issued = float(issued_at)
        except (ValueError, TypeError):
            return None
        if self._clock() - issued > SESSION_SECONDS or issued <= self._not_after:
            return None
        if sid in self._revoked:
            return None
        return Session(str(sid), person if isinstance(person, str) else None, issued)

    def revoke(self, session: Session) -> None:
        if session.person is None:
            return
        self._forget_expired()
        self._revoked[session.sid] = session.issued_at
        while len(self._revoked) > self._revoked_max:
            _, issued = self._revoked.popitem(last=False)
            self._not_after = max(self._not_after, issued)

    def revoked(self) -> int:
        """How many signed-out sessions are remembered (bounded by `revoked_max`)."""
        return len(self._revoked)

    def _forget_expired(self) -> None:
        # Revoked in sign-out order, so not strictly by issue time: scan the whole set.
        # It is bounded, and this runs once per sign-out.
        now = self._clock()
        for sid in [s for s, at in self._revoked.items() if now - at > SESSION_SECONDS]:
            del self._revoked[sid]

    def csrf(self, session: Session) -> str:
        return self._sign("csrf", session.sid)

    def csrf_ok(self, session: Session | None, token: str) -> bool:
        return session is not None and same(self.csrf(session), token)

    def _sign(self, purpose: str, value: str) -> str:
        digest = hmac.new(self._secret, f"{purpose}:{value}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def same(expected: str, given: str) -> bool:
    """Constant-time equality for any text (compare_digest refuses non-ASCII str)."""
    return hmac.compare_digest(
        expected.encode("utf-8", "surrogatepass"), given.encode("utf-8", "surrogatepass")
    )
