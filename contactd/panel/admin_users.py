"""Admin pages (seed 003 §1-2, §6): user accounts (role, extension, permissions, language) and extensions."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..crm.accounts import AccountError
from ..store.models import ROLES
from . import keys
from .auth import client_ip
from .i18n import LANGUAGES
from .render import catalogue_for, json_response
from .routing import PanelRoutes

routes = PanelRoutes("admin")


def account_error_text(request: web.Request, exc: AccountError) -> str:
    """AccountError messages are English "field: why"; show the catalogue's sentence for that field and case."""
    message = str(exc)
    field = message.split(":", 1)[0].strip()
    case = "taken" if ("already" in message or "belongs" in message) else "invalid"
    if "last active admin" in message:
        case = "last_admin"
    t = catalogue_for(request)
    key = f"account.err.{field}.{case}"
    return t.t(key) if t.has(key) else message


def _checked(form: Any, name: str) -> bool:
    return form.get(name) in ("1", "on", "true")


async def _audit(request: web.Request, action: str, target: str, detail: str = "") -> None:
    await request.app[keys.ACCOUNTS].audit(request[keys.USER].id, action, target, detail, ip=client_ip(request))


async def _users_page(request: web.Request, *, status: int = 200, error: str = "",
                      values: dict[str, Any] | None = None) -> web.Response:
    accounts = request.app[keys.ACCOUNTS]
    return request.app[keys.RENDERER].render(
        request, "admin/users.html", status=status, users=await accounts.list_users(),
        extensions=await accounts.list_extensions(), roles=ROLES, languages=LANGUAGES, error=error,
        values=values or {"role": "agent", "language": "ko"})


@routes.get("/admin/users", role="admin")
async def users_page(request: web.Request) -> web.StreamResponse:
    return await _users_page(request)


@routes.post("/admin/users", role="admin")
async def create_user(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    values = {key: str(form.get(key, "")) for key in ("username", "display_name", "role", "extension", "language")}
    try:
        if values["language"] not in LANGUAGES:
            raise AccountError(f"language: must be one of {', '.join(LANGUAGES)}")
        user = await request.app[keys.ACCOUNTS].create_user(
            values["username"].strip(), str(form.get("password", "")), values["role"],
            extension=values["extension"].strip() or None, display_name=values["display_name"].strip(),
            can_edit_consultations=_checked(form, "can_edit_consultations"), can_export=_checked(form, "can_export"),
            language=values["language"])
    except AccountError as exc:
        return await _users_page(request, status=422, error=account_error_text(request, exc), values=values)
    await _audit(request, "user.create", f"user:{user.id}", f"{user.username} role={user.role}")
    raise web.HTTPFound("/admin/users")


def _user_id(request: web.Request) -> int:
    return int(request.match_info["id"])


async def _edit_page(request: web.Request, *, status: int = 200, error: str = "") -> web.Response:
    accounts = request.app[keys.ACCOUNTS]
    target = await accounts.get(_user_id(request))
    if target is None:
        raise web.HTTPNotFound()
    return request.app[keys.RENDERER].render(request, "admin/user_edit.html", status=status, target=target,
                                             roles=ROLES, languages=LANGUAGES, error=error,
                                             extensions=await accounts.list_extensions())


@routes.get(r"/admin/users/{id:\d+}", role="admin")
async def edit_user_page(request: web.Request) -> web.StreamResponse:
    return await _edit_page(request)


@routes.post(r"/admin/users/{id:\d+}", role="admin")
async def edit_user(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    user_id = _user_id(request)
    password = str(form.get("password", ""))
    try:
        user = await request.app[keys.ACCOUNTS].update_user(
            user_id, display_name=str(form.get("display_name", "")), role=str(form.get("role", "")),
            extension=str(form.get("extension", "")).strip(),
            can_edit_consultations=_checked(form, "can_edit_consultations"), can_export=_checked(form, "can_export"),
            language=str(form.get("language", "")), password=password or None)
    except AccountError as exc:
        if str(exc).startswith("user:"):
            raise web.HTTPNotFound() from None
        return await _edit_page(request, status=422, error=account_error_text(request, exc))
    detail = f"role={user.role} ext={user.extension} edit={user.can_edit_consultations} export={user.can_export}"
    await _audit(request, "user.update", f"user:{user_id}", detail + (" password" if password else ""))
    raise web.HTTPFound("/admin/users")


async def _set_active(request: web.Request, active: bool) -> web.StreamResponse:
    user_id = _user_id(request)
    if not active and user_id == request[keys.USER].id:
        return await _edit_page(request, status=422, error=catalogue_for(request).t("account.err.self_deactivate"))
    try:
        await request.app[keys.ACCOUNTS].update_user(user_id, active=active)
    except AccountError as exc:
        if str(exc).startswith("user:"):
            raise web.HTTPNotFound() from None
        return await _edit_page(request, status=422, error=account_error_text(request, exc))
    await _audit(request, "user.activate" if active else "user.deactivate", f"user:{user_id}")
    raise web.HTTPFound("/admin/users")


@routes.post(r"/admin/users/{id:\d+}/deactivate", role="admin")
async def deactivate_user(request: web.Request) -> web.StreamResponse:
    return await _set_active(request, False)


@routes.post(r"/admin/users/{id:\d+}/activate", role="admin")
async def activate_user(request: web.Request) -> web.StreamResponse:
    return await _set_active(request, True)


async def _extensions_page(request: web.Request, *, status: int = 200, error: str = "") -> web.Response:
    accounts = request.app[keys.ACCOUNTS]
    owners = {u.extension: u for u in await accounts.list_users() if u.extension}
    return request.app[keys.RENDERER].render(request, "admin/extensions.html", status=status, error=error,
                                             extensions=await accounts.list_extensions(), owners=owners)


@routes.get("/admin/extensions", role="admin")
async def extensions_page(request: web.Request) -> web.StreamResponse:
    return await _extensions_page(request)


@routes.post("/admin/extensions", role="admin")
async def add_extension(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    number = str(form.get("number", "")).strip()
    try:
        await request.app[keys.ACCOUNTS].add_extension(number, str(form.get("label", "")))
    except AccountError as exc:
        return await _extensions_page(request, status=422, error=account_error_text(request, exc))
    await _audit(request, "extension.create", f"extension:{number}")
    raise web.HTTPFound("/admin/extensions")


@routes.post(r"/admin/extensions/{number:\d{1,4}}/delete", role="admin")
async def delete_extension(request: web.Request) -> web.StreamResponse:
    number = request.match_info["number"]
    try:
        await request.app[keys.ACCOUNTS].delete_extension(number)
    except AccountError as exc:
        return await _extensions_page(request, status=422, error=account_error_text(request, exc))
    await _audit(request, "extension.delete", f"extension:{number}")
    raise web.HTTPFound("/admin/extensions")


@routes.get("/admin/audit", role="admin")
async def audit_page(request: web.Request) -> web.StreamResponse:
    accounts = request.app[keys.ACCOUNTS]
    users = {u.id: u for u in await accounts.list_users()}
    return request.app[keys.RENDERER].render(request, "admin/audit.html", entries=await accounts.audit_entries(),
                                             users=users)


@routes.get("/api/users", role="agent", summary="Colleagues with their extensions (transfer / pickup targets)",
            responses={200: '{"users": [{"id", "display_name", "extension", "role"}]}'})
async def api_users(request: web.Request) -> web.StreamResponse:
    users = await request.app[keys.ACCOUNTS].list_users(include_inactive=False)
    return json_response({"users": [{"id": u.id, "display_name": u.display_name, "extension": u.extension,
                                     "role": u.role} for u in users]})
