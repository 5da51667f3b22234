"""SMS pages and API through the real app: recipients (paste, Excel), opt-out, server-side sizing, schedule and
cancel with the 10-minute rule, delivery reports, history, templates and role rules (seed 003 §22, 000 ch. 5)."""

from __future__ import annotations

import io
import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from openpyxl import Workbook
from panel_helpers import Panel, PanelFactory

from contactd.config import SmsConfig
from contactd.crm.customers import CustomerService
from contactd.crm.sms import SmsService
from contactd.crm.sms_gateways import OutboxGateway
from contactd.store.db import Database
from contactd.store.models import utcnow

REPORT_TOKEN = "report-secret-123"


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def sms_panel(make_panel: PanelFactory, db: Database, tmp_path: Path, clock: Clock) -> Panel:
    config = SmsConfig(sender="02-1234-5678", spool_dir=str(tmp_path / "spool"), report_token=REPORT_TOKEN)
    sms = SmsService(db, OutboxGateway(config.spool_dir), config, clock=clock)
    panel = await make_panel(db, services_extra={"extra": {"sms": sms}})
    panel.services.config.sms = config
    return panel


def sms_of(panel: Panel) -> SmsService:
    return panel.services.extra["sms"]


def spool_lines(panel: Panel) -> list[dict]:
    path = Path(sms_of(panel).config.spool_dir) / "outbox.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def xlsx(sheets: dict[str, list[list[object]]]) -> bytes:
    wb = Workbook()
    wb.remove(wb.active)
    for title, rows in sheets.items():
        ws = wb.create_sheet(title)
        for row in rows:
            ws.append(row)
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


def page_data(html: str) -> dict:
    """The JSON the page hands its script (<script type=application/json id=sms-data>)."""
    match = re.search(r'<script type="application/json" id="sms-data">(.*?)</script>', html, re.S)
    assert match, "no sms-data on the page"
    return json.loads(match.group(1))


def local(value: datetime) -> str:
    """What <input type=datetime-local> sends: Korea time, no zone."""
    from zoneinfo import ZoneInfo

    return value.astimezone(ZoneInfo("Asia/Seoul")).strftime("%Y-%m-%dT%H:%M:%S")


async def test_bulk_paste_lists_invalid_lines_and_merges_duplicates(sms_panel: Panel) -> None:
    kim = await sms_panel.login("kim")
    text = "010-1111-2222\n01011112222\n안녕\n\n02-123-4567\n016-333-4444\n010 5555 6666\n"
    status, body = await kim.post_json("/api/sms/recipients/paste", {"text": text})
    assert status == 200
    assert [r["number"] for r in body["recipients"]] == ["01011112222", "0163334444"]
    assert body["duplicates"] == 1
    assert body["invalid"] == [{"line": 3, "text": "안녕"}, {"line": 5, "text": "02-123-4567"},
                               {"line": 7, "text": "010 5555 6666"}]


async def test_excel_recipients_from_the_chosen_sheet_columns_and_start_row(sms_panel: Panel) -> None:
    data = xlsx({"안내": [["이 시트는 설명입니다"]],
                 "고객": [["이름", "메모", "휴대폰"], ["홍길동", "", "010-1234-5678"], ["김철수", "x", 1098765432],
                          ["중복", "", "01012345678"], ["잘못", "", "123"], ["빈칸", "", None]]})
    kim = await sms_panel.login("kim")
    form = aiohttp.FormData()
    form.add_field("file", data, filename="list.xlsx")
    async with kim.http.post("/api/sms/recipients/excel/preview", data=form, headers=kim.headers()) as response:
        preview = await response.json()
    assert response.status == 200 and [s["name"] for s in preview["sheets"]] == ["안내", "고객"]
    assert preview["sheets"][1]["rows"][1][0] == "홍길동"

    form = aiohttp.FormData()
    form.add_field("file", data, filename="list.xlsx")
    for key, value in {"sheet": "고객", "name_column": "A", "mobile_column": "C", "start_row": "2"}.items():
        form.add_field(key, value)
    async with kim.http.post("/api/sms/recipients/excel", data=form, headers=kim.headers()) as response:
        body = await response.json()
    assert response.status == 200, body
    # The numeric cell lost its leading 0 in Excel; it comes back as a mobile number.
    assert [(r["number"], r["name"]) for r in body["recipients"]] == [("01012345678", "홍길동"),
                                                                      ("01098765432", "김철수")]
    assert body["duplicates"] == 1 and body["invalid"] == [{"line": 5, "text": "123"}]

    form = aiohttp.FormData()
    form.add_field("file", b"not a workbook", filename="list.xlsx")
    form.add_field("mobile_column", "C")
    async with kim.http.post("/api/sms/recipients/excel", data=form, headers=kim.headers()) as response:
        assert response.status == 422 and "엑셀" in (await response.json())["error"]


async def test_opted_out_customers_are_counted_and_excluded(sms_panel: Panel) -> None:
    customers = CustomerService(sms_panel.services.db)
    keep = await customers.create(name="수신", mobile="010-2000-0001")
    gone = await customers.create(name="거부", mobile="010-2000-0002", sms_opt_out=True)
    recipients = [{"number": "010-2000-0001", "name": keep.name, "customer_id": keep.id},
                  {"number": "01020000002", "name": gone.name, "customer_id": gone.id},
                  {"number": "010-2000-0003", "name": ""}]
    kim = await sms_panel.login("kim")
    status, body = await kim.post_json("/api/sms/recipients/check", {"recipients": recipients})
    assert (status, body) == (200, {"recipients": 3, "opted_out": 1})
    status, body = await kim.post_json("/api/sms/send", {"recipients": recipients, "body": "{고객명}님 안녕하세요"})
    assert status == 201 and body["recipients"] == 2 and body["excluded_opt_out"] == 1
    numbers = [r.number for r in await sms_of(sms_panel).recipients(body["message"]["id"])]
    assert numbers == ["01020000001", "01020000003"]


async def test_the_server_decides_the_kind_whatever_the_page_claims(sms_panel: Panel) -> None:
    kim = await sms_panel.login("kim")
    one = [{"number": "010-3000-0001", "name": "홍길동"}]
    status, body = await kim.post_json("/api/sms/send", {"recipients": one, "body": "가" * 40, "kind": "LMS"})
    assert status == 201 and body["message"]["kind"] == "SMS"  # 80 bytes
    status, body = await kim.post_json("/api/sms/send", {"recipients": one, "body": "가" * 40 + "a", "kind": "SMS"})
    assert status == 422 and "제목" in body["error"]  # 81 bytes: an LMS, which needs a subject
    status, body = await kim.post_json("/api/sms/send", {"recipients": one, "body": "가" * 40 + "a",
                                                         "subject": "안내"})
    assert status == 201 and body["message"]["kind"] == "LMS"
    # The placeholder is filled before measuring: 36 Hangul + {고객명} is 80 bytes as typed ...
    template = "가" * 36 + "{고객명}"
    status, body = await kim.post_json("/api/sms/send", {"recipients": one, "body": template})
    assert status == 201 and body["message"]["kind"] == "SMS"  # ... 78 with 홍길동
    status, body = await kim.post_json("/api/sms/send", {"recipients": one + [
        {"number": "010-3000-0002", "name": "남궁민수씨"}], "body": template, "kind": "SMS"})
    assert status == 422 and "제목" in body["error"]  # 82 with the longer name: LMS for the whole message
    status, body = await kim.post_json("/api/sms/send", {"recipients": [{"number": "02-123-4567"}], "body": "hi"})
    assert status == 422 and "02-123-4567" in body["error"]
    jpeg = "data:image/jpeg;base64,/9j/4AAQSkZJRgABAQ=="
    status, body = await kim.post_json("/api/sms/send", {"recipients": one, "body": "사진", "subject": "사진",
                                                         "image": jpeg})
    assert status == 201 and body["message"]["kind"] == "MMS" and body["message"]["has_image"]


async def test_schedule_and_cancel_with_the_ten_minute_rule(sms_panel: Panel, clock: Clock) -> None:
    kim = await sms_panel.login("kim")
    one = [{"number": "010-4000-0001"}]
    at = clock.now + timedelta(minutes=30)
    ids = []
    for text in ("첫번째 예약", "두번째 예약"):
        status, body = await kim.post_json("/api/sms/send", {"recipients": one, "body": text,
                                                             "scheduled_at": local(at)})
        assert status == 201 and body["message"]["status"] == "scheduled" and body["message"]["can_cancel"]
        ids.append(body["message"]["id"])
    status, body = await kim.post_json("/api/sms/cancel", {"ids": [ids[0]]})
    assert (status, body["cancelled"]) == (200, [ids[0]])
    await kim.post_json("/api/sms/send", {"recipients": one, "body": "즉시"})  # not a reservation: not listed

    clock.now += timedelta(minutes=21)  # 9 minutes before the send time
    status, body = await kim.get_json("/api/sms/scheduled")
    assert [(m["id"], m["can_cancel"], m["total"]) for m in body["messages"]] == [(ids[1], False, 1)]
    async with kim.http.get("/sms/scheduled") as response:
        page = await response.text()
    assert f'value="{ids[1]}" disabled' in page and "10분" in page
    status, body = await kim.post_json("/api/sms/cancel", {"ids": [ids[1]]})
    assert status == 422 and body["cancelled"] == [] and "10분" in body["error"]
    assert ids[1] in [m.id for m in await sms_of(sms_panel).scheduled()]  # still booked

    clock.now += timedelta(minutes=10)  # the send time has come: it goes out, the cancelled one never does
    assert await sms_of(sms_panel).send_due() == 2
    assert sorted(line["body"] for line in spool_lines(sms_panel)) == ["두번째 예약", "즉시"]
    status, body = await kim.post_json("/api/sms/send", {"recipients": one, "body": "과거",
                                                         "scheduled_at": local(clock.now - timedelta(hours=1))})
    assert status == 422 and "지났" in body["error"]


async def test_agents_cancel_only_their_own_supervisors_any(sms_panel: Panel, clock: Clock) -> None:
    kim, lee, boss = [await sms_panel.login(name) for name in ("kim", "lee", "boss")]
    status, body = await kim.post_json("/api/sms/send", {"recipients": [{"number": "010-5000-0001"}], "body": "예약",
                                                         "scheduled_at": local(clock.now + timedelta(hours=2))})
    message_id = body["message"]["id"]
    status, body = await lee.post_json("/api/sms/cancel", {"ids": [message_id]})
    assert status == 422 and body["refused"][0]["id"] == message_id and "관리자" in body["error"]
    assert [m.id for m in await sms_of(sms_panel).scheduled()] == [message_id]
    status, body = await boss.post_json("/api/sms/cancel", {"ids": [message_id]})
    assert (status, body["cancelled"]) == (200, [message_id])
    assert await sms_of(sms_panel).scheduled() == []


async def test_delivery_reports_need_the_shared_token(sms_panel: Panel) -> None:
    kim = await sms_panel.login("kim")
    status, body = await kim.post_json("/api/sms/send", {"recipients": [{"number": "010-6000-0001"},
                                                                        {"number": "010-6000-0002"}], "body": "배송"})
    message_id = body["message"]["id"]
    await sms_of(sms_panel).send_due()
    first, second = await sms_of(sms_panel).recipients(message_id)
    assert first.status == "sent"
    gateway = sms_panel.anonymous()  # no session, no CSRF token: the gateway only has the shared secret

    async def report(payload: dict, headers: dict[str, str]) -> tuple[int, dict]:
        async with gateway.post("/api/sms/reports", json=payload, headers=headers) as response:
            return response.status, await response.json()

    for headers in ({}, {"X-Report-Token": "wrong"}, {"X-Report-Token": REPORT_TOKEN + "x"}):
        status, _ = await report({"ref": first.gateway_ref, "status": "delivered"}, headers)
        assert status == 401
    assert (await sms_of(sms_panel).recipients(message_id))[0].status == "sent"  # nothing changed
    good = {"X-Report-Token": REPORT_TOKEN}
    assert (await report({"ref": first.gateway_ref, "status": "delivered"}, good))[0] == 200
    assert (await report({"ref": second.gateway_ref, "status": "failed", "error": "결번"}, good))[0] == 200
    assert (await report({"ref": "no-such-ref", "status": "delivered"}, good))[0] == 404
    assert (await report({"ref": first.gateway_ref, "status": "read"}, good))[0] == 422
    rows = await sms_of(sms_panel).recipients(message_id)
    assert [(r.status, r.error) for r in rows] == [("delivered", ""), ("failed", "결번")]
    status, body = await kim.get_json(f"/api/sms/messages/{message_id}/recipients")
    assert [r["status_label"] for r in body["recipients"]] == ["수신확인", "실패"]
    status, body = await kim.get_json("/api/sms/history")
    assert [(m["status"], m["sent"], m["failed"]) for m in body["messages"]] == [("partial", 1, 1)]

    sms_panel.services.config.sms.report_token = ""  # reports switched off: even an empty header is refused
    assert (await report({"ref": first.gateway_ref, "status": "delivered"}, {"X-Report-Token": ""}))[0] == 401


async def test_history_filters_by_kind_and_shows_each_recipients_text(sms_panel: Panel, clock: Clock) -> None:
    kim = await sms_panel.login("kim")
    people = [{"number": "010-7000-0001", "name": "홍길동"}, {"number": "010-7000-0002", "name": "김영희"}]
    await kim.post_json("/api/sms/send", {"recipients": people, "body": "{고객명}님 {오늘날짜} 주문 확인"})
    await kim.post_json("/api/sms/send", {"recipients": people[:1], "body": "긴 안내 " * 20, "subject": "안내"})
    await sms_of(sms_panel).send_due()
    status, body = await kim.get_json("/api/sms/history", kind="SMS")
    assert status == 200 and [(m["kind"], m["total"], m["sent"], m["waiting"]) for m in body["messages"]] == \
        [("SMS", 2, 2, 0)]
    sms_id = body["messages"][0]["id"]
    status, body = await kim.get_json("/api/sms/history")
    assert sorted(m["kind"] for m in body["messages"]) == ["LMS", "SMS"]
    today = clock.now.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Seoul")).date()
    status, body = await kim.get_json(f"/api/sms/messages/{sms_id}/recipients")
    assert [r["body"] for r in body["recipients"]] == [f"홍길동님 {today} 주문 확인", f"김영희님 {today} 주문 확인"]
    status, body = await kim.get_json("/api/sms/history", start=(today - timedelta(days=400)).isoformat())
    assert status == 422 and "1년" in body["error"]
    async with kim.http.get("/sms/history", params={"kind": "LMS"}) as response:
        page = await response.text()
    assert response.status == 200 and "긴 안내" in page and "주문 확인" not in page


async def test_templates_folders_and_roles(sms_panel: Panel) -> None:
    kim, boss = await sms_panel.login("kim"), await sms_panel.login("boss")
    status, _ = await kim.post_json("/api/sms/templates", {"title": "배송", "body": "발송되었습니다"})
    assert status == 403
    async with kim.http.get("/sms/templates") as response:
        assert response.status == 403
    status, body = await boss.post_json("/api/sms/folders", {"name": "주문"})
    top = body["folder"]["id"]
    status, body = await boss.post_json("/api/sms/folders", {"name": "배송", "parent_id": top})
    sub = body["folder"]["id"]
    status, body = await boss.post_json("/api/sms/folders", {"name": "3단계", "parent_id": sub})
    assert status == 422 and "2단계" in body["error"]
    status, body = await boss.post_json("/api/sms/templates", {"title": "출고 안내", "folder_id": sub,
                                                               "body": "{고객명}님 상품이 출고되었습니다"})
    assert status == 201
    template_id = body["template"]["id"]
    assert (await boss.request_json("PUT", f"/api/sms/folders/{top}", {"name": "주문/배송"}))[0] == 200
    assert (await boss.request_json("DELETE", f"/api/sms/folders/{top}"))[0] == 200
    status, body = await kim.get_json("/api/sms/templates")  # agents read templates to use them
    assert body["folders"] == [] and [(t["id"], t["folder_id"]) for t in body["templates"]] == [(template_id, None)]
    async with kim.http.get("/sms/compose") as response:
        page = await response.text()
    assert "출고 안내" in page and page_data(page)["templates"][0]["title"] == "출고 안내"  # the picker
    assert (await boss.request_json("DELETE", f"/api/sms/templates/{template_id}"))[0] == 200


async def test_logged_out_and_csrf_rules(sms_panel: Panel) -> None:
    anonymous = sms_panel.anonymous()
    async with anonymous.get("/api/sms/history") as response:
        assert response.status == 401
    async with anonymous.get("/sms/compose", allow_redirects=False) as response:
        assert response.status == 302 and response.headers["Location"].startswith("/login")
    kim = await sms_panel.login("kim")
    status, _ = await kim.post_json("/api/sms/send", {"recipients": [{"number": "010-8000-0001"}], "body": "x"},
                                    csrf=False)
    assert status == 403 and await sms_of(sms_panel).history(start=utcnow().date() - timedelta(days=2),
                                                             end=utcnow().date() + timedelta(days=2)) == []


async def test_compose_link_prefills_and_customer_tab(sms_panel: Panel) -> None:
    customer = await CustomerService(sms_panel.services.db).create(name="홍길동", mobile="010-9000-0001")
    kim = await sms_panel.login("kim")
    async with kim.http.get("/sms/compose", params={"to": "010-9000-0002", "name": "김고객"}) as response:
        page = await response.text()
    assert response.status == 200
    assert page_data(page)["initial"] == [{"number": "01090000002", "name": "김고객", "customer_id": None,
                                           "opt_out": False}]
    async with kim.http.get(f"/customers/{customer.id}", params={"tab": "sms"}) as response:
        page = await response.text()
    assert f"/sms/compose?to=01090000001&amp;name=%ED%99%8D%EA%B8%B8%EB%8F%99&amp;customer={customer.id}" in page
    async with kim.http.get("/sms/compose", params={"customer": str(customer.id)}) as response:
        page = await response.text()
    assert page_data(page)["initial"] == [{"number": "01090000001", "name": "홍길동", "customer_id": customer.id,
                                           "opt_out": False}]
    status, doc = await kim.get_json("/api/openapi.json")
    assert doc["paths"]["/api/sms/send"]["post"]["summary"] and \
        doc["paths"]["/api/sms/reports"]["post"]["x-required-role"] == "public"
