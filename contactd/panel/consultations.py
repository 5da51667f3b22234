"""Consultation history (seed 003 §10): search tickets by period (≤ 31 days per query), type, agent and keyword;
view one with its entries; edit/delete entries under TicketService's rules (the author within a day, or the
edit_consultations permission); Excel download only with the export permission (checked on the server).

Handlers call crm.consultation_history / crm.tickets; they never build SQL.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from urllib.parse import quote

from aiohttp import web

from ..crm.consultation_history import STATUS_LABELS, ConsultationHistoryService, HistoryError, HistoryRow
from ..crm.consultation_types import ConsultationTypeService, TypeNode
from ..crm.tickets import TicketError, TicketForbidden, TicketNotFound, TicketService
from ..store.models import utcnow
from . import keys
from .auth import client_ip
from .render import SEOUL, json_response
from .routing import PanelRoutes, Param

routes = PanelRoutes("consultations")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DEFAULT_DAYS = 7
SEARCH_PARAMS = (Param("start", type="string", description="YYYY-MM-DD (Korea)"),
                 Param("end", type="string", description="YYYY-MM-DD, at most 31 days after start"),
                 Param("type_id", type="integer", description="a consultation type of any level"),
                 Param("agent_id", type="integer", description="author or assignee"),
                 Param("keyword", description="in title, body or entries"))


def _today() -> date:
    return utcnow().astimezone(SEOUL).date()


def _day(raw: Any, default: date) -> date:
    text = str(raw or "").strip()
    if not text:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise HistoryError(f"날짜 형식이 올바르지 않습니다 (YYYY-MM-DD): {text}") from None


def _opt_int(raw: Any) -> int | None:
    text = str(raw or "")
    return int(text) if text.isdigit() else None


def search_args(query: Any) -> dict[str, Any]:
    end = _day(query.get("end"), _today())
    start = _day(query.get("start"), end - timedelta(days=DEFAULT_DAYS - 1))
    return {"start": start, "end": end, "type_id": _opt_int(query.get("type_id")),
            "agent_id": _opt_int(query.get("agent_id")), "keyword": str(query.get("keyword") or "")[:100]}


def row_json(row: HistoryRow) -> dict[str, Any]:
    t = row.ticket
    return {"id": t.id, "number": t.number, "created_at": t.created_at.isoformat(), "customer_id": t.customer_id,
            "customer_name": row.customer_name, "agent": row.agent, "status": t.status, "title": t.title,
            "body": t.body, "order_id": t.order_id, "type_ids": [t.type1_id, t.type2_id, t.type3_id]}


def _flatten(nodes: list[TypeNode], prefix: str = "") -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for node in nodes:
        label = f"{prefix} > {node.name}" if prefix else node.name
        out.append((node.id, label))
        out.extend(_flatten(node.children, label))
    return out


def _back(request: web.Request, form: Any) -> str:
    target = str(form.get("next") or "")
    return target if target.startswith("/consultations") and "//" not in target else "/consultations"


async def _search(request: web.Request, args: dict[str, Any]) -> list[HistoryRow]:
    return await request.app[keys.CONSULTATION_HISTORY].search(**args)


@routes.get("/consultations", role="agent")
async def history_page(request: web.Request) -> web.StreamResponse:
    app = request.app
    error, status = "", 200
    user = request[keys.USER]
    rows: list[HistoryRow] = []
    try:
        args = search_args(request.query)
        rows = await _search(request, args)
    except HistoryError as exc:
        error, status = str(exc), 422
        args = {"start": request.query.get("start", ""), "end": request.query.get("end", ""),
                "type_id": _opt_int(request.query.get("type_id")), "agent_id": _opt_int(request.query.get("agent_id")),
                "keyword": request.query.get("keyword", "")}
    types = _flatten(await app[keys.CONSULTATION_TYPES].tree())
    users = await app[keys.ACCOUNTS].list_users()
    view_id = _opt_int(request.query.get("view"))
    viewed, entries, can_change = None, [], {}
    if view_id is not None:
        try:
            viewed = await app[keys.TICKETS].get(view_id)
            entries = await app[keys.TICKETS].entries(view_id)
        except TicketNotFound:
            viewed = None
        now = utcnow().timestamp()
        can_change = {e.id: bool(user.can_edit_consultations or user.role == "admin" or (
            e.author_id == user.id and e.created_at.timestamp() + 86400 > now)) for e in entries}
    query_string = request.query_string
    base_qs = "&".join(p for p in query_string.split("&") if p and not p.startswith("view="))
    return app[keys.RENDERER].render(
        request, "consultations/history.html", status=status, rows=rows, args=args, error=error, types=types,
        users=users, names={u.id: u.display_name or u.username for u in users}, labels=STATUS_LABELS,
        viewed=viewed, entries=entries, can_change=can_change, base_qs=base_qs,
        here=quote(f"/consultations?{query_string}", safe="/?=&"))


async def _entry_change(request: web.Request, delete: bool) -> web.StreamResponse:
    form = await request.post()
    service = request.app[keys.TICKETS]
    entry_id = int(request.match_info["id"])
    try:
        if delete:
            await service.delete_entry(request[keys.USER], entry_id)
        else:
            await service.edit_entry(request[keys.USER], entry_id, str(form.get("body") or ""))
    except TicketNotFound:
        raise web.HTTPNotFound() from None
    except TicketError as exc:
        status = 403 if isinstance(exc, TicketForbidden) else 422
        return request.app[keys.RENDERER].render(request, "error.html", status=status, message=str(exc))
    await request.app[keys.ACCOUNTS].audit(request[keys.USER].id, "entry.delete" if delete else "entry.edit",
                                           f"entry:{entry_id}", ip=client_ip(request))
    raise web.HTTPFound(_back(request, form))


@routes.post(r"/consultations/entries/{id:\d+}/edit", role="agent")
async def edit_entry_submit(request: web.Request) -> web.StreamResponse:
    return await _entry_change(request, delete=False)


@routes.post(r"/consultations/entries/{id:\d+}/delete", role="agent")
async def delete_entry_submit(request: web.Request) -> web.StreamResponse:
    return await _entry_change(request, delete=True)


@routes.get("/consultations/export.xlsx", role="agent", permission="export")
async def export_xlsx(request: web.Request) -> web.StreamResponse:
    try:
        args = search_args(request.query)
        rows = await _search(request, args)
    except HistoryError as exc:
        return request.app[keys.RENDERER].render(request, "error.html", status=422, message=str(exc))
    body = await request.app[keys.CONSULTATION_HISTORY].export(rows)
    await request.app[keys.ACCOUNTS].audit(request[keys.USER].id, "consultations.export",
                                           f"{args['start']}~{args['end']}", f"rows={len(rows)}",
                                           ip=client_ip(request))
    name = f"consultations-{args['start']}-{args['end']}.xlsx"
    return web.Response(body=body, content_type=XLSX,
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})


@routes.get("/api/consultations", role="agent", summary="Consultation history search (≤ 31 days per query)",
            params=SEARCH_PARAMS, responses={200: '{"consultations": [...]}', 422: "period too long or bad date"})
async def api_search(request: web.Request) -> web.StreamResponse:
    try:
        rows = await _search(request, search_args(request.query))
    except HistoryError as exc:
        return json_response({"error": str(exc), "code": "HistoryError"}, 422)
    return json_response({"consultations": [row_json(r) for r in rows]})


def setup(app: web.Application) -> None:
    services = app[keys.SERVICES]
    app[keys.CONSULTATION_HISTORY] = ConsultationHistoryService(services.db)
    if keys.TICKETS not in app:
        app[keys.TICKETS] = TicketService(services.db, services.bus)
    if keys.CONSULTATION_TYPES not in app:  # panel/tickets.py sets the same service when it is installed
        app[keys.CONSULTATION_TYPES] = ConsultationTypeService(services.db)


__all__ = ["routes", "setup", "search_args", "row_json"]
