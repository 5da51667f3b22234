"""Consultation history page: search limits (≤ 31 days), entry edit/delete under the ticket rules, and the Excel
download that only the export permission gets (checked on the server: 403 and nothing produced)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from orders_helpers import read_xlsx

from contactd.crm.tickets import TicketService

NOW = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)  # 12:00 in Seoul


async def seed(db, users) -> tuple[object, object]:  # type: ignore[no-untyped-def]
    service = TicketService(db, clock=lambda: NOW)
    first = await service.create(users["kim"], title="배송 지연 문의", body="택배가 오지 않아요")
    await service.create(users["lee"], title="반품 요청", body="색상 불만")
    entry = await service.add_entry(users["kim"], first.id, "기사님께 확인 중")
    old = TicketService(db, clock=lambda: NOW - timedelta(days=60))
    await old.create(users["kim"], title="오래된 문의", body="두 달 전")
    return first, entry


async def test_search_period_limit_and_keyword(make_panel, any_db) -> None:
    panel = await make_panel(any_db)
    first, _ = await seed(any_db, panel.users)
    kim = await panel.login("kim")
    async with kim.http.get("/consultations", params={"start": "2026-03-01", "end": "2026-03-10"}) as response:
        page = await response.text()
        assert response.status == 200
    assert "배송 지연 문의" in page and "반품 요청" in page and "오래된 문의" not in page
    async with kim.http.get("/consultations", params={"start": "2026-03-01", "end": "2026-03-10",
                                                      "keyword": "기사님"}) as response:
        page = await response.text()
    assert "배송 지연 문의" in page and "반품 요청" not in page  # found through the entry text
    async with kim.http.get("/consultations", params={"start": "2026-01-01", "end": "2026-03-10"}) as response:
        page = await response.text()
        assert response.status == 422
    assert re.search(r'id="consultations-error">[^<]*31일', page)
    status, data = await kim.get_json("/api/consultations", start="2026-03-01", end="2026-03-10",
                                      agent_id=str(panel.users["lee"].id))
    assert status == 200 and [r["title"] for r in data["consultations"]] == ["반품 요청"]


async def test_entry_edit_rules(make_panel, db) -> None:
    panel = await make_panel(db)
    first, entry = await seed(db, panel.users)
    kim = await panel.login("kim")
    lee = await panel.login("lee")
    here = "/consultations?start=2026-03-01&end=2026-03-10"
    async with lee.http.get(here + f"&view={first.id}") as response:
        page = await response.text()
    assert "기사님께 확인 중" in page and f"/consultations/entries/{entry.id}/edit" not in page
    response = await lee.form(f"/consultations/entries/{entry.id}/edit", {"body": "남의 글", "next": here})
    assert response.status == 403
    # The entry was written "a while ago" by the fixed clock: the author's 1-day window is over.
    response = await kim.form(f"/consultations/entries/{entry.id}/edit", {"body": "수정", "next": here})
    assert response.status == 403
    # Fresh entry by kim (real clock): editable and deletable by its author, back to the same search.
    fresh = await TicketService(db).add_entry(panel.users["kim"], first.id, "방금 쓴 글")
    response = await kim.form(f"/consultations/entries/{fresh.id}/edit", {"body": "고친 글", "next": here})
    assert response.status == 302 and response.headers["Location"] == here
    assert [e.body for e in await TicketService(db).entries(first.id)][-1] == "고친 글"
    response = await kim.form(f"/consultations/entries/{fresh.id}/delete", {"next": "https://evil.example/"})
    assert response.status == 302 and response.headers["Location"] == "/consultations"
    assert len(await TicketService(db).entries(first.id)) == 1


async def test_excel_download_only_with_export_permission(make_panel, any_db) -> None:
    panel = await make_panel(any_db)
    await seed(any_db, panel.users)
    kim = await panel.login("kim")  # no export permission
    query = {"start": "2026-03-01", "end": "2026-03-10"}
    async with kim.http.get("/consultations", params=query) as response:
        assert 'id="consultations-export"' not in await response.text()
    async with kim.http.get("/consultations/export.xlsx", params=query) as response:
        assert response.status == 403
        assert "spreadsheet" not in response.content_type
    assert await panel.accounts.audit_entries(action="consultations.export") == []

    park = await panel.login("park")  # agent with the export permission
    async with park.http.get("/consultations", params=query) as response:
        assert 'id="consultations-export"' in await response.text()
    async with park.http.get("/consultations/export.xlsx", params=query) as response:
        assert response.status == 200
        wb = read_xlsx(await response.read())
    ws = wb.active
    assert [c.value for c in ws[3]] == ["접수번호", "접수일시", "고객명", "상담원", "상태", "제목", "내용"]
    titles = sorted(ws.cell(row=r, column=6).value for r in range(4, ws.max_row + 1))
    assert titles == sorted(["배송 지연 문의", "반품 요청"])
    async with park.http.get("/consultations/export.xlsx", params={"start": "2026-01-01", "end": "2026-03-10"}
                             ) as response:
        assert response.status == 422
