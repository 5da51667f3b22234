"""CSRF: every unsafe request carries the session's token, in the X-CSRF-Token header or a `_csrf` form field."""

from __future__ import annotations

import hmac

from aiohttp import web

from .sessions import Session

HEADER = "X-CSRF-Token"
FIELD = "_csrf"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def submitted_token(request: web.Request) -> str:
    token = request.headers.get(HEADER, "")
    if not token and request.content_type in FORM_TYPES:
        form = await request.post()  # aiohttp caches the parsed form: the handler reads it again for free
        value = form.get(FIELD)
        token = value if isinstance(value, str) else ""
    return token


async def csrf_ok(request: web.Request, session: Session | None) -> bool:
    if request.method not in UNSAFE_METHODS:
        return True
    if session is None:
        return False
    token = await submitted_token(request)
    return bool(token) and hmac.compare_digest(token.encode(), session.csrf.encode())
