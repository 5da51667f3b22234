"""Customer pages and JSON API: search, create, edit, delete, tabs, Excel upload and export (seed 003 §23, §28).

Handlers call crm.customers / crm.customer_import; they never build SQL.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from markupsafe import Markup

from ..crm.customer_import import IMPORT_FIELDS, CustomerImportError, import_customers, preview
from ..crm.customers import FLAG_FIELDS, SEARCH_FIELDS, CustomerError, CustomerNotFound
from ..crm.phone import display as phone_display
from ..store.models import Customer
from . import keys
from .auth import client_ip
from .render import error_text, json_error, json_response
from .routing import PanelRoutes, Param
from .tabs import TabContent

routes = PanelRoutes("customers")
FORM_FIELDS = ("name", "mobile", "phone", "zip", "address", "memo")
MAX_UPLOAD = 20 * 1024 * 1024

CUSTOMER_SCHEMA = {"type": "object", "properties": {
    "name": {"type": "string"}, "mobile": {"type": "string"}, "phone": {"type": "string"},
    "zip": {"type": "string"}, "address": {"type": "string"}, "memo": {"type": "string"},
    "vip": {"type": "boolean"}, "caution": {"type": "boolean"}, "sms_opt_out": {"type": "boolean"}}}
CRUD_RESPONSES = {200: "the customer", 404: "no such customer", 422: "invalid field (error says which)"}


def customer_json(customer: Customer) -> dict[str, Any]:
    return {"id": customer.id, "name": customer.name, "mobile": customer.mobile,
            "mobile_display": phone_display(customer.mobile or ""), "phone": customer.phone,
            "phone_display": phone_display(customer.phone or ""), "zip": customer.zip, "address": customer.address,
            "memo": customer.memo, "vip": customer.vip, "caution": customer.caution,
            "sms_opt_out": customer.sms_opt_out}


def _customer_id(request: web.Request) -> int:
    return int(request.match_info["id"])


def _form_values(form: Any, *, flags: bool = True) -> dict[str, Any]:
    values: dict[str, Any] = {key: str(form.get(key, "")) for key in FORM_FIELDS if key in form}
    if flags:  # an unchecked checkbox is simply absent from the form
        for key in FLAG_FIELDS:
            values[key] = form.get(key) in ("1", "on", "true")
    return values


async def _audit(request: web.Request, action: str, target: str, detail: str = "") -> None:
    await request.app[keys.ACCOUNTS].audit(request[keys.USER].id, action, target, detail, ip=client_ip(request))


# ---- pages ----------------------------------------------------------------------------------------------------
@routes.get("/customers", role="agent")
async def list_page(request: web.Request) -> web.StreamResponse:
    query = request.query.get("q", "")
    field = request.query.get("field", "all")
    if field not in SEARCH_FIELDS:
        field = "all"
    found = await request.app[keys.CUSTOMERS].search(query, field=field, limit=200)
    return request.app[keys.RENDERER].render(request, "customers/list.html", customers=found, q=query,
                                             field=field, fields=SEARCH_FIELDS)


@routes.get("/customers/new", role="agent")
async def new_page(request: web.Request) -> web.StreamResponse:
    values = {key: request.query.get(key, "") for key in FORM_FIELDS}
    return request.app[keys.RENDERER].render(request, "customers/form.html", values=values, flags={},
                                             error="", customer=None)


@routes.post("/customers/new", role="agent")
async def create_page(request: web.Request) -> web.StreamResponse:
    values = _form_values(await request.post())
    try:
        customer = await request.app[keys.CUSTOMERS].create(**values)
    except CustomerError as exc:
        return request.app[keys.RENDERER].render(request, "customers/form.html", status=422, values=values,
                                                 flags=values, error=error_text(request, exc), customer=None)
    await _audit(request, "customer.create", f"customer:{customer.id}")
    raise web.HTTPFound(f"/customers/{customer.id}")


@routes.get(r"/customers/{id:\d+}", role="agent")
async def view_page(request: web.Request) -> web.StreamResponse:
    app = request.app
    try:
        customer = await app[keys.CUSTOMERS].get(_customer_id(request))
    except CustomerNotFound:
        raise web.HTTPNotFound() from None
    tabs = app[keys.CUSTOMER_TABS].visible(request[keys.USER])
    active = next((t for t in tabs if t.name == request.query.get("tab")), tabs[0] if tabs else None)
    content: TabContent | Markup | None = await active.loader(request, customer) if active else None
    return app[keys.RENDERER].render(request, "customers/view.html", customer=customer, tabs=tabs,
                                     active=active, content=content, is_markup=isinstance(content, Markup),
                                     error="", values=None)


@routes.post(r"/customers/{id:\d+}/edit", role="agent")
async def edit_page(request: web.Request) -> web.StreamResponse:
    app = request.app
    customer_id = _customer_id(request)
    values = _form_values(await request.post())
    try:
        await app[keys.CUSTOMERS].update(customer_id, **values)
    except CustomerNotFound:
        raise web.HTTPNotFound() from None
    except CustomerError as exc:
        customer = await app[keys.CUSTOMERS].get(customer_id)
        return app[keys.RENDERER].render(request, "customers/view.html", status=422, customer=customer, tabs=[],
                                         active=None, content=None, is_markup=False,
                                         error=error_text(request, exc), values=values)
    await _audit(request, "customer.update", f"customer:{customer_id}")
    raise web.HTTPFound(f"/customers/{customer_id}")


@routes.post(r"/customers/{id:\d+}/delete", role="supervisor")
async def delete_page(request: web.Request) -> web.StreamResponse:
    try:
        customer = await request.app[keys.CUSTOMERS].delete(_customer_id(request))
    except CustomerNotFound:
        raise web.HTTPNotFound() from None
    await _audit(request, "customer.delete", f"customer:{customer.id}", customer.name)
    raise web.HTTPFound("/customers")


@routes.get("/customers/import", role="supervisor")
async def import_page(request: web.Request) -> web.StreamResponse:
    return request.app[keys.RENDERER].render(request, "customers/import.html", report=None, error="",
                                             fields=IMPORT_FIELDS, mapping={"name": "A", "mobile": "B", "phone": "C",
                                                                            "zip": "D", "address": "E", "memo": ""},
                                             start_row=2, sheet="")


async def _upload(request: web.Request) -> tuple[bytes, dict[str, Any]]:
    form = await request.post()
    upload = form.get("file")
    data = upload.file.read() if isinstance(upload, web.FileField) else b""
    return data, dict(form)


def _import_args(form: dict[str, Any]) -> tuple[str | None, int, dict[str, str | None]]:
    try:
        start_row = int(str(form.get("start_row") or "1"))
    except ValueError:
        raise CustomerImportError("import.err.start_row", "시작 행은 1 이상이어야 합니다") from None
    mapping = {key: str(form.get(f"col_{key}") or "") for key in IMPORT_FIELDS}
    sheet = str(form.get("sheet") or "") or None
    return sheet, start_row, mapping


@routes.post("/customers/import", role="supervisor")
async def import_submit(request: web.Request) -> web.StreamResponse:
    data, form = await _upload(request)
    sheet, start_row, mapping = None, 1, {key: str(form.get(f"col_{key}") or "") for key in IMPORT_FIELDS}
    context = {"fields": IMPORT_FIELDS, "mapping": mapping, "sheet": str(form.get("sheet") or ""),
               "start_row": form.get("start_row") or 2}
    try:
        if not data:
            raise CustomerImportError("import.err.no_file", "파일을 선택하세요")
        sheet, start_row, mapping = _import_args(form)
        report = await import_customers(request.app[keys.SERVICES].db, data, sheet=sheet, start_row=start_row,
                                        columns=mapping)
    except CustomerError as exc:
        return request.app[keys.RENDERER].render(request, "customers/import.html", status=422, report=None,
                                                 error=error_text(request, exc), **context)
    await _audit(request, "customer.import", f"sheet:{report.sheet}",
                 f"imported={report.imported} duplicates={len(report.duplicates)} errors={len(report.errors)}")
    return request.app[keys.RENDERER].render(request, "customers/import.html", report=report, error="", **context)


# ---- JSON API -------------------------------------------------------------------------------------------------
@routes.get("/api/customers", role="agent", summary="Search customers by name, number or address",
            params=(Param("q", description="text or (partial) number"),
                    Param("field", description="all | name | number | address"),
                    Param("limit", type="integer"), Param("offset", type="integer")),
            responses={200: '{"customers": [...]}', 422: "bad search field"})
async def api_search(request: web.Request) -> web.StreamResponse:
    try:
        limit = int(request.query.get("limit", "50"))
        offset = int(request.query.get("offset", "0"))
        found = await request.app[keys.CUSTOMERS].search(request.query.get("q", ""),
                                                         field=request.query.get("field", "all"),
                                                         limit=limit, offset=offset)
    except ValueError as exc:
        if isinstance(exc, CustomerError):
            return json_response({"error": error_text(request, exc), "code": exc.key}, 422)
        return json_error(request, 422, "api.err.bad_field", field="limit/offset")
    return json_response({"customers": [customer_json(c) for c in found]})


@routes.get("/api/customers/lookup", role="agent", summary="Who owns this number (mobile or phone)",
            params=(Param("number", required=True),), responses={200: '{"customers": [...]}'})
async def api_lookup(request: web.Request) -> web.StreamResponse:
    found = await request.app[keys.CUSTOMERS].find_by_number(request.query.get("number", ""))
    return json_response({"customers": [customer_json(c) for c in found]})


async def _json_body(request: web.Request) -> dict[str, Any] | None:
    try:
        data = await request.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


@routes.post("/api/customers", role="agent", summary="Create a customer", body=CUSTOMER_SCHEMA,
             responses={201: "the new customer", 422: "invalid field (error says which)"})
async def api_create(request: web.Request) -> web.StreamResponse:
    data = await _json_body(request)
    if data is None:
        return json_error(request, 422, "api.err.bad_json")
    try:
        customer = await request.app[keys.CUSTOMERS].create(**data)
    except CustomerError as exc:
        return json_response({"error": error_text(request, exc), "code": exc.key}, 422)
    await _audit(request, "customer.create", f"customer:{customer.id}")
    return json_response({"customer": customer_json(customer)}, 201)


@routes.get(r"/api/customers/{id:\d+}", role="agent", summary="One customer", responses=CRUD_RESPONSES)
async def api_get(request: web.Request) -> web.StreamResponse:
    try:
        customer = await request.app[keys.CUSTOMERS].get(_customer_id(request))
    except CustomerNotFound as exc:
        return json_response({"error": error_text(request, exc), "code": exc.key}, 404)
    return json_response({"customer": customer_json(customer)})


@routes.put(r"/api/customers/{id:\d+}", role="agent", summary="Change some fields of a customer",
            body=CUSTOMER_SCHEMA, responses=CRUD_RESPONSES)
async def api_update(request: web.Request) -> web.StreamResponse:
    data = await _json_body(request)
    if data is None:
        return json_error(request, 422, "api.err.bad_json")
    try:
        customer = await request.app[keys.CUSTOMERS].update(_customer_id(request), **data)
    except CustomerNotFound as exc:
        return json_response({"error": error_text(request, exc), "code": exc.key}, 404)
    except CustomerError as exc:
        return json_response({"error": error_text(request, exc), "code": exc.key}, 422)
    await _audit(request, "customer.update", f"customer:{customer.id}")
    return json_response({"customer": customer_json(customer)})


@routes.delete(r"/api/customers/{id:\d+}", role="supervisor", summary="Delete a customer",
               responses={200: '{"ok": true}', 404: "no such customer"})
async def api_delete(request: web.Request) -> web.StreamResponse:
    try:
        customer = await request.app[keys.CUSTOMERS].delete(_customer_id(request))
    except CustomerNotFound as exc:
        return json_response({"error": error_text(request, exc), "code": exc.key}, 404)
    await _audit(request, "customer.delete", f"customer:{customer.id}", customer.name)
    return json_response({"ok": True})


@routes.post("/api/customers/import/preview", role="supervisor",
             summary="Sheets and first rows of an uploaded workbook, for the column mapping",
             body={"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}},
             body_type="multipart/form-data", responses={200: '{"sheets": [{"name", "rows"}]}', 422: "not an xlsx"})
async def api_import_preview(request: web.Request) -> web.StreamResponse:
    data, _ = await _upload(request)
    try:
        if not data:
            raise CustomerImportError("import.err.no_file", "파일을 선택하세요")
        sheets = await asyncio.to_thread(preview, data)
    except CustomerError as exc:
        return json_response({"error": error_text(request, exc), "code": exc.key}, 422)
    return json_response({"sheets": [{"name": s.name, "rows": s.rows} for s in sheets]})


@routes.post("/api/customers/import", role="supervisor", summary="Import customers from an xlsx upload",
             body={"type": "object", "properties": {
                 "file": {"type": "string", "format": "binary"}, "sheet": {"type": "string"},
                 "start_row": {"type": "integer"},
                 **{f"col_{key}": {"type": "string", "description": "column letter"} for key in IMPORT_FIELDS}}},
             body_type="multipart/form-data",
             responses={200: "report: imported, duplicates, errors", 422: "file refused: nothing imported"})
async def api_import(request: web.Request) -> web.StreamResponse:
    data, form = await _upload(request)
    try:
        if not data:
            raise CustomerImportError("import.err.no_file", "파일을 선택하세요")
        sheet, start_row, mapping = _import_args(form)
        report = await import_customers(request.app[keys.SERVICES].db, data, sheet=sheet, start_row=start_row,
                                        columns=mapping)
    except CustomerError as exc:
        return json_response({"error": error_text(request, exc), "code": exc.key}, 422)
    await _audit(request, "customer.import", f"sheet:{report.sheet}",
                 f"imported={report.imported} duplicates={len(report.duplicates)} errors={len(report.errors)}")
    return json_response(report.as_dict())


@routes.get("/customers/export.xlsx", role="agent", permission="export")
async def export_xlsx(request: web.Request) -> web.StreamResponse:
    from ..crm.excel_export import rows_workbook

    try:
        found = await request.app[keys.CUSTOMERS].search(request.query.get("q", ""),
                                                         field=request.query.get("field", "all"), limit=1000)
    except CustomerError as exc:  # an unknown search field: say so instead of a 500
        return request.app[keys.RENDERER].render(request, "error.html", status=422, message=error_text(request, exc))
    t = request.app[keys.CATALOGUES].get(request[keys.USER].language).t
    header = [t(f"customer.field.{key}") for key in FORM_FIELDS]
    rows = [[c.name, phone_display(c.mobile or ""), phone_display(c.phone or ""), c.zip, c.address, c.memo]
            for c in found]
    body = await asyncio.to_thread(rows_workbook, t("customer.title"), header, rows)
    await _audit(request, "customer.export", "customers", f"rows={len(rows)}")
    return web.Response(body=body, content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                        headers={"Content-Disposition": 'attachment; filename="customers.xlsx"'})
