"""Statistics pages: SVG chart bars for the seeded calls, hour drill-down, navigation, period limits, and the
Excel exports (export permission, workbook read back with openpyxl, native chart present)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from orders_helpers import read_xlsx

from contactd.store.models import Call

DAY = "2026-03-10"


def seoul(hour: int, minute: int = 0, day: int = 10) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC) - timedelta(hours=9)


async def seed_calls(db) -> None:  # type: ignore[no-untyped-def]
    calls = [("in", 9, 5, True, False, "1001"), ("in", 9, 20, True, False, "1002"), ("in", 9, 40, False, True, None),
             ("in", 14, 0, False, False, None), ("out", 14, 30, True, False, "1001"),
             ("in", 23, 50, True, False, "1001")]
    async with db.transaction() as session:
        for n, (direction, hour, minute, answered, abandoned, ext) in enumerate(calls):
            start = seoul(hour, minute)
            session.add(Call(linkedid=f"s.{n}", uniqueid=f"s.{n}", direction=direction, from_number="0212345678",
                             to_number="01000000000", started_at=start,
                             answered_at=start + timedelta(seconds=10) if answered else None,
                             billsec=60 if answered else 0, wait_seconds=10 if answered else None,
                             disposition="ANSWERED" if answered else "NO ANSWER", abandoned=abandoned,
                             agent_extension=ext))
        # The next Korean day starts at 15:00 UTC: this one belongs to 03-11, not to the seeded day.
        session.add(Call(linkedid="s.next", uniqueid="s.next", direction="in", started_at=seoul(0, 5, day=11)))


def bars(html: str) -> list[tuple[str, float]]:
    return [(s, float(v)) for s, v in re.findall(r'<rect class="bar s\d" data-series="([^"]+)" data-value="([^"]+)"',
                                                 html)]


async def test_daily_chart_table_and_hour_drilldown(make_panel, any_db) -> None:
    panel = await make_panel(any_db)
    await seed_calls(any_db)
    boss = await panel.login("boss")
    async with boss.http.get("/stats/daily", params={"day": DAY}) as response:
        page = await response.text()
        assert response.status == 200
    found = bars(page)
    assert ("인입", 3.0) in found and ("응답", 2.0) in found and ("큐 포기", 1.0) in found
    assert sum(v for s, v in found if s == "인입") == 5  # 3 at 09h, 1 at 14h, 1 at 23h
    assert f'href="/stats/daily?day={DAY}&amp;hour=9#calls"' in page  # the bar is a link
    assert "2026-03-09" in page and "2026-03-11" in page  # previous / next day
    total = re.search(r"<tfoot><tr><th>합계</th><th class=\"num\">(\d+)</th>", page)
    assert total and total.group(1) == "5"

    async with boss.http.get("/stats/daily", params={"day": DAY, "hour": "9"}) as response:
        page = await response.text()
    calls = re.search(r'<table class="list" id="hour-calls">(.*?)</table>', page, re.S).group(1)
    assert calls.count("<tr>") == 4  # header + the three 09h calls
    status, data = await boss.get_json("/api/stats/daily", day=DAY)
    assert [b["inbound"] for b in data["buckets"] if b["inbound"]] == [3, 1, 1]
    assert data["totals"]["outbound"] == 1

    kim = await panel.login("kim")
    async with kim.http.get("/stats/daily") as response:
        assert response.status == 403  # supervisors only


async def test_monthly_agents_types_and_period_limit(make_panel, db) -> None:
    panel = await make_panel(db)
    await seed_calls(db)
    boss = await panel.login("boss")
    async with boss.http.get("/stats/monthly", params={"month": "2026-03"}) as response:
        page = await response.text()
    assert "2026-02" in page and "2026-04" in page
    assert f'href="/stats/daily?day={DAY}"' in page
    assert sum(v for s, v in bars(page) if s == "인입") == 6
    async with boss.http.get("/stats/agents", params={"start": "2026-03-01", "end": "2026-03-31"}) as response:
        page = await response.text()
    assert "<td>1001</td><td>Kim</td><td class=\"num\">2</td><td class=\"num\">1</td>" in page
    async with boss.http.get("/stats/agents", params={"start": "2025-01-01", "end": "2026-03-31"}) as response:
        assert response.status == 422 and "1년" in await response.text()
    status, data = await boss.get_json("/api/stats/types", start="2025-01-01", end="2026-03-31")
    assert status == 422
    async with boss.http.get("/stats/types") as response:
        assert response.status == 200
    async with boss.http.get("/stats/monthly", params={"month": "2026-13"}) as response:
        assert response.status == 422


async def test_excel_needs_export_permission_and_has_a_chart(make_panel, any_db) -> None:
    panel = await make_panel(any_db)
    await seed_calls(any_db)
    boss = await panel.login("boss")  # supervisor without the export permission
    async with boss.http.get("/stats/daily", params={"day": DAY}) as response:
        assert 'id="stats-export"' not in await response.text()
    async with boss.http.get("/stats/daily.xlsx", params={"day": DAY}) as response:
        assert response.status == 403
        assert not response.content_type.endswith("sheet")
    assert await panel.accounts.audit_entries(action="stats.export") == []  # nothing was produced

    admin = await panel.login("admin")
    async with admin.http.get("/stats/daily.xlsx", params={"day": DAY}) as response:
        assert response.status == 200
        body = await response.read()
    ws = read_xlsx(body)["통계"]
    assert [c.value for c in ws[3]][:6] == ["시간", "인입", "응답", "부재", "큐 포기", "발신"]
    assert [c.value for c in ws[4 + 9]][:3] == [9, 3, 2]
    assert ws.cell(row=4 + 24, column=1).value == "합계" and ws.cell(row=4 + 24, column=2).value == 5
    assert len(ws._charts) == 1
    assert len(await panel.accounts.audit_entries(action="stats.export")) == 1
    for path, sheet in (("/stats/monthly.xlsx?month=2026-03", "통계"),
                        ("/stats/agents.xlsx?start=2026-03-01&end=2026-03-31", "상담원별"),
                        ("/stats/types.xlsx?start=2026-03-01&end=2026-03-31", "상담유형별")):
        async with admin.http.get(path) as response:
            assert response.status == 200, path
            wb = read_xlsx(await response.read())
        assert wb.sheetnames == [sheet] and len(wb[sheet]._charts) == 1
    async with admin.http.get("/stats/agents.xlsx", params={"start": "2024-01-01", "end": "2026-03-31"}) as response:
        assert response.status == 422
