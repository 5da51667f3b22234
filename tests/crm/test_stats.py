"""Statistics by SQL aggregates on SQLite and PostgreSQL; Excel exports read back with openpyxl."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta

import pytest
from openpyxl import load_workbook

from contactd.crm.accounts import AccountService
from contactd.crm.consultation_history import ConsultationHistoryService, HistoryError
from contactd.crm.consultation_types import ConsultationTypeService
from contactd.crm.excel_export import agent_workbook, call_report_workbook, type_workbook
from contactd.crm.stats import StatsError, StatsService
from contactd.crm.tickets import TicketService
from contactd.store.db import Database
from contactd.store.models import Call

DAY = date(2026, 11, 24)


def seoul(hour: int, minute: int = 0, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC) - timedelta(hours=9)


async def seed_calls(db: Database) -> None:
    calls = [
        # 09h: answered queue call (its QueueCallerLeave must not make it abandoned), abandoned, IVR hang-up
        dict(direction="in", started_at=seoul(9, 5), answered_at=seoul(9, 6), billsec=120, wait_seconds=30,
             agent_extension="1001"),
        dict(direction="in", started_at=seoul(9, 10), abandoned=True, wait_seconds=45),
        dict(direction="in", started_at=seoul(9, 20)),
        # 10h: answered + outbound
        dict(direction="in", started_at=seoul(10, 0), answered_at=seoul(10, 0), billsec=60, wait_seconds=10,
             agent_extension="1002"),
        dict(direction="out", started_at=seoul(10, 30), answered_at=seoul(10, 31), billsec=30,
             agent_extension="1001"),
        # 00:30 Seoul is still the 24th (15:30 UTC on the 23rd) and 23:59 Seoul too
        dict(direction="in", started_at=seoul(0, 30)),
        dict(direction="in", started_at=seoul(23, 59)),
        # the day before and after in Seoul time
        dict(direction="in", started_at=seoul(23, 59, DAY - timedelta(days=1))),
        dict(direction="in", started_at=seoul(0, 1, DAY + timedelta(days=1))),
        dict(direction="internal", started_at=seoul(11, 0), answered_at=seoul(11, 0), billsec=5,
             agent_extension="1001"),
    ]
    async with db.transaction() as session:
        for n, values in enumerate(calls):
            session.add(Call(linkedid=f"L{n}", uniqueid=f"U{n}", **values))


async def test_daily_hourly_buckets(any_db: Database) -> None:
    await seed_calls(any_db)
    report = await StatsService(any_db).daily(DAY)
    nine, ten = report.buckets[9], report.buckets[10]
    assert (nine.inbound, nine.answered, nine.abandoned, nine.missed, nine.avg_wait) == (3, 1, 1, 1, 30.0)
    assert (ten.inbound, ten.answered, ten.outbound, ten.avg_talk) == (1, 1, 1, 45.0)
    assert report.buckets[0].inbound == 1 and report.buckets[23].inbound == 1
    assert report.totals.inbound == 6 and report.totals.answered == 2 and report.totals.abandoned == 1
    calls = await StatsService(any_db).bucket_calls(DAY, 9)
    assert [c.linkedid for c in calls] == ["L0", "L1", "L2"]


async def test_monthly_and_agents_and_period_limit(any_db: Database) -> None:
    await seed_calls(any_db)
    stats = StatsService(any_db)
    month = await stats.monthly(2026, 11)
    assert len(month.buckets) == 30
    assert (month.buckets[22].inbound, month.buckets[23].inbound, month.buckets[24].inbound) == (1, 6, 1)
    agents = {row.extension: row for row in await stats.per_agent(date(2026, 11, 1), date(2026, 11, 30))}
    assert (agents["1001"].answered, agents["1001"].outbound, agents["1001"].talk_seconds) == (1, 1, 155)
    with pytest.raises(StatsError, match="1년"):
        await stats.per_agent(date(2025, 1, 1), date(2026, 11, 30))


async def test_exports_have_native_charts(any_db: Database) -> None:
    await seed_calls(any_db)
    stats = StatsService(any_db)
    book = load_workbook(io.BytesIO(call_report_workbook(await stats.daily(DAY), bucket_label="시")))
    ws = book.active
    assert ws["A1"].value == "2026-11-24 일별 통계"
    assert [c.value for c in ws[3]][:3] == ["시", "인입", "응답"]
    assert [c.value for c in ws[13]][:4] == [9, 3, 1, 1]
    assert ws.cell(ws.max_row, 1).value == "합계" and ws.cell(ws.max_row, 2).value == 6
    assert len(ws._charts) == 1
    agents = load_workbook(io.BytesIO(agent_workbook(await stats.per_agent(DAY, DAY), "상담원별"))).active
    assert agents["A4"].value == "1001" and len(agents._charts) == 1


async def test_per_type_and_consultation_history(any_db: Database) -> None:
    kim = await AccountService(any_db).create_user("kim", "password-kim", "agent", extension="1001")
    types = ConsultationTypeService(any_db)
    delivery = await types.add("배송")
    delay = await types.add("지연", parent_id=delivery.id)
    clock_now = [seoul(14)]
    tickets = TicketService(any_db, clock=lambda: clock_now[0])
    await tickets.create(kim, title="배송 지연 문의", body="택배가 안 와요", type1_id=delivery.id, type2_id=delay.id)
    await tickets.create(kim, title="배송 문의", type1_id=delivery.id)
    other = await tickets.create(kim, title="기타", body="영수증 재발행")
    await tickets.add_entry(kim, other.id, "현금영수증 발급 완료")
    rows = await StatsService(any_db).per_type(DAY, DAY)
    assert sorted((r.level1, r.level2, r.count) for r in rows) == [("미분류", "", 1), ("배송", "", 1),
                                                                    ("배송", "지연", 1)]
    sheet = load_workbook(io.BytesIO(type_workbook(rows, "유형별"))).active
    assert len(sheet._charts) == 1
    history = ConsultationHistoryService(any_db)
    assert [r.ticket.title for r in await history.search(start=DAY, end=DAY, keyword="영수증")] == ["기타"]
    assert {r.ticket.title for r in await history.search(start=DAY, end=DAY, type_id=delivery.id)} == \
        {"배송 지연 문의", "배송 문의"}
    with pytest.raises(HistoryError, match="31일"):
        await history.search(start=date(2026, 10, 1), end=DAY)
    exported = load_workbook(io.BytesIO(await history.export(await history.search(start=DAY, end=DAY)))).active
    assert exported["A3"].value == "접수번호" and exported.max_row == 6
