"""Signed session cookies: user id + expiry + CSRF token, HMAC-SHA256 with the panel's key.

Nothing but the user id is trusted from the cookie: the user row is re-read on every request, so deactivating
someone locks them out at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

COOKIE_NAME = "contactd_session"
DEFAULT_MAX_AGE = 12 * 3600  # one working day


@dataclass(frozen=True)
class Session:
    user_id: int
    expires: int  # unix seconds
    csrf: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionCodec:
    def __init__(self, key: str | bytes | None, *, max_age: int = DEFAULT_MAX_AGE) -> None:
        # An empty key means "random per start": sessions then end with the process (fine for one node).
        raw = key.encode() if isinstance(key, str) else key
        self._key = hashlib.sha256(raw).digest() if raw else secrets.token_bytes(32)
        self.max_age = max_age

    def issue(self, user_id: int, *, now: float | None = None) -> tuple[str, Session]:
        session = Session(user_id, int((now or time.time()) + self.max_age), secrets.token_urlsafe(24))
        body = _b64(json.dumps({"u": session.user_id, "e": session.expires, "c": session.csrf},
                               separators=(",", ":")).encode())
        return f"{body}.{self._sign(body)}", session

    def load(self, value: str | None, *, now: float | None = None) -> Session | None:
        if not value or value.count(".") != 1:
            return None
        body, signature = value.split(".")
        if not hmac.compare_digest(signature, self._sign(body)):
            return None
        try:
            data = json.loads(_unb64(body))
            session = Session(int(data["u"]), int(data["e"]), str(data["c"]))
        except (ValueError, KeyError, TypeError):
            return None
        if session.expires < (now or time.time()):
            return None
        return session

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())
