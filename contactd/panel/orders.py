"""Order pages and JSON API (seed 003 §23-8/9, seed 004): unified order search with period presets, order detail,
create/edit/delete, returns and exchanges (each opens a linked CS ticket), linking an order or one line to the
ticket being written (/orders?ticket=12), and the customer page's "orders" tab.

Handlers call crm.orders; they never build SQL.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from aiohttp import web
from markupsafe import Markup

from ..crm.orders import PERIODS, LineInput, OrderError, OrderService, OrderView, ProductService
from ..crm.phone import display as phone_display
from ..crm.tickets import TicketError, TicketForbidden, TicketNotFound, TicketService
from ..store.models import ORDER_STATUSES, Customer
from . import keys
from .auth import client_ip
from .render import SEOUL, catalogue_for, json_response, local_time
from .routing import PanelRoutes, Param
from .tabs import CustomerTab

routes = PanelRoutes("orders")

SEARCH_FIELDS = ("order_no", "invoice", "name", "phone")
TEXT_FIELDS = ("order_no", "customer_name", "recipient_name", "phone", "zip", "address", "invoice", "request")
BLANK_LINES = 2  # empty product rows offered on the form
ERRORS = {404: "no such order", 422: "refused: error says why (Korean)"}
LINE_SCHEMA = {"type": "object", "properties": {"product_name": {"type": "string"}, "quantity": {"type": "integer"},
                                                "amount": {"type": "integer"}, "product_id": {"type": "integer"}}}
ORDER_SCHEMA: dict[str, Any] = {"type": "object", "properties": {
    **{name: {"type": "string"} for name in TEXT_FIELDS}, "order_date": {"type": "string", "format": "date"},
    "status": {"type": "string", "enum": list(ORDER_STATUSES)}, "source_id": {"type": ["integer", "null"]},
    "customer_id": {"type": ["integer", "null"]}, "lines": {"type": "array", "items": LINE_SCHEMA}}}


class NotFound(OrderError):
    pass


# ---- conversions -------------------------------------------------------------------------------------------------
def order_json(view: OrderView) -> dict[str, Any]:
    order = view.order
    return {
        "id": order.id, "order_no": order.order_no, "source_id": order.source_id, "source": view.source,
        "customer_id": order.customer_id, "customer_name": order.customer_name,
        "recipient_name": order.recipient_name, "phone": order.phone, "phone_display": phone_display(order.phone),
        "order_date": order.order_date.isoformat(), "status": order.status, "zip": order.zip,
        "address": order.address, "invoice": order.invoice, "request": order.request,
        "total": sum(line.amount for line in view.lines),
        "lines": [{"id": line.id, "product_id": line.product_id, "product_name": line.product_name,
                   "quantity": line.quantity, "amount": line.amount, "status": line.status} for line in view.lines],
        "tickets": [{"id": t.id, "number": t.number, "title": t.title, "status": t.status} for t in view.tickets],
    }


def _int(raw: Any, label: str, *, default: int | None = None) -> int | None:
    text = str(raw if raw is not None else "").replace(",", "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise OrderError(f"{label}: 숫자가 아닙니다 ({text})") from None


def _date(raw: Any) -> date:
    text = str(raw or "").strip()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise OrderError(f"주문일 형식이 올바르지 않습니다 (YYYY-MM-DD): {text}") from None


def lines_from_form(form: Any) -> list[LineInput]:
    """Parallel line_* fields; a row with no product name and no product chosen is a blank row and is skipped."""
    names = form.getall("line_name", [])
    products = form.getall("line_product_id", [])
    quantities = form.getall("line_quantity", [])
    amounts = form.getall("line_amount", [])
    lines = []
    for index, name in enumerate(names):
        product_id = _int(products[index] if index < len(products) else "", "상품")
        if not str(name).strip() and product_id is None:
            continue
        lines.append(LineInput(str(name).strip(), _int(quantities[index] if index < len(quantities) else "", "수량",
                                                       default=1) or 0,
                               _int(amounts[index] if index < len(amounts) else "", "결제금액", default=0) or 0,
                               product_id))
    return lines


def lines_from_json(items: Any) -> list[LineInput]:
    if not isinstance(items, list):
        raise OrderError("lines: 목록이어야 합니다")
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise OrderError("lines: 항목 형식이 올바르지 않습니다")
        out.append(LineInput(str(item.get("product_name") or "").strip(),
                             _int(item.get("quantity"), "수량", default=1) or 0,
                             _int(item.get("amount"), "결제금액", default=0) or 0,
                             _int(item.get("product_id"), "상품")))
    return out


async def _fill_product_names(request: web.Request, lines: list[LineInput]) -> list[LineInput]:
    """A line that picked a product but typed no name takes the product's name."""
    if any(line.product_id and not line.product_name for line in lines):
        products = {p.id: p for p in await request.app[keys.PRODUCTS].list()}
        for line in lines:
            if line.product_id and not line.product_name:
                product = products.get(line.product_id)
                if product is None:
                    raise OrderError("상품이 없습니다 (no such product)")
                line.product_name = product.name
    return lines


def fields_from(data: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {name: str(data.get(name) or "").strip() for name in TEXT_FIELDS if name in data}
    if "status" in data:
        fields["status"] = str(data.get("status") or "order")
    if "order_date" in data:
        fields["order_date"] = _date(data.get("order_date"))
    for name in ("source_id", "customer_id"):
        if name in data:
            fields[name] = _int(data.get(name), name)
    return fields


# ---- shared helpers ------------------------------------------------------------------------------------------------
def _id(request: web.Request) -> int:
    return int(request.match_info["id"])


async def _view(request: web.Request, order_id: int) -> OrderView:
    try:
        return await request.app[keys.ORDERS].view(order_id)
    except OrderError as exc:
        raise NotFound(str(exc)) from None


async def _audit(request: web.Request, action: str, target: str, detail: str = "") -> None:
    await request.app[keys.ACCOUNTS].audit(request[keys.USER].id, action, target, detail, ip=client_ip(request))


def _ticket_context(request: web.Request) -> int | None:
    raw = request.query.get("ticket", "")
    return int(raw) if raw.isdigit() else None


def _search_args(query: Any) -> dict[str, Any]:
    period = query.get("period") or "3months"
    args: dict[str, Any] = {"period": period if period in PERIODS else "3months"}
    for name in SEARCH_FIELDS:
        args[name] = str(query.get(name) or "")[:100]
    if str(query.get("customer_id") or "").isdigit():
        args["customer_id"] = int(query["customer_id"])
    return args


async def _ticket(request: web.Request, ticket_id: int | None) -> Any:
    if ticket_id is None:
        return None
    try:
        return await request.app[keys.TICKETS].get(ticket_id)
    except TicketNotFound:
        return None


def _today() -> date:
    from ..store.models import utcnow

    return utcnow().astimezone(SEOUL).date()


# ---- pages ---------------------------------------------------------------------------------------------------------
@routes.get("/orders", role="agent")
async def list_page(request: web.Request) -> web.StreamResponse:
    args = _search_args(request.query)
    error = ""
    found: list[OrderView] = []
    try:
        found = await request.app[keys.ORDERS].search(limit=200, **args)
    except OrderError as exc:
        error = str(exc)
    ticket_id = _ticket_context(request)
    return request.app[keys.RENDERER].render(
        request, "orders/list.html", status=422 if error else 200, orders=found, args=args, periods=tuple(PERIODS),
        error=error, ticket=await _ticket(request, ticket_id), ticket_id=ticket_id)


async def _form_page(request: web.Request, *, order: OrderView | None, values: dict[str, Any],
                     lines: list[dict[str, Any]], error: str = "", status: int = 200) -> web.Response:
    app = request.app
    sources = await app[keys.ORDERS].sources()
    products = await app[keys.PRODUCTS].list()
    rows = lines + [{"product_id": None, "product_name": "", "quantity": 1, "amount": ""}] * BLANK_LINES
    return app[keys.RENDERER].render(request, "orders/form.html", status=status, order=order, values=values,
                                     lines=rows, sources=sources, products=products, statuses=ORDER_STATUSES,
                                     error=error)


def _line_rows(lines: list[LineInput]) -> list[dict[str, Any]]:
    return [{"product_id": line.product_id, "product_name": line.product_name, "quantity": line.quantity,
             "amount": line.amount} for line in lines]


@routes.get("/orders/new", role="agent")
async def new_page(request: web.Request) -> web.StreamResponse:
    values: dict[str, Any] = {name: "" for name in TEXT_FIELDS}
    values.update(status="order", order_date=_today().isoformat(), source_id=None, customer_id=None)
    customer_id = request.query.get("customer_id", "")
    if customer_id.isdigit():
        customer: Customer | None = None
        try:
            customer = await request.app[keys.CUSTOMERS].get(int(customer_id))
        except Exception:  # a stale link: the form simply starts empty
            customer = None
        if customer is not None:
            values.update(customer_id=customer.id, customer_name=customer.name, recipient_name=customer.name,
                          phone=customer.mobile or customer.phone or "", zip=customer.zip, address=customer.address)
    return await _form_page(request, order=None, values=values, lines=[])


@routes.post("/orders/new", role="agent")
async def create_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    values = {name: str(form.get(name) or "") for name in (*TEXT_FIELDS, "status", "order_date", "source_id",
                                                           "customer_id")}
    try:
        fields = fields_from(form)
        lines = await _fill_product_names(request, lines_from_form(form))
        order_no = fields.pop("order_no", "")
        order_date = fields.pop("order_date")
        source_id = fields.pop("source_id", None)
        order = await request.app[keys.ORDERS].create(order_no=order_no, order_date=order_date, lines=lines,
                                                      source_id=source_id, **fields)
    except OrderError as exc:
        rows = []
        try:
            rows = _line_rows(lines_from_form(form))
        except OrderError:
            pass
        return await _form_page(request, order=None, values=values, lines=rows, error=str(exc), status=422)
    await _audit(request, "order.create", f"order:{order.id}", order.order_no)
    raise web.HTTPFound(f"/orders/{order.id}")


@routes.get(r"/orders/{id:\d+}", role="agent")
async def view_page(request: web.Request) -> web.StreamResponse:
    try:
        view = await _view(request, _id(request))
    except NotFound:
        raise web.HTTPNotFound() from None
    return await _render_view(request, view)


async def _render_view(request: web.Request, view: OrderView, *, error: str = "", status: int = 200
                       ) -> web.Response:
    app = request.app
    ticket_id = _ticket_context(request)
    created = request.query.get("created", "")
    values = {name: getattr(view.order, name) for name in TEXT_FIELDS}
    values.update(status=view.order.status, order_date=view.order.order_date.isoformat(),
                  source_id=view.order.source_id, customer_id=view.order.customer_id)
    return app[keys.RENDERER].render(
        request, "orders/view.html", status=status, view=view, order=view.order, error=error,
        ticket=await _ticket(request, ticket_id), ticket_id=ticket_id,
        created=int(created) if created.isdigit() else None, linked=request.query.get("linked") == "1",
        products=await app[keys.PRODUCTS].list(), sources=await app[keys.ORDERS].sources(),
        statuses=ORDER_STATUSES, values=values, lines=_line_rows(
            [LineInput(line.product_name, line.quantity, line.amount, line.product_id) for line in view.lines])
        + [{"product_id": None, "product_name": "", "quantity": 1, "amount": ""}] * BLANK_LINES)


async def _after_error(request: web.Request, order_id: int, exc: Exception) -> web.Response:
    try:
        view = await _view(request, order_id)
    except NotFound:
        raise web.HTTPNotFound() from None
    status = 403 if isinstance(exc, TicketForbidden) else 422
    return await _render_view(request, view, error=str(exc), status=status)


@routes.post(r"/orders/{id:\d+}/edit", role="agent")
async def edit_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    order_id = _id(request)
    try:
        await _view(request, order_id)
        fields = fields_from(form)
        lines = await _fill_product_names(request, lines_from_form(form))
        await request.app[keys.ORDERS].update(order_id, lines=lines, **fields)
    except NotFound:
        raise web.HTTPNotFound() from None
    except OrderError as exc:
        return await _after_error(request, order_id, exc)
    await _audit(request, "order.update", f"order:{order_id}")
    raise web.HTTPFound(f"/orders/{order_id}")


@routes.post(r"/orders/{id:\d+}/delete", role="supervisor")
async def delete_submit(request: web.Request) -> web.StreamResponse:
    order_id = _id(request)
    try:
        view = await _view(request, order_id)
        await request.app[keys.ORDERS].delete(order_id)
    except NotFound:
        raise web.HTTPNotFound() from None
    await _audit(request, "order.delete", f"order:{order_id}", view.order.order_no)
    raise web.HTTPFound("/orders")


def _line_ids(values: list[Any]) -> list[int]:
    return [int(v) for v in values if str(v).isdigit()]


async def _return_or_exchange(request: web.Request, order_id: int, data: Any, line_ids: list[int],
                              kind: str) -> Any:
    service: OrderService = request.app[keys.ORDERS]
    user = request[keys.USER]
    reason = str(data.get("reason") or "").strip()[:500]
    if kind == "return":
        return await service.start_return(user, order_id, line_ids, reason)
    if kind == "same":
        return await service.start_exchange(user, order_id, line_ids, reason=reason)
    if kind == "other":
        product_id = _int(data.get("new_product_id"), "교환 상품")
        if product_id is None:
            raise OrderError("교환할 상품을 선택하세요 (choose the new product)")
        return await service.start_exchange(user, order_id, line_ids, reason=reason, new_product_id=product_id,
                                            new_amount=_int(data.get("new_amount"), "판매가", default=0),
                                            new_quantity=_int(data.get("new_quantity"), "수량", default=1))
    raise OrderError(f"알 수 없는 처리입니다: {kind}")


@routes.post(r"/orders/{id:\d+}/claim", role="agent")
async def claim_submit(request: web.Request) -> web.StreamResponse:
    """반품 / 동일상품 교환 / 다른상품 교환: the button pressed is `kind`."""
    form = await request.post()
    order_id = _id(request)
    kind = str(form.get("kind") or "")
    try:
        await _view(request, order_id)
        ticket = await _return_or_exchange(request, order_id, form, _line_ids(form.getall("line", [])), kind)
    except NotFound:
        raise web.HTTPNotFound() from None
    except (OrderError, TicketError) as exc:
        return await _after_error(request, order_id, exc)
    await _audit(request, f"order.{'return' if kind == 'return' else 'exchange'}", f"order:{order_id}",
                 f"ticket:{ticket.id}")
    raise web.HTTPFound(f"/orders/{order_id}?created={ticket.id}")


@routes.post(r"/orders/{id:\d+}/link", role="agent")
async def link_submit(request: web.Request) -> web.StreamResponse:
    """접수에 연결: the whole order, or the one line given."""
    form = await request.post()
    order_id = _id(request)
    ticket_id = _int(form.get("ticket_id"), "접수")
    try:
        await _view(request, order_id)
        if ticket_id is None:
            raise OrderError("연결할 접수가 없습니다 (no ticket given)")
        await request.app[keys.ORDERS].link_ticket(request[keys.USER], ticket_id, order_id,
                                                   _int(form.get("line_id"), "상품"))
    except NotFound:
        raise web.HTTPNotFound() from None
    except (OrderError, TicketError) as exc:
        return await _after_error(request, order_id, exc)
    await _audit(request, "order.link", f"order:{order_id}", f"ticket:{ticket_id}")
    raise web.HTTPFound(f"/orders/{order_id}?ticket={ticket_id}&linked=1")


# ---- JSON API ------------------------------------------------------------------------------------------------------
def _api_error(exc: Exception) -> web.Response:
    if isinstance(exc, NotFound | TicketNotFound):
        status = 404
    elif isinstance(exc, TicketForbidden):
        status = 403
    else:
        status = 422
    return json_response({"error": str(exc), "code": type(exc).__name__}, status)


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json() if request.can_read_body else {}
    except ValueError:
        raise OrderError("요청 형식(JSON)이 올바르지 않습니다") from None
    if not isinstance(data, dict):
        raise OrderError("요청 형식(JSON)이 올바르지 않습니다")
    return data


@routes.get("/api/orders", role="agent", summary="Unified order search (통합주문검색)",
            params=(Param("period", description="today | week | month | 3months (default) | all"),
                    Param("order_no"), Param("invoice"), Param("name", description="orderer or recipient"),
                    Param("phone", description="(partial) number"), Param("customer_id", type="integer")),
            responses={200: '{"orders": [...]}', 422: "bad period or phone"})
async def api_search(request: web.Request) -> web.StreamResponse:
    try:
        found = await request.app[keys.ORDERS].search(limit=200, **_search_args(request.query))
    except OrderError as exc:
        return _api_error(exc)
    return json_response({"orders": [order_json(v) for v in found]})


@routes.get("/api/order-sources", role="agent", summary="Order sources (they grow only by Excel import)",
            responses={200: '{"sources": [{"id", "name"}]}'})
async def api_sources(request: web.Request) -> web.StreamResponse:
    return json_response({"sources": [{"id": s.id, "name": s.name} for s in await request.app[keys.ORDERS].sources()]})


@routes.get(r"/api/orders/{id:\d+}", role="agent", summary="One order with its lines and linked tickets",
            params=(Param("id", "path", "integer", True),), responses={200: '{"order": {...}}', **ERRORS})
async def api_get(request: web.Request) -> web.StreamResponse:
    try:
        return json_response({"order": order_json(await _view(request, _id(request)))})
    except OrderError as exc:
        return _api_error(exc)


@routes.post("/api/orders", role="agent", summary="Create an order (source must already exist)", body=ORDER_SCHEMA,
             responses={201: '{"order": {...}}', 422: "refused: error says why"})
async def api_create(request: web.Request) -> web.StreamResponse:
    try:
        data = await _json(request)
        fields = fields_from(data)
        lines = await _fill_product_names(request, lines_from_json(data.get("lines") or []))
        order = await request.app[keys.ORDERS].create(
            order_no=fields.pop("order_no", ""), order_date=fields.pop("order_date", None) or _today(),
            source_id=fields.pop("source_id", None), lines=lines, **fields)
        view = await _view(request, order.id)
    except OrderError as exc:
        return _api_error(exc)
    await _audit(request, "order.create", f"order:{order.id}", order.order_no)
    return json_response({"order": order_json(view)}, 201)


@routes.put(r"/api/orders/{id:\d+}", role="agent", summary="Change an order (lines, when given, replace all)",
            params=(Param("id", "path", "integer", True),), body=ORDER_SCHEMA,
            responses={200: '{"order": {...}}', **ERRORS})
async def api_update(request: web.Request) -> web.StreamResponse:
    order_id = _id(request)
    try:
        await _view(request, order_id)
        data = await _json(request)
        lines = await _fill_product_names(request, lines_from_json(data["lines"])) if "lines" in data else None
        await request.app[keys.ORDERS].update(order_id, lines=lines, **fields_from(data))
        view = await _view(request, order_id)
    except OrderError as exc:
        return _api_error(exc)
    await _audit(request, "order.update", f"order:{order_id}")
    return json_response({"order": order_json(view)})


@routes.delete(r"/api/orders/{id:\d+}", role="supervisor", summary="Delete an order and its lines",
               params=(Param("id", "path", "integer", True),), responses={200: '{"ok": true}', **ERRORS})
async def api_delete(request: web.Request) -> web.StreamResponse:
    order_id = _id(request)
    try:
        view = await _view(request, order_id)
        await request.app[keys.ORDERS].delete(order_id)
    except OrderError as exc:
        return _api_error(exc)
    await _audit(request, "order.delete", f"order:{order_id}", view.order.order_no)
    return json_response({"ok": True})


@routes.post(r"/api/orders/{id:\d+}/{kind:(return|same|other)}", role="agent",
             summary="반품 (return) | 동일상품 교환 (same) | 다른상품 교환 (other: new_product_id, new_amount, "
                     "new_quantity): marks the lines and opens a linked ticket",
             params=(Param("id", "path", "integer", True), Param("kind", "path", required=True)),
             body={"type": "object", "required": ["line_ids"], "properties": {
                 "line_ids": {"type": "array", "items": {"type": "integer"}}, "reason": {"type": "string"},
                 "new_product_id": {"type": "integer"}, "new_amount": {"type": "integer"},
                 "new_quantity": {"type": "integer"}}},
             responses={201: '{"ticket": {"id", "number", "title"}}', **ERRORS})
async def api_claim(request: web.Request) -> web.StreamResponse:
    order_id = _id(request)
    kind = request.match_info["kind"]
    try:
        await _view(request, order_id)
        data = await _json(request)
        raw = data.get("line_ids") or []
        if not isinstance(raw, list):
            raise OrderError("line_ids: 목록이어야 합니다")
        ticket = await _return_or_exchange(request, order_id, data, _line_ids(raw), kind)
    except (OrderError, TicketError) as exc:
        return _api_error(exc)
    await _audit(request, f"order.{'return' if kind == 'return' else 'exchange'}", f"order:{order_id}",
                 f"ticket:{ticket.id}")
    return json_response({"ticket": {"id": ticket.id, "number": ticket.number, "title": ticket.title,
                                     "body": ticket.body, "order_id": ticket.order_id,
                                     "order_line_id": ticket.order_line_id}}, 201)


@routes.post(r"/api/orders/{id:\d+}/link", role="agent", summary="Link the order (or one line) to a ticket",
             params=(Param("id", "path", "integer", True),),
             body={"type": "object", "required": ["ticket_id"], "properties": {
                 "ticket_id": {"type": "integer"}, "line_id": {"type": ["integer", "null"]}}},
             responses={200: '{"ticket": {"id", "order_id", "order_line_id"}}', **ERRORS})
async def api_link(request: web.Request) -> web.StreamResponse:
    order_id = _id(request)
    try:
        await _view(request, order_id)
        data = await _json(request)
        ticket_id = _int(data.get("ticket_id"), "ticket_id")
        if ticket_id is None:
            raise OrderError("연결할 접수가 없습니다 (no ticket given)")
        ticket = await request.app[keys.ORDERS].link_ticket(request[keys.USER], ticket_id, order_id,
                                                            _int(data.get("line_id"), "line_id"))
    except (OrderError, TicketError) as exc:
        return _api_error(exc)
    await _audit(request, "order.link", f"order:{order_id}", f"ticket:{ticket_id}")
    return json_response({"ticket": {"id": ticket.id, "number": ticket.number, "order_id": ticket.order_id,
                                     "order_line_id": ticket.order_line_id}})


# ---- the customer page's "orders" tab ------------------------------------------------------------------------------
async def orders_tab(request: web.Request, customer: Customer) -> Markup:
    found = await request.app[keys.ORDERS].search(period="all", customer_id=customer.id, limit=100)
    html = request.app[keys.RENDERER].env.get_template("orders/_table.html").render(
        t=catalogue_for(request).t, orders=found, ticket_id=None, csrf_token="", local_time=local_time,
        new_url=f"/orders/new?customer_id={customer.id}")
    return Markup(html)


def setup(app: web.Application) -> None:
    services = app[keys.SERVICES]
    tickets = app.get(keys.TICKETS)
    if tickets is None:  # panel/tickets.py may be installed after us: both wrap the same database and bus
        tickets = TicketService(services.db, services.bus)
        app[keys.TICKETS] = tickets
    app[keys.ORDERS] = OrderService(services.db, tickets)
    if keys.PRODUCTS not in app:
        app[keys.PRODUCTS] = ProductService(services.db)
    app[keys.CUSTOMER_TABS].add(CustomerTab("orders", "orders.tab", orders_tab, order=30))
