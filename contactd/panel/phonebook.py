"""The shared phonebook (seed 003 §26): everyone looks numbers up; supervisors and admins edit it."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..crm.phonebook import PhonebookError, PhonebookService
from . import keys
from .render import json_response
from .routing import PanelRoutes, Param

routes = PanelRoutes("phonebook")
PHONEBOOK: web.AppKey[PhonebookService] = keys.PHONEBOOK
FIELDS = ("name", "number", "group", "speed_dial", "memo")
ENTRY_SCHEMA = {"type": "object", "properties": {name: {"type": "string"} for name in FIELDS},
                "required": ["name", "number"]}


def entry_json(entry: Any) -> dict[str, Any]:
    return {"id": entry.id, "name": entry.name, "number": entry.number, "group": entry.group,
            "speed_dial": entry.speed_dial, "memo": entry.memo}


async def _save(request: web.Request, data: Any, entry_id: int | None) -> Any:
    values = {k: str(data.get(k) or "") for k in FIELDS}
    return await request.app[PHONEBOOK].save(values["name"], values["number"], group=values["group"],
                                             speed_dial=values["speed_dial"] or None, memo=values["memo"],
                                             entry_id=entry_id)


async def _page(request: web.Request, *, error: str = "", status: int = 200,
                values: dict[str, str] | None = None) -> web.Response:
    q = request.query.get("q", "")
    return request.app[keys.RENDERER].render(request, "phonebook/list.html", status=status, error=error, q=q,
                                             entries=await request.app[PHONEBOOK].search(q), values=values or {})


@routes.get("/phonebook", role="agent")
async def page(request: web.Request) -> web.StreamResponse:
    return await _page(request)


@routes.post("/phonebook", role="supervisor")
async def save_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    raw_id = str(form.get("id") or "")
    try:
        await _save(request, form, int(raw_id) if raw_id.isdigit() else None)
    except PhonebookError as exc:
        return await _page(request, error=str(exc), status=422, values={k: str(form.get(k) or "") for k in FIELDS})
    raise web.HTTPFound("/phonebook")


@routes.post(r"/phonebook/{id:\d+}/delete", role="supervisor")
async def delete_submit(request: web.Request) -> web.StreamResponse:
    await request.app[PHONEBOOK].delete(int(request.match_info["id"]))
    raise web.HTTPFound("/phonebook")


@routes.get("/api/phonebook", role="agent", summary="Search the phonebook by name or number",
            params=(Param("q"), Param("group")), responses={200: '{"entries": [...]}'})
async def api_search(request: web.Request) -> web.StreamResponse:
    rows = await request.app[PHONEBOOK].search(request.query.get("q", ""), group=request.query.get("group"))
    return json_response({"entries": [entry_json(e) for e in rows]})


@routes.post("/api/phonebook", role="supervisor", summary="Add a phonebook entry", body=ENTRY_SCHEMA,
             responses={201: '{"entry": {...}}', 422: "bad number, or the speed dial is taken"})
async def api_add(request: web.Request) -> web.StreamResponse:
    try:
        data = await request.json()
        entry = await _save(request, data if isinstance(data, dict) else {}, None)
    except (PhonebookError, ValueError) as exc:
        return json_response({"error": str(exc), "code": "PhonebookError"}, 422)
    return json_response({"entry": entry_json(entry)}, 201)


@routes.put(r"/api/phonebook/{id:\d+}", role="supervisor", summary="Change a phonebook entry", body=ENTRY_SCHEMA,
            params=(Param("id", "path", "integer", True),),
            responses={200: '{"entry": {...}}', 422: "bad number, or the speed dial is taken"})
async def api_update(request: web.Request) -> web.StreamResponse:
    try:
        data = await request.json()
        entry = await _save(request, data if isinstance(data, dict) else {}, int(request.match_info["id"]))
    except (PhonebookError, ValueError) as exc:
        return json_response({"error": str(exc), "code": "PhonebookError"}, 422)
    return json_response({"entry": entry_json(entry)})


@routes.delete(r"/api/phonebook/{id:\d+}", role="supervisor", summary="Delete a phonebook entry",
               params=(Param("id", "path", "integer", True),), responses={200: '{"ok": true}'})
async def api_delete(request: web.Request) -> web.StreamResponse:
    await request.app[PHONEBOOK].delete(int(request.match_info["id"]))
    return json_response({"ok": True})


def setup(app: web.Application) -> None:
    app[PHONEBOOK] = PhonebookService(app[keys.SERVICES].db)
