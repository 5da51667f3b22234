"""Traps an operator walks into in the shop-side services: same-instant saves, day boundaries in Korea time,
Excel cells as Excel really stores them, pasted numbers as people really paste them (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select

from contactd.config import HoursConfig, SmsConfig
from contactd.crm.accounts import AccountService
from contactd.crm.business_hours import BusinessHours
from contactd.crm.consultation_types import ConsultationTypeError, ConsultationTypeService
from contactd.crm.order_import import import_orders, parse_date
from contactd.crm.orders import OrderError, OrderService
from contactd.crm.sms import Recipient, SmsService, parse_quiet_hours, quiet_until
from contactd.crm.sms_gateways import OutboxGateway
from contactd.crm.sms_text import SmsError, parse_bulk, validate_message
from contactd.crm.stats import StatsService
from contactd.crm.tickets import TicketService
from contactd.store.db import Database
from contactd.store.models import Call, Order, OrderLine, Ticket, User

SEOUL_OFFSET = timedelta(hours=9)
MAPPING = {"source": "A", "order_no": "B", "order_date": "C", "customer_name": "D", "phone": "E", "product": "F",
           "quantity": "G", "amount": "H"}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def workbook(rows: list[list[object]]) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.title = "주문"
    ws.append(["주문처", "주문번호", "주문일", "고객명", "전화번호", "상품명", "수량", "결제금액"])
    for row in rows:
        ws.append(row)
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


@pytest.fixture
async def kim(any_db: Database) -> User:
    return await AccountService(any_db).create_user("kim", "password-kim", "agent", extension="1001")


@pytest.fixture
async def lee(any_db: Database) -> User:
    return await AccountService(any_db).create_user("lee", "password-lee", "agent", extension="1002")


# ---- tickets ------------------------------------------------------------------------------------------------------
async def test_two_agents_saving_at_the_same_instant_both_get_a_ticket(any_db: Database, kim: User,
                                                                       lee: User) -> None:
    service = TicketService(any_db, clock=Clock(datetime(2026, 11, 24, 3, 0, tzinfo=UTC)))
    made = await asyncio.wait_for(asyncio.gather(
        *(service.create(kim if i % 2 else lee, title=f"문의 {i}") for i in range(6))), timeout=30)
    numbers = sorted(t.number for t in made)
    assert numbers == [f"T20261124-{n:04d}" for n in range(1, 7)]


async def test_ticket_number_takes_the_korean_date_just_after_midnight(any_db: Database, kim: User) -> None:
    # 2026-11-24 15:30 UTC is 00:30 on the 25th in Seoul: the new day's numbering starts at 0001.
    clock = Clock(datetime(2026, 11, 24, 14, 0, tzinfo=UTC))
    service = TicketService(any_db, clock=clock)
    assert (await service.create(kim, title="전날")).number == "T20261124-0001"
    clock.now = datetime(2026, 11, 24, 15, 30, tzinfo=UTC)
    assert (await service.create(kim, title="다음날")).number == "T20261125-0001"


async def test_todays_calls_count_the_korean_day(any_db: Database, kim: User) -> None:
    async with any_db.transaction() as session:
        for started in (datetime(2026, 11, 23, 14, 59, tzinfo=UTC),  # 23:59 on the 23rd in Seoul
                        datetime(2026, 11, 23, 15, 0, tzinfo=UTC),  # 00:00 on the 24th
                        datetime(2026, 11, 24, 14, 59, tzinfo=UTC)):  # 23:59 on the 24th
            session.add(Call(linkedid=f"c{started.timestamp()}", uniqueid="u", direction="in", from_number="01012345678",
                             to_number="1001", agent_extension="1001", started_at=started))
    service = TicketService(any_db, clock=Clock(datetime(2026, 11, 24, 14, 59, tzinfo=UTC)))
    assert (await service.inbox_counts(kim)).todays_calls == 2


# ---- SMS ----------------------------------------------------------------------------------------------------------
def test_quiet_hours_with_the_same_start_and_end_hold_nothing_back() -> None:
    quiet = parse_quiet_hours("22:00-22:00")
    for hour in (0, 12, 22, 23):
        at = datetime.combine(date(2026, 11, 24), time(hour), UTC) - SEOUL_OFFSET
        assert quiet_until(at, quiet) is None


@pytest.mark.parametrize("spec", ["22:00", "22:00-08:00-09:00", "25:00-08:00", "밤-아침"])
def test_malformed_quiet_hours_are_refused_with_the_setting_named(spec: str) -> None:
    with pytest.raises(SmsError, match="quiet_hours"):
        parse_quiet_hours(spec)


def test_bulk_paste_of_the_full_10000_numbers_merges_duplicates() -> None:
    # Seed notations only (010-0000-0000 / 01000000000); other notations come back as invalid lines to fix.
    lines = [f"010-{i // 10000:04d}-{i % 10000:04d}" for i in range(10_000)]
    parsed = parse_bulk("\n".join([*lines, "01000000007", "+82 10-1234-5678"]))
    assert len(parsed.numbers) == 10_000 and parsed.numbers[7] == "01000000007"
    assert parsed.duplicates == 1 and parsed.invalid == [(10_002, "+82 10-1234-5678")]


def test_lms_subject_of_exactly_40_bytes_and_mms_with_empty_body() -> None:
    assert validate_message("가" * 50, "제" * 20).kind == "LMS"
    with pytest.raises(SmsError, match="40"):
        validate_message("가" * 50, "제" * 20 + "!")
    assert validate_message("", "사진", has_image=True).kind == "MMS"


async def test_scheduled_exactly_ten_minutes_ahead_can_still_be_cancelled(any_db: Database, tmp_path: Path) -> None:
    now = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
    clock = Clock(now)
    sms = SmsService(any_db, OutboxGateway(tmp_path / "spool"), SmsConfig(sender="0212345678",
                                                                          spool_dir=str(tmp_path / "spool")),
                     clock=clock)
    result = await sms.compose([Recipient("01012345678")], "{오늘날짜} 안내", scheduled_at=now + timedelta(minutes=10))
    assert (await sms.cancel(result.message.id)).status == "cancelled"
    late = await sms.compose([Recipient("01012345678")], "안내", scheduled_at=now + timedelta(minutes=9, seconds=59))
    with pytest.raises(SmsError, match="10분"):
        await sms.cancel(late.message.id)


async def test_today_placeholder_uses_the_korean_date_of_the_send(any_db: Database, tmp_path: Path) -> None:
    now = datetime(2026, 11, 24, 15, 30, tzinfo=UTC)  # 00:30 on the 25th in Seoul
    sms = SmsService(any_db, OutboxGateway(tmp_path / "spool"), SmsConfig(sender="0212345678",
                                                                          spool_dir=str(tmp_path / "spool")),
                     clock=Clock(now))
    result = await sms.compose([Recipient("01012345678")], "{오늘날짜} 발송")
    [row] = await sms.recipients(result.message.id)
    assert row.body == "2026-11-25 발송"


# ---- orders -------------------------------------------------------------------------------------------------------
async def test_numeric_phone_cell_keeps_its_leading_zero_and_is_found_by_hyphenated_search(any_db: Database) -> None:
    data = workbook([["쿠팡", "C-1", date(2026, 11, 20), "홍길동", 1012345678.0, "코트", 1, 1000],
                     ["쿠팡", "C-2", date(2026, 11, 20), "김철수", 212345678, "모자", 1, 1000],
                     ["쿠팡", "C-3", date(2026, 11, 20), "박대표", 15881234, "양말", 1, 1000]])
    report = await import_orders(any_db, data, sheet="주문", header_row=1, mapping=MAPPING)
    assert report.orders_created == 3 and not report.errors
    orders = OrderService(any_db)
    [found] = await orders.search(period="all", today=date(2026, 11, 24), phone="010-1234-5678")
    assert found.order.order_no == "C-1" and found.order.phone == "01012345678"
    [seoul] = await orders.search(period="all", today=date(2026, 11, 24), phone="02-1234-5678")
    assert seoul.order.order_no == "C-2"
    [shop] = await orders.search(period="all", today=date(2026, 11, 24), phone="1588-1234")
    assert shop.order.phone == "15881234"


@pytest.mark.parametrize("raw, expected", [
    ("2026-11-24 13:45:00", date(2026, 11, 24)), ("2026. 11. 24.", date(2026, 11, 24)),
    ("2026. 11. 24. 오후 1:45:00", date(2026, 11, 24)), ("2026/1/5", date(2026, 1, 5)),
    (20261124, date(2026, 11, 24)), (46350.5, date(2026, 11, 24)), ("20261124", date(2026, 11, 24)),
])
def test_excel_dates_as_shops_export_them(raw: object, expected: date) -> None:
    assert parse_date(raw) == expected


async def test_reimport_of_an_order_split_across_chunks_counts_it_once(any_db: Database,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("contactd.crm.order_import.CHUNK", 3)
    rows = [["쿠팡", f"S-{i // 2}", date(2026, 11, 20), "홍길동", "01012345678", f"상품{i}", 1, 1000] for i in range(8)]
    # rows 2..9; order S-1 has rows 4 and 5 (chunk 1 and 2 with CHUNK=3)
    first = await import_orders(any_db, workbook(rows), sheet="주문", header_row=1, mapping=MAPPING)
    assert (first.orders_created, first.lines_created) == (4, 8)
    again = await import_orders(any_db, workbook(rows), sheet="주문", header_row=1, mapping=MAPPING)
    assert (again.orders_created, again.lines_created, again.duplicates_skipped) == (0, 0, 4)
    async with any_db.session() as session:
        assert await session.scalar(select(func.count()).select_from(OrderLine)) == 8


async def test_two_sources_may_share_an_order_number(any_db: Database) -> None:
    data = workbook([["쿠팡", "1001", date(2026, 11, 20), "홍길동", "", "코트", 1, 1000],
                     ["11번가", 1001, date(2026, 11, 21), "김철수", "", "모자", 2, 2000]])
    report = await import_orders(any_db, data, sheet="주문", header_row=1, mapping=MAPPING)
    assert report.orders_created == 2
    views = await OrderService(any_db).search(period="all", today=date(2026, 11, 24), order_no="1001")
    assert sorted(v.source for v in views) == ["11번가", "쿠팡"]


async def test_an_already_returned_line_cannot_be_returned_again(any_db: Database, kim: User) -> None:
    data = workbook([["쿠팡", "R-1", date(2026, 11, 20), "홍길동", "01012345678", "코트", 1, 1000]])
    await import_orders(any_db, data, sheet="주문", header_row=1, mapping=MAPPING)
    orders = OrderService(any_db)
    [view] = await orders.search(period="all", today=date(2026, 11, 24), order_no="R-1")
    await orders.start_return(kim, view.order.id, [view.lines[0].id])
    with pytest.raises(OrderError, match="반품"):
        await orders.start_return(kim, view.order.id, [view.lines[0].id])
    async with any_db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Ticket)) == 1
        assert (await session.get(Order, view.order.id)).status == "return"
    # The customer changing their mind to an exchange is still possible.
    assert "교환" in (await orders.start_exchange(kim, view.order.id, [view.lines[0].id])).title


# ---- consultation types -------------------------------------------------------------------------------------------
async def test_consultation_type_rename_rules(any_db: Database) -> None:
    types = ConsultationTypeService(any_db)
    delivery = await types.add("배송")
    late = await types.add("지연", parent_id=delivery.id)
    # A name used on another level is fine: uniqueness is per level.
    assert (await types.rename(late.id, "배송")).name == "배송"
    with pytest.raises(ConsultationTypeError):
        await types.rename(delivery.id, "   ")
    other = await types.add("환불")
    with pytest.raises(ConsultationTypeError, match="이미"):
        await types.rename(other.id, " 배송 ")


# ---- statistics ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("year, month, days", [(2026, 1, 31), (2026, 2, 28), (2028, 2, 29), (2026, 12, 31)])
async def test_monthly_stats_cover_every_korean_day_of_the_month(any_db: Database, year: int, month: int,
                                                                 days: int) -> None:
    first = datetime(year, month, 1, tzinfo=UTC) - SEOUL_OFFSET  # 00:00 on the 1st in Seoul
    last = first + timedelta(days=days) - timedelta(seconds=1)  # 23:59:59 on the last day in Seoul
    async with any_db.transaction() as session:
        for i, started in enumerate((first - timedelta(seconds=1), first, last, last + timedelta(seconds=1))):
            session.add(Call(linkedid=f"m{i}", uniqueid=f"m{i}", direction="in", from_number="01012345678", to_number="1001",
                             started_at=started, answered_at=started, billsec=10, agent_extension=None))
    report = await StatsService(any_db).monthly(year, month)
    assert len(report.buckets) == days
    assert report.buckets[0].inbound == 1 and report.buckets[-1].inbound == 1 and report.totals.inbound == 2
    assert await StatsService(any_db).per_agent(date(year, month, 1), date(year, month, days)) == []


# ---- business hours -----------------------------------------------------------------------------------------------
async def test_overnight_range_and_a_holiday_starting_at_midnight(any_db: Database) -> None:
    hours = BusinessHours(any_db, HoursConfig(mon="22:00-02:00", tue="22:00-02:00", wed="", thu="", fri="",
                                              sat="", sun=""))
    await hours.add_holiday(date(2026, 11, 24))  # a Tuesday

    def seoul(day: int, hour: int, minute: int = 0) -> datetime:
        return datetime(2026, 11, day, hour, minute, tzinfo=UTC) - SEOUL_OFFSET

    assert await hours.is_open(seoul(23, 23, 59))  # Monday night
    assert await hours.is_open(seoul(24, 0, 0))  # Monday's range runs into the holiday
    assert await hours.is_open(seoul(24, 1, 59))
    assert not await hours.is_open(seoul(24, 2, 0))
    assert not await hours.is_open(seoul(24, 22, 0))  # the holiday's own range never opens
    assert not await hours.is_open(seoul(25, 1, 0))


# ---- customers ----------------------------------------------------------------------------------------------------
async def test_customer_import_numeric_cells_keep_mobile_zero_and_shop_numbers_as_they_are(any_db: Database) -> None:
    from contactd.crm.customer_import import import_customers
    from contactd.crm.customers import CustomerService

    wb = Workbook()
    ws = wb.active
    ws.append(["이름", "휴대폰", "전화"])
    ws.append(["홍길동", 1012345678.0, 15881234])
    ws.append(["김철수", 1098765432, 212345678])
    buffer = io.BytesIO()
    wb.save(buffer)
    report = await import_customers(any_db, buffer.getvalue(), sheet=None, start_row=2,
                                    columns={"name": "A", "mobile": "B", "phone": "C"})
    assert report.imported == 2 and not report.errors
    customers = CustomerService(any_db)
    [hong] = await customers.find_by_number("1588-1234")
    assert hong.name == "홍길동" and hong.mobile == "01012345678"
    [kim] = await customers.find_by_number("02-1234-5678")
    assert kim.name == "김철수"
    with pytest.raises(Exception, match="휴대폰"):
        await customers.create(name="동명이인", mobile="+82 10 1234 5678")


async def test_call_history_finds_a_number_typed_in_international_form(any_db: Database) -> None:
    from contactd.crm.call_history import CallHistoryService

    started = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
    async with any_db.transaction() as session:
        session.add(Call(linkedid="h1", uniqueid="h1", direction="in", from_number="01012345678", to_number="1001",
                         started_at=started))
    history = CallHistoryService(any_db, clock=Clock(started + timedelta(hours=1)))
    for typed in ("+82 10-1234-5678", "010-1234-5678", "5678"):
        assert [row.call.linkedid for row in (await history.search(query=typed)).rows] == ["h1"], typed
