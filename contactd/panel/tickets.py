"""CS ticket pages and JSON API (seed 004): new ticket from a call or by hand, the button bar
(저장 / 이관 / 완료 / 수정 / 임시저장 / 폐기 / 추가접수), entries with the 1-day author rule, history, and the
consultation-type admin page. Handlers call crm.tickets / crm.consultation_types; they never build SQL.

The screen-pop's "접수" button opens `/tickets/new?number=<digits>&linkedid=<linkedid>&customer_id=<id>`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from markupsafe import Markup

from ..crm.consultation_types import ConsultationTypeError, ConsultationTypeService, TypeNode
from ..crm.customers import CustomerNotFound
from ..crm.phone import normalize_or_none
from ..crm.tickets import TicketError, TicketForbidden, TicketNotFound, TicketService, is_overdue
from ..store.models import Customer, Ticket, User, utcnow
from ..store.models.tickets import CHANNELS, OPEN_STATUSES
from . import keys
from .render import SEOUL, catalogue_for, json_error, json_response, local_time
from .routing import PanelRoutes, Param
from .tabs import CustomerTab

routes = PanelRoutes("tickets")

TICKETS: web.AppKey[TicketService] = keys.TICKETS
CTYPES: web.AppKey[ConsultationTypeService] = keys.CONSULTATION_TYPES

INT_FIELDS = ("customer_id", "order_id", "order_line_id", "type1_id", "type2_id", "type3_id")
TEXT_FIELDS = ("title", "body", "admin_memo", "call_linkedid", "channel")
TIME_FIELDS = ("due_at", "recall_at")
ACTIONS = ("save", "temp", "transfer", "complete", "edit", "discard", "additional", "recall_done")
# Which buttons a ticket in each state offers (the service refuses the rest anyway).
BUTTONS = {
    None: ("save", "transfer", "complete", "temp"),
    "temp": ("save", "transfer", "complete", "temp", "discard"),
    "received": ("save", "transfer", "complete", "edit", "discard", "additional"),
    "transferred": ("transfer", "complete", "edit", "discard", "additional"),
    "completed": ("edit", "additional"),
    "discarded": (),
}

TICKET_SCHEMA: dict[str, Any] = {"type": "object", "properties": {
    **{name: {"type": ["integer", "null"]} for name in INT_FIELDS},
    "title": {"type": "string"}, "body": {"type": "string"}, "admin_memo": {"type": "string"},
    "call_linkedid": {"type": "string"}, "channel": {"type": "string", "enum": list(CHANNELS)},
    "due_at": {"type": ["string", "null"], "format": "date-time", "description": "ISO time with zone, or local"},
    "recall_at": {"type": ["string", "null"], "format": "date-time"},
    "temp": {"type": "boolean", "description": "true = 임시저장 instead of 접수"}}}
ERRORS = {403: "not allowed (e.g. someone else's entry)", 404: "no such ticket", 422: "refused: error says why"}


class BadInput(TicketError):
    pass


# ---- conversions ------------------------------------------------------------------------------------------------
def parse_local_time(raw: Any) -> datetime | None:
    """`<input type=datetime-local>` gives Korea time without a zone; ISO strings with a zone are kept as given."""
    text = str(raw or "").strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(f"날짜/시간 형식이 올바르지 않습니다: {text}") from None
    return (value if value.tzinfo else value.replace(tzinfo=SEOUL)).astimezone(UTC)


def ticket_fields(data: Any, *, partial: bool) -> dict[str, Any]:
    """Form or JSON values → service fields. `partial`: only the fields present (a form sends every input it
    shows, blank ones included, so a field it leaves out is one to keep as it is); else all of them."""
    fields: dict[str, Any] = {}
    for name in INT_FIELDS:
        if partial and name not in data:
            continue
        raw = data.get(name)
        if raw in (None, ""):
            fields[name] = None
            continue
        try:
            fields[name] = int(raw)
        except (TypeError, ValueError):
            raise BadInput(f"{name}: 숫자가 아닙니다 ({raw})") from None
    for name in TEXT_FIELDS:
        if partial and name not in data:
            continue
        value = str(data.get(name) or "")
        if name == "channel":
            value = value or "CALL"
        if name == "call_linkedid":
            fields[name] = value or None
            continue
        fields[name] = value
    for name in TIME_FIELDS:
        if partial and name not in data:
            continue
        fields[name] = parse_local_time(data.get(name))
    return fields


def _iso_local(value: datetime | None) -> str:
    return value.astimezone(SEOUL).strftime("%Y-%m-%dT%H:%M") if value else ""


def ticket_json(ticket: Ticket, now: datetime | None = None) -> dict[str, Any]:
    data = {name: getattr(ticket, name) for name in (
        "id", "number", "customer_id", "order_id", "order_line_id", "call_linkedid", "channel", "type1_id",
        "type2_id", "type3_id", "title", "body", "admin_memo", "status", "created_by_id", "assignee_id",
        "transferred_from_id", "parent_ticket_id", "recall_done")}
    for name in ("due_at", "recall_at", "created_at", "updated_at", "completed_at"):
        value = getattr(ticket, name)
        data[name] = value.astimezone(UTC).isoformat() if value else None
    data["overdue"] = is_overdue(ticket, now or utcnow())
    return data


def _status_for(exc: TicketError) -> int:
    if isinstance(exc, TicketNotFound):
        return 404
    if isinstance(exc, TicketForbidden):
        return 403
    return 422


def _err(exc: Exception, status: int) -> web.Response:
    return json_response({"error": str(exc), "code": type(exc).__name__}, status)


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json() if request.can_read_body else {}
    except ValueError:
        raise BadInput("요청 형식(JSON)이 올바르지 않습니다") from None
    if not isinstance(data, dict):
        raise BadInput("요청 형식(JSON)이 올바르지 않습니다")
    return data


def _id(request: web.Request, name: str = "id") -> int:
    return int(request.match_info[name])


async def perform(request: web.Request, action: str, ticket_id: int | None, data: Any, *, partial: bool
                  ) -> Ticket:
    """One button of the bar. For a new ticket (`ticket_id` None) save/temp create it, transfer/complete create
    it and then act, as the seed's F5/F6 on a fresh screen do."""
    service = request.app[TICKETS]
    user: User = request[keys.USER]
    if action not in ACTIONS:
        raise BadInput(f"알 수 없는 작업입니다: {action}")
    if action in ("transfer", "complete", "discard", "additional", "recall_done"):
        fields = {}
    else:
        fields = ticket_fields(data, partial=partial)
    assignee = data.get("assignee_id") if action == "transfer" else None
    try:
        assignee_id = int(assignee) if assignee not in (None, "") else None
    except (TypeError, ValueError):
        raise BadInput("이관 담당자가 올바르지 않습니다") from None
    if ticket_id is None:
        if action == "transfer" and not assignee_id:
            raise TicketError("이관 담당자를 선택하세요 (an assignee is required to transfer)")
        fields = ticket_fields(data, partial=partial)
        parent = data.get("parent_ticket_id")
        if parent not in (None, "") and action != "temp":
            ticket = await service.additional(user, int(parent), **fields)
        else:
            ticket = await service.create(user, temp=action == "temp", **fields)
        if action == "transfer":
            ticket = await service.transfer(user, ticket.id, assignee_id, str(data.get("note") or ""))
        elif action == "complete":
            ticket = await service.complete(user, ticket.id)
        return ticket
    if action == "save":
        return await service.save(user, ticket_id, **fields)
    if action == "temp":
        return await service.temp_save(user, ticket_id, **fields)
    if action == "edit":
        return await service.edit(user, ticket_id, **fields)
    if action in ("transfer", "complete"):
        # The bar submits the whole form: keep what the agent typed before handing the ticket on or closing it.
        changes = ticket_fields(data, partial=partial)
        current = await service.get(ticket_id)
        changes = {k: v for k, v in changes.items() if getattr(current, k) != v}
        if changes:
            await service.edit(user, ticket_id, **changes)
    if action == "transfer":
        return await service.transfer(user, ticket_id, assignee_id, str(data.get("note") or ""))
    if action == "complete":
        return await service.complete(user, ticket_id)
    if action == "discard":
        return await service.discard(user, ticket_id, str(data.get("reason") or ""))
    if action == "recall_done":
        return await service.mark_recall_done(user, ticket_id)
    return await service.additional(user, ticket_id, **ticket_fields(data, partial=True))


# ---- pages ---------------------------------------------------------------------------------------------------
def _flatten(nodes: list[TypeNode]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for node in nodes:
        out.append({"id": node.id, "level": node.level, "name": node.name, "parent_id": node.parent_id,
                    "used": node.used})
        out.extend(_flatten(node.children))
    return out


async def _customer(request: web.Request, customer_id: int | None) -> Customer | None:
    if not customer_id:
        return None
    try:
        return await request.app[keys.CUSTOMERS].get(customer_id)
    except CustomerNotFound:
        return None


async def render_form(request: web.Request, *, ticket: Ticket | None, values: dict[str, Any],
                      error: str = "", status: int = 200, number: str = "",
                      parent: Ticket | None = None) -> web.Response:
    app = request.app
    user: User = request[keys.USER]
    users = await app[keys.ACCOUNTS].list_users()
    names = {u.id: u.display_name or u.username for u in users}
    types = _flatten(await app[CTYPES].tree())
    customer = await _customer(request, values.get("customer_id"))
    entries = await app[TICKETS].entries(ticket.id) if ticket else []
    history = await app[TICKETS].history(ticket.id) if ticket else []
    now = utcnow()
    can_change = {e.id: user.can_edit_consultations or user.role == "admin" or (
        e.author_id == user.id and e.created_at.timestamp() + 86400 > now.timestamp()) for e in entries}
    return app[keys.RENDERER].render(
        request, "tickets/form.html", status=status, ticket=ticket, values=values, error=error, number=number,
        customer=customer, parent=parent, types=types, users=[u for u in users if u.active and u.id != user.id],
        names=names, entries=entries, history=history, can_change=can_change, channels=CHANNELS,
        buttons=BUTTONS.get(ticket.status if ticket else None, ()),
        overdue=bool(ticket and is_overdue(ticket, now)))


def _values_of(ticket: Ticket) -> dict[str, Any]:
    values: dict[str, Any] = {name: getattr(ticket, name) for name in INT_FIELDS + TEXT_FIELDS}
    for name in TIME_FIELDS:
        values[name] = _iso_local(getattr(ticket, name))
    return values


@routes.get("/tickets/new", role="agent")
async def new_page(request: web.Request) -> web.StreamResponse:
    query = request.query
    values: dict[str, Any] = {name: None for name in INT_FIELDS}
    values.update({name: "" for name in TEXT_FIELDS + TIME_FIELDS})
    values["channel"] = "CALL"
    values["call_linkedid"] = query.get("linkedid", "")[:64]
    number = normalize_or_none(query.get("number")) or ""
    parent = None
    if query.get("from", "").isdigit():
        try:
            parent = await request.app[TICKETS].get(int(query["from"]))
        except TicketNotFound:
            raise web.HTTPNotFound() from None
        for name in ("customer_id", "order_id", "order_line_id", "channel", "type1_id", "type2_id", "type3_id",
                     "call_linkedid"):
            values[name] = getattr(parent, name)
    if query.get("customer_id", "").isdigit():
        values["customer_id"] = int(query["customer_id"])
    elif number and not values["customer_id"]:
        found = await request.app[keys.CUSTOMERS].find_by_number(number)
        if len(found) == 1:
            values["customer_id"] = found[0].id
    return await render_form(request, ticket=None, values=values, number=number, parent=parent)


@routes.post("/tickets/new", role="agent")
async def create_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    action = str(form.get("action") or "save")
    try:
        ticket = await perform(request, action, None, form, partial=True)
    except TicketError as exc:
        values = {k: form.get(k) for k in INT_FIELDS + TEXT_FIELDS + TIME_FIELDS}
        for name in INT_FIELDS:
            values[name] = int(str(values[name])) if str(values[name] or "").isdigit() else None
        parent = None
        if str(form.get("parent_ticket_id") or "").isdigit():
            parent = await request.app[TICKETS].get(int(str(form["parent_ticket_id"])))
        return await render_form(request, ticket=None, values=values, error=str(exc), status=_status_for(exc),
                                 number=str(form.get("number") or ""), parent=parent)
    raise web.HTTPFound(f"/tickets/{ticket.id}")


@routes.get(r"/tickets/{id:\d+}", role="agent")
async def view_page(request: web.Request) -> web.StreamResponse:
    try:
        ticket = await request.app[TICKETS].get(_id(request))
    except TicketNotFound:
        raise web.HTTPNotFound() from None
    return await render_form(request, ticket=ticket, values=_values_of(ticket))


@routes.post(r"/tickets/{id:\d+}", role="agent")
async def action_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    ticket_id = _id(request)
    action = str(form.get("action") or "")
    if action == "additional":
        raise web.HTTPFound(f"/tickets/new?from={ticket_id}")
    try:
        ticket = await perform(request, action, ticket_id, form, partial=True)
    except TicketNotFound:
        raise web.HTTPNotFound() from None
    except TicketError as exc:
        current = await request.app[TICKETS].get(ticket_id)
        values = _values_of(current)
        values.update({k: form.get(k) for k in TEXT_FIELDS + TIME_FIELDS if k in form})
        return await render_form(request, ticket=current, values=values, error=str(exc), status=_status_for(exc))
    raise web.HTTPFound(f"/tickets/{ticket.id}")


@routes.post(r"/tickets/{id:\d+}/entries", role="agent")
async def add_entry_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    ticket_id = _id(request)
    try:
        await request.app[TICKETS].add_entry(request[keys.USER], ticket_id, str(form.get("body") or ""))
    except TicketNotFound:
        raise web.HTTPNotFound() from None
    except TicketError as exc:
        ticket = await request.app[TICKETS].get(ticket_id)
        return await render_form(request, ticket=ticket, values=_values_of(ticket), error=str(exc),
                                 status=_status_for(exc))
    raise web.HTTPFound(f"/tickets/{ticket_id}#entries")


async def _entry_change(request: web.Request, delete: bool) -> web.StreamResponse:
    form = await request.post()
    ticket_id = int(str(form.get("ticket_id") or "0")) if str(form.get("ticket_id") or "").isdigit() else 0
    service = request.app[TICKETS]
    try:
        if delete:
            await service.delete_entry(request[keys.USER], _id(request))
        else:
            await service.edit_entry(request[keys.USER], _id(request), str(form.get("body") or ""))
    except TicketNotFound:
        raise web.HTTPNotFound() from None
    except TicketError as exc:
        if not ticket_id:
            return request.app[keys.RENDERER].render(request, "error.html", status=_status_for(exc),
                                                     message=str(exc))
        ticket = await service.get(ticket_id)
        return await render_form(request, ticket=ticket, values=_values_of(ticket), error=str(exc),
                                 status=_status_for(exc))
    raise web.HTTPFound(f"/tickets/{ticket_id}#entries" if ticket_id else "/inbox")


@routes.post(r"/tickets/entries/{id:\d+}/edit", role="agent")
async def edit_entry_submit(request: web.Request) -> web.StreamResponse:
    return await _entry_change(request, delete=False)


@routes.post(r"/tickets/entries/{id:\d+}/delete", role="agent")
async def delete_entry_submit(request: web.Request) -> web.StreamResponse:
    return await _entry_change(request, delete=True)


# ---- consultation types (supervisor+) ---------------------------------------------------------------------------
async def _types_page(request: web.Request, *, error: str = "", status: int = 200) -> web.Response:
    return request.app[keys.RENDERER].render(request, "tickets/types.html", status=status, error=error,
                                             tree=await request.app[CTYPES].tree())


@routes.get("/admin/consultation-types", role="supervisor")
async def types_page(request: web.Request) -> web.StreamResponse:
    return await _types_page(request)


@routes.post("/admin/consultation-types", role="supervisor")
async def types_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    service = request.app[CTYPES]
    op = str(form.get("op") or "add")
    raw_id = str(form.get("id") or form.get("parent_id") or "")
    type_id = int(raw_id) if raw_id.isdigit() else None
    try:
        if op == "add":
            await service.add(str(form.get("name") or ""), parent_id=type_id)
        elif op == "rename" and type_id:
            await service.rename(type_id, str(form.get("name") or ""))
        elif op == "delete" and type_id:
            await service.delete(type_id)
        else:
            raise ConsultationTypeError(f"알 수 없는 작업입니다: {op}")
    except ConsultationTypeError as exc:
        return await _types_page(request, error=str(exc), status=422)
    raise web.HTTPFound("/admin/consultation-types")


# ---- JSON API -------------------------------------------------------------------------------------------------
@routes.post("/api/tickets", role="agent", summary="Create a ticket (접수), or temp-save it with temp=true",
             body=TICKET_SCHEMA, responses={201: '{"ticket": {...}}', 422: "refused: error says why"})
async def api_create(request: web.Request) -> web.StreamResponse:
    try:
        data = await _json(request)
        ticket = await perform(request, "temp" if data.get("temp") else "save", None, data, partial=True)
    except TicketError as exc:
        return _err(exc, _status_for(exc))
    return json_response({"ticket": ticket_json(ticket)}, 201)


@routes.get("/api/tickets", role="agent", summary="Ticket lists: the inbox tabs, a customer's or an order's",
            params=(Param("tab", description="my_open | received_transfers | sent_transfers | unfinished | recall | "
                                             "temp | customer | order"),
                    Param("customer_id", type="integer"), Param("order_id", type="integer"),
                    Param("limit", type="integer")),
            responses={200: '{"tickets": [...]}', 422: "unknown list"})
async def api_list(request: web.Request) -> web.StreamResponse:
    query = request.query
    try:
        limit = max(1, min(int(query.get("limit", "200")), 1000))
        customer_id = int(query["customer_id"]) if query.get("customer_id") else None
        order_id = int(query["order_id"]) if query.get("order_id") else None
        rows = await request.app[TICKETS].list(tab=query.get("tab", "my_open"), user=request[keys.USER],
                                               customer_id=customer_id, order_id=order_id, limit=limit)
    except ValueError as exc:
        return _err(exc, 422)
    now = utcnow()
    return json_response({"tickets": [ticket_json(t, now) for t in rows]})


@routes.get(r"/api/tickets/{id:\d+}", role="agent", summary="One ticket with its entries and history",
            responses={200: '{"ticket", "entries", "history"}', 404: "no such ticket"})
async def api_get(request: web.Request) -> web.StreamResponse:
    service = request.app[TICKETS]
    try:
        ticket = await service.get(_id(request))
    except TicketNotFound as exc:
        return _err(exc, 404)
    entries = [{"id": e.id, "author_id": e.author_id, "body": e.body, "created_at": e.created_at.isoformat(),
                "updated_at": e.updated_at.isoformat() if e.updated_at else None}
               for e in await service.entries(ticket.id)]
    history = [{"user_id": h.user_id, "action": h.action, "detail": h.detail, "at": h.at.isoformat()}
               for h in await service.history(ticket.id)]
    return json_response({"ticket": ticket_json(ticket), "entries": entries, "history": history})


@routes.post(r"/api/tickets/{id:\d+}/{action:(save|temp|transfer|complete|edit|discard|additional|recall_done)}",
             role="agent", summary="A button of the ticket bar: save (F4) | transfer (F5, assignee_id required) | "
                                   "complete (F6) | edit (F7, no state change) | temp (F12) | discard | "
                                   "additional (F8, a new ticket for the same customer) | recall_done",
             params=(Param("id", "path", "integer", True), Param("action", "path", required=True)),
             body={**TICKET_SCHEMA, "properties": {**TICKET_SCHEMA["properties"],
                                                   "assignee_id": {"type": "integer"}, "note": {"type": "string"},
                                                   "reason": {"type": "string"}}},
             responses={200: '{"ticket": {...}}', **ERRORS})
async def api_action(request: web.Request) -> web.StreamResponse:
    try:
        data = await _json(request)
        ticket = await perform(request, request.match_info["action"], _id(request), data, partial=True)
    except TicketError as exc:
        return _err(exc, _status_for(exc))
    return json_response({"ticket": ticket_json(ticket)})


@routes.post(r"/api/tickets/{id:\d+}/entries", role="agent", summary="Add an entry (상담내용) to a ticket",
             params=(Param("id", "path", "integer", True),),
             body={"type": "object", "properties": {"body": {"type": "string"}}, "required": ["body"]},
             responses={201: '{"entry": {...}}', **ERRORS})
async def api_add_entry(request: web.Request) -> web.StreamResponse:
    try:
        data = await _json(request)
        entry = await request.app[TICKETS].add_entry(request[keys.USER], _id(request), str(data.get("body") or ""))
    except TicketError as exc:
        return _err(exc, _status_for(exc))
    return json_response({"entry": {"id": entry.id, "ticket_id": entry.ticket_id, "body": entry.body}}, 201)


@routes.put(r"/api/ticket-entries/{id:\d+}", role="agent",
            summary="Edit an entry: its author within 1 day, or anyone with the edit_consultations permission",
            params=(Param("id", "path", "integer", True),),
            body={"type": "object", "properties": {"body": {"type": "string"}}, "required": ["body"]},
            responses={200: '{"entry": {...}}', **ERRORS})
async def api_edit_entry(request: web.Request) -> web.StreamResponse:
    try:
        data = await _json(request)
        entry = await request.app[TICKETS].edit_entry(request[keys.USER], _id(request), str(data.get("body") or ""))
    except TicketError as exc:
        return _err(exc, _status_for(exc))
    return json_response({"entry": {"id": entry.id, "ticket_id": entry.ticket_id, "body": entry.body}})


@routes.delete(r"/api/ticket-entries/{id:\d+}", role="agent",
               summary="Delete an entry (same rule as editing)", params=(Param("id", "path", "integer", True),),
               responses={200: '{"ok": true}', **ERRORS})
async def api_delete_entry(request: web.Request) -> web.StreamResponse:
    try:
        await request.app[TICKETS].delete_entry(request[keys.USER], _id(request))
    except TicketError as exc:
        return _err(exc, _status_for(exc))
    return json_response({"ok": True})


@routes.get("/api/consultation-types", role="agent", summary="The three-level consultation types",
            responses={200: '{"types": [{"id", "level", "name", "parent_id", "used"}]}'})
async def api_types(request: web.Request) -> web.StreamResponse:
    return json_response({"types": _flatten(await request.app[CTYPES].tree())})


@routes.post("/api/consultation-types", role="supervisor", summary="Add a consultation type (level from parent)",
             body={"type": "object", "properties": {"name": {"type": "string"},
                                                    "parent_id": {"type": ["integer", "null"]}},
                   "required": ["name"]},
             responses={201: '{"type": {...}}', 422: "duplicate within its level, or a fourth level"})
async def api_add_type(request: web.Request) -> web.StreamResponse:
    try:
        data = await _json(request)
        parent = data.get("parent_id")
        node = await request.app[CTYPES].add(str(data.get("name") or ""),
                                             parent_id=int(parent) if parent not in (None, "") else None)
    except (TicketError, ConsultationTypeError, ValueError) as exc:
        return _err(exc, 422)
    return json_response({"type": {"id": node.id, "level": node.level, "name": node.name,
                                   "parent_id": node.parent_id}}, 201)


@routes.put(r"/api/consultation-types/{id:\d+}", role="supervisor", summary="Rename an unused consultation type",
            params=(Param("id", "path", "integer", True),),
            body={"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
            responses={200: '{"ok": true}', 422: "used by a ticket, or duplicate"})
async def api_rename_type(request: web.Request) -> web.StreamResponse:
    try:
        data = await _json(request)
        await request.app[CTYPES].rename(_id(request), str(data.get("name") or ""))
    except (TicketError, ConsultationTypeError) as exc:
        return _err(exc, 422)
    return json_response({"ok": True})


@routes.delete(r"/api/consultation-types/{id:\d+}", role="supervisor", summary="Delete an unused consultation type",
               params=(Param("id", "path", "integer", True),),
               responses={200: '{"ok": true}', 422: "used by a ticket, or has sub-types"})
async def api_delete_type(request: web.Request) -> web.StreamResponse:
    try:
        await request.app[CTYPES].delete(_id(request))
    except ConsultationTypeError as exc:
        return _err(exc, 422)
    return json_response({"ok": True})


# ---- the customer page's "tickets" tab -----------------------------------------------------------------------
async def tickets_tab(request: web.Request, customer: Customer) -> Markup:
    rows = await request.app[TICKETS].list(tab="customer", customer_id=customer.id, limit=100)
    html = request.app[keys.RENDERER].env.get_template("tickets/_table.html").render(
        t=catalogue_for(request).t, tickets=rows, now=utcnow(), is_overdue=is_overdue, local_time=local_time,
        names={}, empty_key="tickets.empty.customer", new_url=f"/tickets/new?customer_id={customer.id}")
    return Markup(html)


def customer_tab() -> CustomerTab:
    return CustomerTab("tickets", "tickets.tab", tickets_tab, order=25)  # after calls, callbacks


def setup(app: web.Application) -> None:
    services = app[keys.SERVICES]
    app[TICKETS] = TicketService(services.db, services.bus)
    app[CTYPES] = ConsultationTypeService(services.db)
    app[keys.CUSTOMER_TABS].add(customer_tab())


__all__ = ["routes", "setup", "perform", "ticket_json", "parse_local_time", "OPEN_STATUSES", "json_error"]
