"""Blacklist, phonebook and business-hours pages: server-side role checks, and forbidden means unchanged."""

from __future__ import annotations

from datetime import date

from panel_helpers import Panel

from contactd.crm.blacklist import BlacklistService
from contactd.crm.business_hours import BusinessHours
from contactd.crm.phonebook import PhonebookService
from contactd.store.db import Database


async def test_blacklist_supervisor_only(panel: Panel, db: Database) -> None:
    kim, boss = await panel.login("kim"), await panel.login("boss")
    service = BlacklistService(db, None, panel.services.config.pbx)
    status, _ = await kim.post_json("/api/blacklist", {"number": "010-9999-0000", "reason": "폭언"})
    assert status == 403
    response = await kim.form("/admin/blacklist", {"number": "010-9999-0000", "name": "x"})
    assert response.status == 403
    assert await service.numbers() == []
    status, body = await boss.post_json("/api/blacklist", {"number": "010-9999-0000", "name": "악성", "reason": "폭언"})
    assert status == 201 and body["entry"]["number"] == "01099990000"
    status, body = await boss.post_json("/api/blacklist", {"number": "01099990000"})
    assert status == 422
    response = await boss.form("/admin/blacklist", {"number": "02-123-4567", "name": "스팸", "reason": "광고"})
    assert response.status == 302
    await service.log_attempt("02-123-4567", "U1")
    async with boss.http.get("/admin/blacklist") as r:
        html = await r.text()
    assert "악성" in html and "02-123-4567" in html and 'id="blocked-attempts"' in html
    response = await kim.form("/admin/blacklist/delete", {"number": "01099990000"})
    assert response.status == 403 and "01099990000" in await service.numbers()
    status, _ = await boss.request_json("DELETE", "/api/blacklist/01099990000")
    assert status == 200 and await service.numbers() == ["021234567"]
    status, body = await boss.get_json("/api/blacklist/attempts")
    assert [a["number"] for a in body["attempts"]] == ["021234567"]


async def test_phonebook_agents_read_supervisors_edit(panel: Panel, db: Database) -> None:
    kim, boss = await panel.login("kim"), await panel.login("boss")
    service = PhonebookService(db)
    response = await kim.form("/phonebook", {"name": "택배사", "number": "1588-1255"})
    assert response.status == 403 and await service.search() == []
    status, body = await boss.post_json("/api/phonebook", {"name": "택배사", "number": "1588-1255", "group": "협력사",
                                                            "speed_dial": "1", "memo": "CJ"})
    assert status == 201
    entry_id = body["entry"]["id"]
    status, body = await boss.post_json("/api/phonebook", {"name": "창고", "number": "031-111-2222", "speed_dial": "1"})
    assert status == 422 and "단축번호" in body["error"]
    response = await boss.form("/phonebook", {"name": "창고", "number": "031-111-2222", "group": "협력사",
                                              "speed_dial": "2", "memo": ""})
    assert response.status == 302
    async with kim.http.get("/phonebook", params={"q": "택배"}) as r:
        html = await r.text()
    assert "택배사" in html and "창고" not in html and "phonebook-add" not in html
    status, _ = await kim.request_json("DELETE", f"/api/phonebook/{entry_id}")
    assert status == 403 and len(await service.search()) == 2
    response = await boss.form(f"/phonebook/{entry_id}/delete", {})
    assert response.status == 302 and [e.name for e in await service.search()] == ["창고"]


async def test_business_hours_admin_only(panel: Panel, db: Database) -> None:
    boss, admin = await panel.login("boss"), await panel.login("admin")
    hours = BusinessHours(db, panel.services.config.hours)
    status, _ = await boss.request_json("PUT", "/api/hours/sat", {"open": "10:00", "close": "14:00"})
    assert status == 403
    response = await boss.form("/admin/hours/holidays", {"date": "2030-01-01", "name": "신정"})
    assert response.status == 403
    assert (await hours.get_schedule())[5].closed and await hours.list_holidays() == []
    status, body = await admin.request_json("PUT", "/api/hours/sat", {"open": "10:00", "close": "14:00"})
    assert status == 200 and body["day"]["open"] == "10:00" and body["day"]["source"] == "db"
    status, body = await admin.request_json("PUT", "/api/hours/sun", {"open": "25:00", "close": "14:00"})
    assert status == 422
    response = await admin.form("/admin/hours/day", {"weekday": "fri", "closed": "1"})
    assert response.status == 302 and (await hours.get_schedule())[4].closed
    response = await admin.form("/admin/hours/holidays", {"date": "2030-01-01", "name": "신정"})
    assert response.status == 302
    assert [(h.date, h.name) for h in await hours.list_holidays()] == [(date(2030, 1, 1), "신정")]
    async with admin.http.get("/admin/hours") as r:
        html = await r.text()
    assert "토요일" in html and "신정" in html
    status, _ = await admin.request_json("DELETE", "/api/hours/holidays/2030-01-01")
    assert status == 200 and await hours.list_holidays() == []
    status, body = await boss.get_json("/api/hours")
    assert status == 200 and body["days"][5]["open"] == "10:00"
