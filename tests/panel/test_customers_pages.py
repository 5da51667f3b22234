"""Customer pages and JSON API through the real app: CRUD, search, roles, tabs, Excel upload."""

from __future__ import annotations

import io

import aiohttp
from openpyxl import Workbook
from panel_helpers import Panel

from contactd.crm.customers import CustomerService


def xlsx(rows: list[list[object]]) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.title = "고객"
    ws.append(["고객명", "휴대폰", "전화번호", "우편번호", "주소"])
    for row in rows:
        ws.append(row)
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


async def test_json_crud_and_search(panel: Panel) -> None:
    kim = await panel.login("kim")
    status, body = await kim.post_json("/api/customers", {"name": "홍길동", "mobile": "010-1234-5678", "vip": True})
    assert status == 201 and body["customer"]["mobile_display"] == "010-1234-5678"
    cid = body["customer"]["id"]
    status, body = await kim.post_json("/api/customers", {"name": "홍길순", "mobile": "01012345678"})
    assert status == 422 and "이미 등록된 휴대폰" in body["error"]
    status, body = await kim.request_json("PUT", f"/api/customers/{cid}", {"caution": True, "address": "서울"})
    assert status == 200 and body["customer"]["caution"] and body["customer"]["vip"]
    status, body = await kim.get_json("/api/customers", q="5678")
    assert [c["id"] for c in body["customers"]] == [cid]
    status, body = await kim.get_json("/api/customers/lookup", number="+82 10 1234 5678")
    assert [c["name"] for c in body["customers"]] == ["홍길동"]
    status, body = await kim.get_json("/api/customers/999999")
    assert status == 404


async def test_agent_cannot_delete_a_customer_supervisor_can(panel: Panel) -> None:
    customer = await CustomerService(panel.services.db).create(name="삭제대상", mobile="010-5555-6666")
    kim = await panel.login("kim")
    status, _ = await kim.request_json("DELETE", f"/api/customers/{customer.id}")
    assert status == 403
    assert (await kim.form(f"/customers/{customer.id}/delete", {})).status == 403
    assert (await CustomerService(panel.services.db).get(customer.id)).name == "삭제대상"
    boss = await panel.login("boss")
    assert (await boss.form(f"/customers/{customer.id}/delete", {})).status == 302
    assert await CustomerService(panel.services.db).count() == 0


async def test_pages_create_view_with_tabs_and_edit(panel: Panel) -> None:
    kim = await panel.login("kim")
    async with kim.http.get("/customers/new?mobile=01099990000") as response:
        assert 'value="01099990000"' in await response.text()  # prefilled from the screen-pop link
    response = await kim.form("/customers/new", {"name": "신규", "mobile": "010-9999-0000", "vip": "1"})
    assert response.status == 302
    location = response.headers["Location"]
    async with kim.http.get(location) as page:
        html = await page.text()
        assert "신규" in html and "010-9999-0000" in html and "VIP" in html
        assert "콜내역" in html and "콜백" in html and 'data-tel="01099990000"' in html
    response = await kim.form(location + "/edit", {"name": "신규", "mobile": "02-000", "phone": ""})
    assert response.status == 422
    response = await kim.form(location + "/edit", {"name": "신규고객", "mobile": "010-9999-0000", "caution": "1"})
    assert response.status == 302
    found = await CustomerService(panel.services.db).find_by_number("01099990000")
    assert found[0].name == "신규고객" and found[0].caution and not found[0].vip
    async with kim.http.get("/customers?q=신규") as page:
        assert "신규고객" in await page.text()


async def test_excel_upload_reports_duplicates_and_rejects_broken_files(panel: Panel) -> None:
    await CustomerService(panel.services.db).create(name="기존", mobile="010-1111-2222")
    kim = await panel.login("kim")
    form = aiohttp.FormData({"_csrf": kim.csrf})
    form.add_field("file", b"x", filename="a.xlsx")
    async with kim.http.post("/api/customers/import", data=form) as response:
        assert response.status == 403  # agents do not upload (seed 003 §28: one account gets the right)
    boss = await panel.login("boss")

    def upload(data: bytes, **fields: str) -> aiohttp.FormData:
        form = aiohttp.FormData({"_csrf": boss.csrf, "sheet": "고객", "start_row": "2", "col_name": "A",
                                 "col_mobile": "B", "col_phone": "C", "col_zip": "D", "col_address": "E", **fields})
        form.add_field("file", data, filename="customers.xlsx")
        return form

    data = xlsx([["홍길동", "010-1234-5678"], ["기존2", "010-1111-2222"], ["틀림", "12"], ["홍길동2", "01012345678"]])
    async with boss.http.post("/api/customers/preview".replace("preview", "import/preview"), data=upload(data)) as r:
        assert (await r.json())["sheets"][0]["name"] == "고객"
    async with boss.http.post("/api/customers/import", data=upload(data)) as response:
        report = await response.json()
    assert report["imported"] == 1
    assert [d["row"] for d in report["duplicates"]] == [3, 5]
    assert [e["row"] for e in report["errors"]] == [4]
    async with boss.http.post("/customers/import", data=upload(b"garbage")) as response:
        assert response.status == 422
        assert "엑셀(.xlsx) 파일을 읽을 수 없습니다" in await response.text()
    async with boss.http.post("/customers/import", data=upload(data, sheet="Sheet9")) as response:
        assert response.status == 422
    assert await CustomerService(panel.services.db).count() == 2
