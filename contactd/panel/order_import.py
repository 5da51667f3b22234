"""Order Excel import wizard (seed 003 §3), supervisor+: upload → sheet → header row (없음/1/2/3) → column per field
(prefilled by matching the header texts to the field labels) → preview → import → report.

The uploaded bytes stay server-side between the steps (panel.uploads: a temp file per random token bound to the
login session, deleted after the import or after an hour); the page only carries the token.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from ..crm.order_import import (
    FIELDS,
    REQUIRED,
    ImportFileError,
    ImportReport,
    Preview,
    import_orders,
    preview,
)
from . import keys
from .auth import client_ip
from .render import json_response
from .routing import PanelRoutes
from .uploads import UploadStore, session_owner

routes = PanelRoutes("order-import")
HEADER_ROWS = (0, 1, 2, 3)
PREVIEW_ROWS = 5

MAPPING_BODY = {f"col_{name}": {"type": "string", "description": f"column letter for {label}"}
                for name, label in FIELDS.items()}


def guess_mapping(header: list[str]) -> dict[str, str]:
    """Field → column letter where a header cell names the field (exactly, else as part of the text)."""
    from openpyxl.utils import get_column_letter

    cells = [(get_column_letter(i + 1), "".join(text.split())) for i, text in enumerate(header) if text.strip()]
    mapping: dict[str, str] = {}
    taken: set[str] = set()
    for exact in (True, False):
        for name, label in FIELDS.items():
            if name in mapping:
                continue
            for letter, text in cells:
                if letter in taken:
                    continue
                if (text == label or text.lower() == name) if exact else (label in text):
                    mapping[name] = letter
                    taken.add(letter)
                    break
    return mapping


def report_json(report: ImportReport) -> dict[str, Any]:
    return {"rows_read": report.rows_read, "orders_created": report.orders_created,
            "lines_created": report.lines_created, "duplicates_skipped": report.duplicates_skipped,
            "sources_created": report.sources_created, "error_count": report.error_count,
            "errors": [{"row": e.row, "field": e.field, "message": e.message} for e in report.errors]}


def _header_row(raw: Any) -> int:
    text = str(raw if raw not in (None, "") else "1")
    if not text.isdigit() or int(text) not in HEADER_ROWS:
        raise ImportFileError("머리글 행은 없음, 1, 2, 3 중 하나입니다 (header row: 0-3)")
    return int(text)


def _mapping(data: Any) -> dict[str, str]:
    return {name: str(data.get(f"col_{name}") or "").strip().upper()[:3] for name in FIELDS
            if str(data.get(f"col_{name}") or "").strip()}


def _owner(request: web.Request) -> str:
    return session_owner(request[keys.USER], request[keys.SESSION])


async def _audit(request: web.Request, report: ImportReport, sheet: str) -> None:
    await request.app[keys.ACCOUNTS].audit(
        request[keys.USER].id, "order.import", f"sheet:{sheet}",
        f"orders={report.orders_created} lines={report.lines_created} duplicates={report.duplicates_skipped} "
        f"errors={report.error_count}", ip=client_ip(request))


def _render(request: web.Request, step: str, *, status: int = 200, **context: Any) -> web.Response:
    base: dict[str, Any] = {"step": step, "error": "", "token": "", "filename": "", "pv": None, "sheet": "",
                            "header_row": 1, "header_rows": HEADER_ROWS, "mapping": {}, "fields": FIELDS,
                            "required": REQUIRED, "report": None}
    base.update(context)
    return request.app[keys.RENDERER].render(request, "orders/import.html", status=status, **base)


# ---- the wizard pages ------------------------------------------------------------------------------------------------
@routes.get("/orders/import", role="supervisor")
async def upload_page(request: web.Request) -> web.StreamResponse:
    return _render(request, "upload")


@routes.post("/orders/import", role="supervisor")
async def upload_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    upload = form.get("file")
    data = upload.file.read() if isinstance(upload, web.FileField) else b""
    if not data:
        return _render(request, "upload", status=422, error="파일을 선택하세요 (choose a file)")
    try:
        await asyncio.to_thread(preview, data, None, 0, 1)  # refuse a non-xlsx now, not three steps later
    except ImportFileError as exc:
        return _render(request, "upload", status=422, error=str(exc))
    store: UploadStore = request.app[keys.ORDER_UPLOADS]
    name = upload.filename if isinstance(upload, web.FileField) else ""
    token = await asyncio.to_thread(store.put, _owner(request), data, name or "")
    raise web.HTTPFound(f"/orders/import/{token}")


async def _load(request: web.Request) -> Any:
    store: UploadStore = request.app[keys.ORDER_UPLOADS]
    upload = await asyncio.to_thread(store.get, request.match_info["token"], _owner(request))
    if upload is None:
        raise web.HTTPNotFound(text="업로드한 파일이 없거나 만료되었습니다 (upload gone or expired)")
    return upload


async def _mapping_page(request: web.Request, upload: Any, data: Any, *, error: str = "", status: int = 200,
                        keep_mapping: bool = False) -> web.Response:
    sheet = str(data.get("sheet") or "")
    try:
        header_row = _header_row(data.get("header_row"))
    except ImportFileError as exc:
        header_row, error, status = 1, error or str(exc), 422
    pv: Preview | None = None
    try:
        pv = await asyncio.to_thread(preview, upload.data, sheet or None, header_row, PREVIEW_ROWS)
    except ImportFileError as exc:  # a sheet that is not there: show the real sheets, and why
        error, status = error or str(exc), 422
        pv = await asyncio.to_thread(preview, upload.data, None, header_row, PREVIEW_ROWS)
        sheet = ""
    sheet = sheet or pv.sheets[0]
    mapping = _mapping(data) if keep_mapping or header_row == 0 else guess_mapping(pv.header)
    return _render(request, "map", status=status, error=error, token=upload.token, filename=upload.name, pv=pv,
                   sheet=sheet, header_row=header_row, mapping=mapping)


@routes.get(r"/orders/import/{token}", role="supervisor")
async def mapping_page(request: web.Request) -> web.StreamResponse:
    upload = await _load(request)
    return await _mapping_page(request, upload, request.query)


@routes.post(r"/orders/import/{token}", role="supervisor")
async def import_submit(request: web.Request) -> web.StreamResponse:
    upload = await _load(request)
    form = await request.post()
    sheet = str(form.get("sheet") or "")
    try:
        report = await import_orders(request.app[keys.SERVICES].db, upload.data, sheet=sheet,
                                     header_row=_header_row(form.get("header_row")), mapping=_mapping(form))
    except ImportFileError as exc:  # nothing was imported: keep the file so the mapping can be fixed
        return await _mapping_page(request, upload, form, error=str(exc), status=422, keep_mapping=True)
    await asyncio.to_thread(request.app[keys.ORDER_UPLOADS].delete, upload.token)
    await _audit(request, report, sheet)
    return _render(request, "report", report=report, filename=upload.name, sheet=sheet)


@routes.post(r"/orders/import/{token}/cancel", role="supervisor")
async def cancel_submit(request: web.Request) -> web.StreamResponse:
    upload = await _load(request)
    await asyncio.to_thread(request.app[keys.ORDER_UPLOADS].delete, upload.token)
    raise web.HTTPFound("/orders/import")


# ---- JSON API --------------------------------------------------------------------------------------------------------
async def _api_upload(request: web.Request) -> tuple[bytes, Any]:
    form = await request.post()
    upload = form.get("file")
    data = upload.file.read() if isinstance(upload, web.FileField) else b""
    if not data:
        raise ImportFileError("파일을 선택하세요 (choose a file)")
    return data, form


@routes.post("/api/orders/import/preview", role="supervisor",
             summary="Sheets, header and first rows of an order workbook, with the guessed column mapping",
             body={"type": "object", "properties": {"file": {"type": "string", "format": "binary"},
                                                    "sheet": {"type": "string"},
                                                    "header_row": {"type": "integer", "enum": list(HEADER_ROWS)}}},
             body_type="multipart/form-data",
             responses={200: '{"sheets", "columns", "header", "rows", "mapping"}', 422: "not an xlsx / no sheet"})
async def api_preview(request: web.Request) -> web.StreamResponse:
    try:
        data, form = await _api_upload(request)
        pv = await asyncio.to_thread(preview, data, str(form.get("sheet") or "") or None,
                                     _header_row(form.get("header_row")), PREVIEW_ROWS)
    except ImportFileError as exc:
        return json_response({"error": str(exc), "code": "ImportFileError"}, 422)
    return json_response({"sheets": pv.sheets, "columns": pv.columns, "header": pv.header, "rows": pv.rows,
                          "mapping": guess_mapping(pv.header)})


@routes.post("/api/orders/import", role="supervisor", summary="Import orders from an xlsx upload in one request",
             body={"type": "object", "required": ["file", "sheet"], "properties": {
                 "file": {"type": "string", "format": "binary"}, "sheet": {"type": "string"},
                 "header_row": {"type": "integer", "enum": list(HEADER_ROWS)}, **MAPPING_BODY}},
             body_type="multipart/form-data",
             responses={200: "report: rows_read, orders_created, lines_created, duplicates_skipped, "
                             "sources_created, errors, error_count", 422: "file refused: nothing imported"})
async def api_import(request: web.Request) -> web.StreamResponse:
    try:
        data, form = await _api_upload(request)
        sheet = str(form.get("sheet") or "")
        report = await import_orders(request.app[keys.SERVICES].db, data, sheet=sheet,
                                     header_row=_header_row(form.get("header_row")), mapping=_mapping(form))
    except ImportFileError as exc:
        return json_response({"error": str(exc), "code": "ImportFileError"}, 422)
    await _audit(request, report, sheet)
    return json_response(report_json(report))


def setup(app: web.Application) -> None:
    store = UploadStore()
    app[keys.ORDER_UPLOADS] = store

    async def close(_: web.Application) -> None:
        store.close()

    app.on_cleanup.append(close)


__all__ = ["routes", "setup", "guess_mapping", "report_json"]
