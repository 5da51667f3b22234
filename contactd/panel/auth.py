"""Login, logout, the language setting, and the middleware that enforces each route's declared role.

Logged out: pages redirect to /login, JSON routes answer 401. Logged in without the role or permission: 403,
and the handler never runs, so a forbidden action changes nothing. Login is throttled per username + address.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from urllib.parse import quote

from aiohttp import web

from ..crm.accounts import AccountError
from ..store.models import utcnow
from . import keys
from .csrf import FIELD, csrf_ok
from .render import catalogue_for, json_error
from .routing import PUBLIC, PanelRoutes, allowed, route_info
from .sessions import COOKIE_NAME

log = logging.getLogger(__name__)
routes = PanelRoutes("auth")

LOGIN_COOKIE = "contactd_login"  # double-submit token for the login form (there is no session yet)


def client_ip(request: web.Request) -> str:
    return request.remote or ""


def _is_api(request: web.Request) -> bool:
    return request.path.startswith("/api/")


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'",
}


@web.middleware
async def security_headers(request: web.Request, handler: web.Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        # Raised redirects and 404s (the router's, or a handler's) are responses too: they need the headers.
        for name, value in SECURITY_HEADERS.items():
            exc.headers.setdefault(name, value)
        raise
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


@web.middleware
async def auth_middleware(request: web.Request, handler: web.Handler) -> web.StreamResponse:
    info = route_info(request)
    if info is None:
        if request.match_info.http_exception is not None:
            return await handler(request)  # 404 / 405 as aiohttp answers them
        resource = request.match_info.route.resource
        if isinstance(resource, web.StaticResource):
            return await handler(request)
        log.error("route %s %s has no role declaration: refused", request.method, request.path)
        raise web.HTTPForbidden()
    app = request.app
    session = app[keys.SESSIONS].load(request.cookies.get(COOKIE_NAME))
    user = None
    if session is not None:
        user = await app[keys.ACCOUNTS].get(session.user_id)
        if user is None or not user.active:
            user, session = None, None
    request[keys.USER] = user
    request[keys.SESSION] = session
    if info.role != PUBLIC:
        if user is None:
            if _is_api(request) or request.method != "GET":
                return json_error(request, 401, "auth.err.login_required")
            raise web.HTTPFound(f"/login?next={quote(request.path_qs, safe='/')}")
        if not allowed(user, info.role, info.permission):
            if _is_api(request):
                return json_error(request, 403, "auth.err.forbidden")
            return app[keys.RENDERER].render(request, "error.html", status=403,
                                             message=catalogue_for(request).t("auth.err.forbidden"))
    if info.csrf and not await csrf_ok(request, session):
        return json_error(request, 403, "auth.err.csrf")
    return await handler(request)


def _safe_next(target: str | None) -> str:
    # Browsers drop tabs and newlines inside URLs ("/\t/evil" becomes "//evil"), so any control character refuses.
    if (not target or not target.startswith("/") or target.startswith("//") or "\\" in target
            or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target)):
        return "/"
    return target


def _login_page(request: web.Request, *, status: int = 200, error: str = "", username: str = "") -> web.Response:
    token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
    response = request.app[keys.RENDERER].render(request, "login.html", status=status, error=error,
                                                 csrf_token=token,
                                                 next=_safe_next(request.query.get("next")),
                                                 username=username)
    response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="Strict", path="/login")
    return response


@routes.get("/login", role=PUBLIC, api=False)
async def login_form(request: web.Request) -> web.StreamResponse:
    app = request.app
    session = app[keys.SESSIONS].load(request.cookies.get(COOKIE_NAME))
    if session is not None:
        user = await app[keys.ACCOUNTS].get(session.user_id)
        if user is not None and user.active:
            raise web.HTTPFound("/")
    return _login_page(request)


@routes.post("/login", role=PUBLIC, api=False, csrf=False)
async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    cookie_token = request.cookies.get(LOGIN_COOKIE, "")
    if not cookie_token or not secrets.compare_digest(str(form.get(FIELD, "")), cookie_token):
        return json_error(request, 403, "auth.err.csrf")
    username = str(form.get("username", "")).strip()[:64]
    password = str(form.get("password", ""))
    t = catalogue_for(request)
    app = request.app
    accounts = app[keys.ACCOUNTS]
    settings = app[keys.SETTINGS]
    ip = client_ip(request)
    since = utcnow() - timedelta(seconds=settings["login_window"])
    if await accounts.recent_failures(username, ip, since) >= settings["login_limit"]:
        log.warning("login throttled for %r from %s", username, ip)
        return _login_page(request, status=429, error=t("auth.err.throttled",
                                                        minutes=settings["login_window"] // 60), username=username)
    user = await accounts.authenticate(username, password)
    if user is None:
        await accounts.record_login(username, ip, False)
        return _login_page(request, status=401, error=t("auth.err.bad_login"), username=username)
    await accounts.record_login(username, ip, True)
    await accounts.audit(user.id, "login", f"user:{user.id}", ip=ip)
    value, _ = app[keys.SESSIONS].issue(user.id)
    response = web.HTTPFound(_safe_next(str(form.get("next", "")) or None))
    response.set_cookie(COOKIE_NAME, value, httponly=True, samesite="Lax", path="/",
                        max_age=app[keys.SESSIONS].max_age, secure=settings["secure_cookies"])
    response.del_cookie(LOGIN_COOKIE, path="/login")
    raise response


@routes.post("/logout", role="agent", api=False)
async def logout(request: web.Request) -> web.StreamResponse:
    user = request[keys.USER]
    await request.app[keys.ACCOUNTS].audit(user.id, "logout", f"user:{user.id}", ip=client_ip(request))
    response = web.HTTPFound("/login")
    response.del_cookie(COOKIE_NAME, path="/")
    raise response


@routes.post("/settings/language", role="agent", api=False)
async def set_language(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    language = str(form.get("language", ""))
    try:
        await request.app[keys.ACCOUNTS].update_user(request[keys.USER].id, language=language)
    except AccountError:
        return json_error(request, 422, "auth.err.language")
    raise web.HTTPFound(_safe_next(request.headers.get("Referer-Path") or str(form.get("next", "")) or "/"))


@routes.get("/api/me", role="agent", summary="The logged-in user",
            responses={200: "id, username, display_name, role, extension, permissions, language"})
async def me(request: web.Request) -> web.StreamResponse:
    from .render import json_response

    user = request[keys.USER]
    data = request.app[keys.ACCOUNTS].describe(user)
    data["csrf_token"] = request[keys.SESSION].csrf
    return json_response(data)
