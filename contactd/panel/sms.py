"""SMS pages and JSON API (seed 003 §22, §9; seed 000 ch. 5): compose, templates, scheduled list with cancel,
history, the customer page's SMS tab and the gateway's delivery-report callback.

Handlers call crm.sms / crm.sms_recipients; the page counts bytes as the agent types, but the server measures again
in SmsService.compose and never trusts the page's figures. Any number elsewhere in the panel can open
`/sms/compose?to=01012345678&name=홍길동&customer=12`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from markupsafe import Markup

from ..crm.customer_import import CustomerImportError
from ..crm.customers import CustomerNotFound
from ..crm.phone import is_mobile, normalize_or_none
from ..crm.sms import CANCEL_CUTOFF, Recipient, SmsService, SmsTemplateService
from ..crm.sms_gateways import make_gateway
from ..crm.sms_recipients import MAX_RECIPIENTS, preview_sheets, read_recipients
from ..crm.sms_text import LMS_MAX_BYTES, SMS_MAX_BYTES, SUBJECT_MAX_BYTES, SmsError, parse_bulk
from ..store.models import Customer
from ..store.models.sms import SMS_KINDS, SmsMessage, SmsTemplate, SmsTemplateFolder
from . import keys
from .auth import client_ip
from .render import SEOUL, catalogue_for, error_text, json_error, json_response, local_time
from .routing import PUBLIC, ROLE_RANK, PanelRoutes, Param
from .tabs import CustomerTab

log = logging.getLogger(__name__)
routes = PanelRoutes("sms")

REPORT_HEADER = "X-Report-Token"  # the gateway's shared secret ([sms] report_token); never a session
DEFAULT_HISTORY_DAYS = 7

RECIPIENT_SCHEMA = {"type": "object", "properties": {
    "number": {"type": "string", "description": "mobile number, any common notation"},
    "name": {"type": "string", "description": "fills {고객명}"}, "customer_id": {"type": ["integer", "null"]}},
    "required": ["number"]}
SEND_SCHEMA = {"type": "object", "properties": {
    "recipients": {"type": "array", "items": RECIPIENT_SCHEMA, "maxItems": MAX_RECIPIENTS},
    "body": {"type": "string", "description": "may hold {고객명} and {오늘날짜}"},
    "subject": {"type": "string", "description": "required when the message is LMS/MMS (> 80 bytes or image)"},
    "image": {"type": "string", "description": "JPEG as base64 (or a data: URL); makes the message an MMS"},
    "scheduled_at": {"type": ["string", "null"],
                     "description": "send time: ISO with zone, or YYYY-MM-DDTHH:MM in Korea time; empty = now"}},
    "required": ["recipients", "body"]}
FOLDER_SCHEMA = {"type": "object", "properties": {"name": {"type": "string"},
                                                  "parent_id": {"type": ["integer", "null"]}}, "required": ["name"]}
TEMPLATE_SCHEMA = {"type": "object", "properties": {
    "title": {"type": "string"}, "subject": {"type": "string"}, "body": {"type": "string"},
    "folder_id": {"type": ["integer", "null"]}}, "required": ["title", "body"]}
ID_PARAM = (Param("id", "path", "integer", True),)
REFUSED = {422: "refused: error says why (Korean)"}


class BadInput(SmsError):
    pass


# ---- conversions ------------------------------------------------------------------------------------------------
def _sms(request: web.Request) -> SmsService:
    return request.app[keys.SMS]


def _templates(request: web.Request) -> SmsTemplateService:
    return request.app[keys.SMS_TEMPLATES]


def parse_local_time(raw: Any) -> datetime | None:
    """`<input type=datetime-local>` gives Korea time without a zone; ISO strings with a zone are kept."""
    text = str(raw or "").strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(f"예약 시간 형식이 올바르지 않습니다: {text}") from None
    return value if value.tzinfo else value.replace(tzinfo=SEOUL)


def parse_day(raw: str | None, default: date) -> date:
    if not raw:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise BadInput(f"날짜 형식이 올바르지 않습니다: {raw}") from None


def _optional_int(raw: Any, what: str) -> int | None:
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise BadInput(f"{what}: 숫자가 아닙니다 ({raw})") from None


def parse_recipients(raw: Any) -> list[Recipient]:
    """The page's recipient list; anything that is not a mobile number is refused by name, not silently dropped."""
    if not isinstance(raw, list):
        raise BadInput("받는 사람 목록이 올바르지 않습니다")
    if len(raw) > MAX_RECIPIENTS:
        raise BadInput(f"한 번에 최대 {MAX_RECIPIENTS}명까지 보낼 수 있습니다")
    out: list[Recipient] = []
    bad: list[str] = []
    for item in raw:
        entry = {"number": item} if isinstance(item, str) else item
        if not isinstance(entry, dict):
            bad.append(str(item))
            continue
        number = normalize_or_none(str(entry.get("number") or ""))
        if not number or not is_mobile(number):
            bad.append(str(entry.get("number") or ""))
            continue
        out.append(Recipient(number, str(entry.get("name") or "").strip()[:100],
                             _optional_int(entry.get("customer_id"), "customer_id")))
    if bad:
        raise BadInput(f"휴대폰 번호가 아닙니다: {', '.join(bad[:5])}" + (" ..." if len(bad) > 5 else ""))
    return out


def decode_image(raw: Any) -> bytes | None:
    if not raw:
        return None
    text = str(raw)
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadInput("이미지 데이터가 올바르지 않습니다 (base64)") from None


def can_cancel(message: SmsMessage, now: datetime) -> bool:
    return message.status == "scheduled" and now <= message.scheduled_at - CANCEL_CUTOFF


def message_json(message: SmsMessage, now: datetime, totals: dict[str, Any] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {name: getattr(message, name) for name in (
        "id", "kind", "sender", "subject", "body", "status", "automatic", "created_by_id", "excluded_opt_out")}
    for name in ("scheduled_at", "created_at", "sent_at", "cancelled_at"):
        value = getattr(message, name)
        data[name] = value.isoformat() if value else None
    data["scheduled_local"] = local_time(message.scheduled_at)
    data["has_image"] = bool(message.image_path)
    data["can_cancel"] = can_cancel(message, now)
    if totals is not None:
        data.update({key: int(totals.get(key) or 0) for key in ("total", "sent", "waiting", "failed")})
    return data


def _folder_json(folder: SmsTemplateFolder) -> dict[str, Any]:
    return {"id": folder.id, "name": folder.name, "parent_id": folder.parent_id}


def _template_json(template: SmsTemplate) -> dict[str, Any]:
    return {"id": template.id, "title": template.title, "subject": template.subject, "body": template.body,
            "folder_id": template.folder_id}


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json() if request.can_read_body else {}
    except ValueError:
        raise BadInput("요청 형식(JSON)이 올바르지 않습니다") from None
    if not isinstance(data, dict):
        raise BadInput("요청 형식(JSON)이 올바르지 않습니다")
    return data


def _refused(request: web.Request, exc: Exception, status: int = 422) -> web.Response:
    return json_response({"error": error_text(request, exc), "code": getattr(exc, "key", None) or "sms.refused"},
                         status)


async def _audit(request: web.Request, action: str, target: str, detail: str = "") -> None:
    await request.app[keys.ACCOUNTS].audit(request[keys.USER].id, action, target, detail, ip=client_ip(request))


def _is_supervisor(user: Any) -> bool:
    return ROLE_RANK.get(user.role, 0) >= ROLE_RANK["supervisor"]


async def _history(request: web.Request, *, start: date, end: date, kind: str | None,
                   customer_id: int | None = None) -> list[dict[str, Any]]:
    if kind and kind not in SMS_KINDS:
        raise BadInput(f"문자 형식은 {', '.join(SMS_KINDS)} 중 하나입니다")
    if end < start:
        raise BadInput("조회 기간의 끝이 시작보다 앞설 수 없습니다")
    sms = _sms(request)
    now = sms.clock()
    rows = await sms.history(start=start, end=end, kind=kind or None, customer_id=customer_id)
    return [message_json(row["message"], now, row) for row in rows]  # type: ignore[arg-type]


async def _scheduled(request: web.Request) -> list[dict[str, Any]]:
    """Scheduled messages with their recipient totals (one aggregate query, not one per message)."""
    sms = _sms(request)
    now = sms.clock()
    # "Send now" messages (saved with the time they were written) are not reservations: they only wait for the
    # dispatcher's next pass, and are never cancellable, so the list shows real reservations only.
    messages = [m for m in await sms.scheduled() if m.created_at is None or m.scheduled_at > m.created_at]
    if not messages:
        return []
    today = now.astimezone(SEOUL).date()
    days = [m.scheduled_at.astimezone(SEOUL).date() for m in messages]
    start = max(min(days), today - timedelta(days=sms.config.history_days))
    totals = {row["message"].id: row for row in  # type: ignore[attr-defined]
              await sms.history(start=start, end=max(days), limit=100_000)}
    return [message_json(m, now, totals.get(m.id, {})) for m in messages]


def _today(request: web.Request) -> date:
    return _sms(request).clock().astimezone(SEOUL).date()


# ---- pages ----------------------------------------------------------------------------------------------------
@routes.get("/sms/compose", role="agent")
async def compose_page(request: web.Request) -> web.StreamResponse:
    """`?to=<number>&name=<name>&customer=<id>` pre-fills one recipient (the "문자" links elsewhere)."""
    app = request.app
    initial: list[dict[str, Any]] = []
    number = normalize_or_none(request.query.get("to"))
    customer: Customer | None = None
    customer_id = request.query.get("customer", "")
    if customer_id.isdigit():
        try:
            customer = await app[keys.CUSTOMERS].get(int(customer_id))
        except CustomerNotFound:
            customer = None
    if customer is not None and not number:
        number = customer.mobile
    if number and is_mobile(number):
        name = request.query.get("name") or (customer.name if customer else "")
        initial.append({"number": number, "name": name[:100], "customer_id": customer.id if customer else None,
                        "opt_out": bool(customer and customer.sms_opt_out)})
    folders = [_folder_json(f) for f in await _templates(request).folders()]
    templates = [_template_json(x) for x in await _templates(request).templates()]
    config = app[keys.SERVICES].config.sms
    return app[keys.RENDERER].render(
        request, "sms/compose.html", initial=initial, folders=folders, templates=templates, sender=config.sender,
        limits={"sms": SMS_MAX_BYTES, "lms": LMS_MAX_BYTES, "subject": SUBJECT_MAX_BYTES,
                "image_kb": config.max_image_kb, "max_recipients": MAX_RECIPIENTS},
        min_time=datetime.now(SEOUL).strftime("%Y-%m-%dT%H:%M"), section="compose")


@routes.get("/sms/templates", role="supervisor")
async def templates_page(request: web.Request) -> web.StreamResponse:
    folders = [_folder_json(f) for f in await _templates(request).folders()]
    templates = [_template_json(x) for x in await _templates(request).templates()]
    return request.app[keys.RENDERER].render(request, "sms/templates.html", folders=folders, templates=templates,
                                             section="templates",
                                             limits={"sms": SMS_MAX_BYTES, "lms": LMS_MAX_BYTES})


@routes.get("/sms/scheduled", role="agent")
async def scheduled_page(request: web.Request) -> web.StreamResponse:
    messages = await _scheduled(request)
    user = request[keys.USER]
    for item in messages:  # agents cancel their own; supervisors anyone's
        item["mine"] = _is_supervisor(user) or item["created_by_id"] == user.id
    names = {u.id: u.display_name or u.username for u in await request.app[keys.ACCOUNTS].list_users()}
    return request.app[keys.RENDERER].render(request, "sms/scheduled.html", messages=messages, names=names,
                                             section="scheduled")


@routes.get("/sms/history", role="agent")
async def history_page(request: web.Request) -> web.StreamResponse:
    today = _today(request)
    kind = request.query.get("kind", "")
    error = ""
    messages: list[dict[str, Any]] = []
    start, end = today - timedelta(days=DEFAULT_HISTORY_DAYS), today
    try:
        start = parse_day(request.query.get("start"), start)
        end = parse_day(request.query.get("end"), end)
        messages = await _history(request, start=start, end=end, kind=kind or None)
    except SmsError as exc:
        error = error_text(request, exc)
    names = {u.id: u.display_name or u.username for u in await request.app[keys.ACCOUNTS].list_users()}
    days = _sms(request).config.history_days
    return request.app[keys.RENDERER].render(
        request, "sms/history.html", status=422 if error else 200, messages=messages, error=error, kind=kind,
        kinds=SMS_KINDS, start=start.isoformat(), end=end.isoformat(), names=names, section="history",
        earliest=(today - timedelta(days=days)).isoformat(), today=today.isoformat())


# ---- JSON API: recipients ---------------------------------------------------------------------------------------
@routes.post("/api/sms/recipients/paste", role="agent",
             summary="Parse a bulk paste (one mobile number per line, 010-0000-0000 or 01000000000)",
             body={"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
             responses={200: '{"recipients": [...], "invalid": [{"line", "text"}], "duplicates": n}', **REFUSED})
async def api_paste(request: web.Request) -> web.StreamResponse:
    try:
        data = await _json(request)
        parsed = parse_bulk(str(data.get("text") or ""))
        if len(parsed.numbers) > MAX_RECIPIENTS:
            raise BadInput(f"한 번에 최대 {MAX_RECIPIENTS}명까지 보낼 수 있습니다")
    except SmsError as exc:
        return _refused(request, exc)
    return json_response({"recipients": [{"number": n, "name": "", "customer_id": None} for n in parsed.numbers],
                          "invalid": [{"line": line, "text": text} for line, text in parsed.invalid],
                          "duplicates": parsed.duplicates})


async def _upload(request: web.Request) -> tuple[bytes, dict[str, Any]]:
    form = await request.post()
    upload = form.get("file")
    data = upload.file.read() if isinstance(upload, web.FileField) else b""
    if not data:
        raise CustomerImportError("import.err.no_file", "파일을 선택하세요")
    return data, dict(form)


@routes.post("/api/sms/recipients/excel/preview", role="agent",
             summary="Sheets and first rows of an uploaded workbook, to choose sheet, columns and start row",
             body={"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}},
             body_type="multipart/form-data", responses={200: '{"sheets": [{"name", "rows"}]}', 422: "not an xlsx"})
async def api_excel_preview(request: web.Request) -> web.StreamResponse:
    try:
        data, _ = await _upload(request)
        sheets = await asyncio.to_thread(preview_sheets, data)
    except (CustomerImportError, SmsError) as exc:
        return _refused(request, exc)
    return json_response({"sheets": [{"name": s.name, "rows": s.rows} for s in sheets]})


@routes.post("/api/sms/recipients/excel", role="agent",
             summary="Recipients from an xlsx upload: sheet, name column, mobile column, start row",
             body={"type": "object", "properties": {
                 "file": {"type": "string", "format": "binary"}, "sheet": {"type": "string"},
                 "name_column": {"type": "string", "description": "column letter, e.g. A (optional)"},
                 "mobile_column": {"type": "string", "description": "column letter, e.g. B"},
                 "start_row": {"type": "integer", "minimum": 1}}, "required": ["file", "mobile_column"]},
             body_type="multipart/form-data",
             responses={200: '{"sheet", "recipients": [...], "invalid": [{"line", "text"}], "duplicates": n}',
                        **REFUSED})
async def api_excel(request: web.Request) -> web.StreamResponse:
    try:
        data, form = await _upload(request)
        start_row = _optional_int(form.get("start_row"), "start_row") or 1
        found = await asyncio.to_thread(read_recipients, data, sheet=str(form.get("sheet") or "") or None,
                                        name_column=str(form.get("name_column") or ""),
                                        mobile_column=str(form.get("mobile_column") or ""), start_row=start_row)
    except (CustomerImportError, SmsError) as exc:
        return _refused(request, exc)
    return json_response({"sheet": found.sheet,
                          "recipients": [{"number": n, "name": name, "customer_id": None}
                                         for n, name in found.recipients],
                          "invalid": [{"line": row, "text": text} for row, text in found.invalid],
                          "duplicates": found.duplicates})


@routes.post("/api/sms/recipients/check", role="agent",
             summary="How many of these recipients opted out of SMS (they will be excluded)",
             body={"type": "object", "properties": {"recipients": {"type": "array", "items": RECIPIENT_SCHEMA}}},
             responses={200: '{"recipients": n, "opted_out": n}', **REFUSED})
async def api_check(request: web.Request) -> web.StreamResponse:
    try:
        recipients = parse_recipients((await _json(request)).get("recipients"))
    except SmsError as exc:
        return _refused(request, exc)
    unique = {r.number: r for r in recipients}
    opted_out = await _sms(request).count_opted_out(list(unique.values()))
    return json_response({"recipients": len(unique), "opted_out": opted_out})


# ---- JSON API: sending, scheduled, history ----------------------------------------------------------------------
@routes.post("/api/sms/send", role="agent",
             summary="Send now or schedule an SMS/LMS/MMS; the server decides the kind from the bytes",
             body=SEND_SCHEMA,
             responses={201: '{"message": {...kind...}, "recipients": n, "excluded_opt_out": n}', **REFUSED})
async def api_send(request: web.Request) -> web.StreamResponse:
    user = request[keys.USER]
    try:
        data = await _json(request)
        recipients = parse_recipients(data.get("recipients"))
        image = decode_image(data.get("image"))
        result = await _sms(request).compose(
            recipients, str(data.get("body") or ""), subject=str(data.get("subject") or ""), image=image,
            scheduled_at=parse_local_time(data.get("scheduled_at")), created_by_id=user.id)
    except SmsError as exc:
        return _refused(request, exc)
    message = result.message
    if not data.get("scheduled_at"):
        _sms(request).wake()  # send now: the dispatcher loop runs at once
    await _audit(request, "sms.schedule" if data.get("scheduled_at") else "sms.send", f"sms:{message.id}",
                 f"{message.kind} recipients={result.recipients} opt_out={result.excluded_opt_out}")
    return json_response({"message": message_json(message, _sms(request).clock()), "recipients": result.recipients,
                          "excluded_opt_out": result.excluded_opt_out}, 201)


@routes.get("/api/sms/scheduled", role="agent", summary="Scheduled messages not yet sent, soonest first",
            responses={200: '{"messages": [{..., "total", "can_cancel"}]}'})
async def api_scheduled(request: web.Request) -> web.StreamResponse:
    return json_response({"messages": await _scheduled(request)})


@routes.post("/api/sms/cancel", role="agent",
             summary="Cancel scheduled messages (not within 10 minutes of the send time; agents: their own only)",
             body={"type": "object", "properties": {"ids": {"type": "array", "items": {"type": "integer"}}},
                   "required": ["ids"]},
             responses={200: '{"cancelled": [ids], "refused": []}',
                        422: '{"error", "cancelled": [ids], "refused": [{"id", "error"}]}: some were refused'})
async def api_cancel(request: web.Request) -> web.StreamResponse:
    user = request[keys.USER]
    sms = _sms(request)
    try:
        raw = (await _json(request)).get("ids")
        if not isinstance(raw, list) or not raw:
            raise BadInput("취소할 예약 문자를 선택하세요")
        ids = [_optional_int(item, "id") for item in raw]
    except SmsError as exc:
        return _refused(request, exc)
    owners = {m.id: m.created_by_id for m in await sms.scheduled()}
    cancelled: list[int] = []
    refused: list[dict[str, Any]] = []
    t = catalogue_for(request).t
    for message_id in dict.fromkeys(i for i in ids if i is not None):
        if message_id in owners and not _is_supervisor(user) and owners[message_id] != user.id:
            refused.append({"id": message_id, "error": t("sms.err.not_yours")})
            continue
        try:
            await sms.cancel(message_id)
        except SmsError as exc:
            refused.append({"id": message_id, "error": error_text(request, exc)})
            continue
        cancelled.append(message_id)
        await _audit(request, "sms.cancel", f"sms:{message_id}")
    if refused:
        return json_response({"error": refused[0]["error"], "code": "sms.cancel_refused", "cancelled": cancelled,
                              "refused": refused}, 422)
    return json_response({"cancelled": cancelled, "refused": []})


@routes.get("/api/sms/history", role="agent",
            summary="Sent and scheduled messages in a date range (at most one year back) with per-status totals",
            params=(Param("start", description="YYYY-MM-DD, Korea time (default: a week ago)"),
                    Param("end", description="YYYY-MM-DD (default: today)"),
                    Param("kind", description="SMS | LMS | MMS (default: all)"),
                    Param("customer_id", type="integer", description="only messages to this customer")),
            responses={200: '{"messages": [{..., "total", "sent", "waiting", "failed"}]}', **REFUSED})
async def api_history(request: web.Request) -> web.StreamResponse:
    today = _today(request)
    try:
        messages = await _history(request, start=parse_day(request.query.get("start"),
                                                           today - timedelta(days=DEFAULT_HISTORY_DAYS)),
                                  end=parse_day(request.query.get("end"), today),
                                  kind=request.query.get("kind") or None,
                                  customer_id=_optional_int(request.query.get("customer_id"), "customer_id"))
    except SmsError as exc:
        return _refused(request, exc)
    return json_response({"messages": messages})


@routes.get(r"/api/sms/messages/{id:\d+}/recipients", role="agent",
            summary="Per-recipient status of one message: filled-in text, sent / delivered / failed",
            params=ID_PARAM, responses={200: '{"recipients": [{"number", "name", "body", "status", "error"}]}'})
async def api_recipients(request: web.Request) -> web.StreamResponse:
    rows = await _sms(request).recipients(int(request.match_info["id"]))
    t = catalogue_for(request).t
    return json_response({"recipients": [
        {"id": r.id, "number": r.number, "name": r.name, "customer_id": r.customer_id, "body": r.body,
         "status": r.status, "status_label": t(f"sms.status.{r.status}"), "error": r.error,
         "sent_at": r.sent_at.isoformat() if r.sent_at else None, "sent_local": local_time(r.sent_at),
         "reported_at": r.reported_at.isoformat() if r.reported_at else None} for r in rows]})


# ---- JSON API: templates ----------------------------------------------------------------------------------------
@routes.get("/api/sms/templates", role="agent", summary="Template folders (top and sub) and templates",
            responses={200: '{"folders": [{"id", "name", "parent_id"}], "templates": [...]}'})
async def api_templates(request: web.Request) -> web.StreamResponse:
    service = _templates(request)
    return json_response({"folders": [_folder_json(f) for f in await service.folders()],
                          "templates": [_template_json(x) for x in await service.templates()]})


@routes.post("/api/sms/folders", role="supervisor", summary="Add a top folder, or a sub folder with parent_id",
             body=FOLDER_SCHEMA, responses={201: '{"folder": {...}}', **REFUSED})
async def api_add_folder(request: web.Request) -> web.StreamResponse:
    try:
        data = await _json(request)
        folder = await _templates(request).add_folder(str(data.get("name") or "")[:100],
                                                      _optional_int(data.get("parent_id"), "parent_id"))
    except SmsError as exc:
        return _refused(request, exc)
    return json_response({"folder": _folder_json(folder)}, 201)


@routes.put(r"/api/sms/folders/{id:\d+}", role="supervisor", summary="Rename a folder", params=ID_PARAM,
            body={"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
            responses={200: '{"ok": true}', **REFUSED})
async def api_rename_folder(request: web.Request) -> web.StreamResponse:
    try:
        name = str((await _json(request)).get("name") or "").strip()[:100]
        if not name:
            raise BadInput("폴더 이름을 입력하세요")
        await _templates(request).rename_folder(int(request.match_info["id"]), name)
    except SmsError as exc:
        return _refused(request, exc)
    return json_response({"ok": True})


@routes.delete(r"/api/sms/folders/{id:\d+}", role="supervisor",
               summary="Delete a folder and its sub folders; their templates are kept (moved out of the folder)",
               params=ID_PARAM, responses={200: '{"ok": true}', **REFUSED})
async def api_delete_folder(request: web.Request) -> web.StreamResponse:
    try:
        await _templates(request).delete_folder(int(request.match_info["id"]))
    except SmsError as exc:
        return _refused(request, exc)
    return json_response({"ok": True})


async def _save_template(request: web.Request, template_id: int | None) -> web.Response:
    try:
        data = await _json(request)
        template = await _templates(request).save_template(
            str(data.get("title") or "")[:100], str(data.get("body") or ""),
            subject=str(data.get("subject") or "")[:120],
            folder_id=_optional_int(data.get("folder_id"), "folder_id"), template_id=template_id)
    except SmsError as exc:
        return _refused(request, exc)
    return json_response({"template": _template_json(template)}, 200 if template_id else 201)


@routes.post("/api/sms/templates", role="supervisor", summary="Add a template (may hold {고객명}, {오늘날짜})",
             body=TEMPLATE_SCHEMA, responses={201: '{"template": {...}}', **REFUSED})
async def api_add_template(request: web.Request) -> web.StreamResponse:
    return await _save_template(request, None)


@routes.put(r"/api/sms/templates/{id:\d+}", role="supervisor", summary="Change a template", params=ID_PARAM,
            body=TEMPLATE_SCHEMA, responses={200: '{"template": {...}}', **REFUSED})
async def api_update_template(request: web.Request) -> web.StreamResponse:
    return await _save_template(request, int(request.match_info["id"]))


@routes.delete(r"/api/sms/templates/{id:\d+}", role="supervisor", summary="Delete a template", params=ID_PARAM,
               responses={200: '{"ok": true}'})
async def api_delete_template(request: web.Request) -> web.StreamResponse:
    await _templates(request).delete_template(int(request.match_info["id"]))
    return json_response({"ok": True})


# ---- the gateway's delivery reports -----------------------------------------------------------------------------
@routes.post("/api/sms/reports", role=PUBLIC, csrf=False,
             summary="Delivery report from the SMS gateway (authenticated by the X-Report-Token header)",
             params=(Param(REPORT_HEADER, "header", required=True, description="[sms] report_token"),),
             body={"type": "object", "properties": {
                 "ref": {"type": "string", "description": "the gateway_ref sent with the message"},
                 "status": {"type": "string", "enum": ["delivered", "failed"]}, "error": {"type": "string"}},
                 "required": ["ref", "status"]},
             responses={200: '{"ok": true}', 401: "missing or wrong token", 404: "unknown ref",
                        422: "bad body"})
async def api_report(request: web.Request) -> web.StreamResponse:
    expected = request.app[keys.SERVICES].config.sms.report_token
    given = request.headers.get(REPORT_HEADER, "")
    # No configured token means reports are off: an empty header must not match an empty secret.
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        log.warning("sms report refused from %s: bad token", client_ip(request))
        return json_error(request, 401, "sms.err.report_token")
    try:
        data = await _json(request)
    except SmsError as exc:
        return _refused(request, exc)
    ref, status = str(data.get("ref") or ""), data.get("status")
    if not ref or status not in ("delivered", "failed"):
        return json_error(request, 422, "sms.err.report_body")
    if not await _sms(request).apply_report(ref, status == "delivered", str(data.get("error") or "")):
        return json_error(request, 404, "sms.err.report_ref")
    return json_response({"ok": True})


# ---- the customer page's SMS tab --------------------------------------------------------------------------------
def compose_link(number: str | None, name: str = "", customer_id: int | None = None) -> str:
    """The "문자" link any page can put next to a mobile number."""
    query = {"to": number or ""}
    if name:
        query["name"] = name
    if customer_id is not None:
        query["customer"] = str(customer_id)
    return "/sms/compose?" + urlencode(query)


async def sms_tab(request: web.Request, customer: Customer) -> Markup:
    sms = _sms(request)
    today = sms.clock().astimezone(SEOUL).date()
    try:
        messages = await _history(request, start=today - timedelta(days=sms.config.history_days), end=today
                                  + timedelta(days=366), kind=None, customer_id=customer.id)
    except SmsError:
        messages = []
    link = compose_link(customer.mobile, customer.name, customer.id) if customer.mobile and is_mobile(
        customer.mobile) else ""
    html = request.app[keys.RENDERER].env.get_template("sms/_tab.html").render(
        t=catalogue_for(request).t, messages=messages, link=link, customer=customer)
    return Markup(html)


def setup(app: web.Application) -> None:
    services = app[keys.SERVICES]
    sms = services.extra.get("sms")
    if sms is None:
        # A panel without the daemon (tools, tests): messages are saved; the daemon's dispatcher sends them.
        sms = SmsService(services.db, make_gateway(services.config.sms), services.config.sms, bus=services.bus)
    app[keys.SMS] = sms
    app[keys.SMS_TEMPLATES] = services.extra.get("sms_templates") or SmsTemplateService(services.db)
    app[keys.CUSTOMER_TABS].add(CustomerTab("sms", "sms.tab", sms_tab, order=40))


__all__ = ["routes", "setup", "compose_link", "message_json", "parse_recipients", "REPORT_HEADER"]
