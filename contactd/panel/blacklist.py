"""Blacklist admin page and API (seed 003 §25): name / number / reason, removal, and the blocked attempts.

Supervisors and admins manage it; the service mirrors every change into Asterisk's AstDB (the seed's
"전화기 업데이트" happens by itself), so the page only says when that copy is still pending.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..crm.blacklist import BlacklistError, BlacklistService
from . import keys
from .auth import client_ip
from .render import json_response
from .routing import PanelRoutes, Param

routes = PanelRoutes("blacklist")


def service(app: web.Application) -> BlacklistService:
    services = app[keys.SERVICES]
    if services.blacklist is None:  # the daemon builds it with the PBX; a bare panel (tests) keeps SQL only
        services.blacklist = BlacklistService(services.db, services.pbx, services.config.pbx)
    return services.blacklist


def entry_json(entry: Any) -> dict[str, Any]:
    return {"id": entry.id, "number": entry.number, "name": entry.name, "reason": entry.reason,
            "created_at": entry.created_at.isoformat()}


async def _audit(request: web.Request, action: str, target: str, detail: str = "") -> None:
    await request.app[keys.ACCOUNTS].audit(request[keys.USER].id, action, target, detail, ip=client_ip(request))


async def _page(request: web.Request, *, error: str = "", status: int = 200,
                values: dict[str, str] | None = None) -> web.Response:
    bl = service(request.app)
    q = request.query.get("q", "")
    return request.app[keys.RENDERER].render(request, "blacklist/list.html", status=status, error=error, q=q,
                                             entries=await bl.list(q), attempts=await bl.attempts(limit=100),
                                             pending=bl.astdb_dirty, values=values or {})


@routes.get("/admin/blacklist", role="supervisor")
async def page(request: web.Request) -> web.StreamResponse:
    return await _page(request)


@routes.post("/admin/blacklist", role="supervisor")
async def add_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    values = {k: str(form.get(k) or "") for k in ("number", "name", "reason")}
    try:
        entry = await service(request.app).add(values["number"], values["name"], values["reason"],
                                               request[keys.USER].id)
    except BlacklistError as exc:
        return await _page(request, error=str(exc), status=422, values=values)
    await _audit(request, "blacklist.add", f"number:{entry.number}", entry.reason)
    raise web.HTTPFound("/admin/blacklist")


@routes.post("/admin/blacklist/delete", role="supervisor")
async def delete_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    number = str(form.get("number") or "")
    try:
        removed = await service(request.app).remove(number)
    except BlacklistError as exc:
        return await _page(request, error=str(exc), status=422)
    if removed:
        await _audit(request, "blacklist.remove", f"number:{number}")
    raise web.HTTPFound("/admin/blacklist")


@routes.get("/api/blacklist", role="supervisor", summary="Blacklisted numbers, newest first",
            params=(Param("q", description="part of the number, name or reason"),),
            responses={200: '{"entries": [...], "astdb_pending": bool}'})
async def api_list(request: web.Request) -> web.StreamResponse:
    bl = service(request.app)
    return json_response({"entries": [entry_json(e) for e in await bl.list(request.query.get("q", ""))],
                          "astdb_pending": bl.astdb_dirty})


@routes.post("/api/blacklist", role="supervisor", summary="Block a number (mirrored to AstDB)",
             body={"type": "object", "properties": {"number": {"type": "string"}, "name": {"type": "string"},
                                                    "reason": {"type": "string"}}, "required": ["number"]},
             responses={201: '{"entry": {...}}', 422: "bad or already listed number"})
async def api_add(request: web.Request) -> web.StreamResponse:
    try:
        data = await request.json()
        if not isinstance(data, dict):
            raise BlacklistError("body must be a JSON object")
        entry = await service(request.app).add(str(data.get("number") or ""), str(data.get("name") or ""),
                                               str(data.get("reason") or ""), request[keys.USER].id)
    except (BlacklistError, ValueError) as exc:
        return json_response({"error": str(exc), "code": "BlacklistError"}, 422)
    await _audit(request, "blacklist.add", f"number:{entry.number}", entry.reason)
    return json_response({"entry": entry_json(entry)}, 201)


@routes.delete(r"/api/blacklist/{number:[0-9+\-]+}", role="supervisor", summary="Unblock a number",
               params=(Param("number", "path", required=True),),
               responses={200: '{"ok": true}', 404: "not on the list", 422: "not a phone number"})
async def api_remove(request: web.Request) -> web.StreamResponse:
    number = request.match_info["number"]
    try:
        removed = await service(request.app).remove(number)
    except BlacklistError as exc:
        return json_response({"error": str(exc), "code": "BlacklistError"}, 422)
    if not removed:
        return json_response({"error": f"{number} is not on the blacklist", "code": "NotFound"}, 404)
    await _audit(request, "blacklist.remove", f"number:{number}")
    return json_response({"ok": True})


@routes.get("/api/blacklist/attempts", role="supervisor", summary="Calls rejected because of the blacklist",
            params=(Param("number"),), responses={200: '{"attempts": [{"number", "at"}]}'})
async def api_attempts(request: web.Request) -> web.StreamResponse:
    try:
        rows = await service(request.app).attempts(request.query.get("number") or None)
    except BlacklistError as exc:
        return json_response({"error": str(exc), "code": "BlacklistError"}, 422)
    return json_response({"attempts": [{"number": a.number, "uniqueid": a.uniqueid, "at": a.at.isoformat()}
                                       for a in rows]})
