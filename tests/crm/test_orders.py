"""Orders, products, unified search, returns/exchanges and the order Excel import (seed 003 §3, §5; seed 004)."""

from __future__ import annotations

import io
from datetime import date, datetime

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select

from contactd.crm.accounts import AccountService
from contactd.crm.order_import import ImportFileError, import_orders, preview
from contactd.crm.orders import LineInput, OrderError, OrderService, ProductService
from contactd.store.db import Database
from contactd.store.models import Order, OrderLine, OrderSource, User

TODAY = date(2026, 11, 24)
HEADER = ["주문처", "주문번호", "주문일", "고객명", "전화번호", "상품명", "수량", "결제금액", "상태", "송장번호", "주소"]
MAPPING = {"source": "A", "order_no": "B", "order_date": "C", "customer_name": "D", "phone": "E", "product": "F",
           "quantity": "G", "amount": "H", "status": "I", "invoice": "J", "address": "K"}


def workbook(rows: list[list[object]], *, sheet: str = "주문", header_rows: int = 1) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.title = sheet
    for _ in range(header_rows - 1):
        ws.append(["2026년 11월 주문 내역"])
    if header_rows:
        ws.append(HEADER)
    for row in rows:
        ws.append(row)
    wb.create_sheet("메모").append(["이 시트는 무시"])
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


GOOD = [
    ["스마트스토어", "A-1001", datetime(2026, 11, 20), "홍길동", "010-1234-5678", "니트 스웨터", 1, "39,000", "주문",
     "6012345678", "서울시 강남구"],
    ["스마트스토어", "A-1001", datetime(2026, 11, 20), "홍길동", "010-1234-5678", "머플러", 2, 15000, "", "6012345678",
     "서울시 강남구"],
    ["쿠팡", "A-1001", "2026.11.21", "김태희", "01098765432", "코트", 1, 129000, "교환", "", "부산시"],
    ["자사몰", "M-77", 46345, "이순신", "+82 10 5555 6666", "장갑", 3, 9000, "반품", "", "여수시"],
]


async def count(db: Database, model) -> int:  # type: ignore[no-untyped-def]
    async with db.session() as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


async def test_import_groups_lines_creates_sources_and_never_doubles(any_db: Database) -> None:
    data = workbook(GOOD)
    report = await import_orders(any_db, data, sheet="주문", header_row=1, mapping=MAPPING)
    assert (report.rows_read, report.orders_created, report.lines_created) == (4, 3, 4)
    assert sorted(report.sources_created) == ["스마트스토어", "자사몰", "쿠팡"]
    again = await import_orders(any_db, data, sheet="주문", header_row=1, mapping=MAPPING)
    assert (again.orders_created, again.lines_created, again.duplicates_skipped) == (0, 0, 3)
    assert await count(any_db, Order) == 3 and await count(any_db, OrderLine) == 4
    found = await OrderService(any_db).search(period="all", phone="010-5555-6666")
    assert [(v.order.order_no, v.order.order_date, v.order.status, v.source) for v in found] == \
        [("M-77", date(2026, 11, 19), "return", "자사몰")]


async def test_bad_rows_are_reported_and_skipped(any_db: Database) -> None:
    rows = [*GOOD[:1],
            ["쿠팡", "B-1", "어제", "김", "", "모자", 1, 1000, "", "", ""],
            ["쿠팡", "B-2", "2026-11-22", "박", "abc", "모자", 1, 1000, "", "", ""],
            ["쿠팡", "", "2026-11-22", "최", "", "모자", 1, 1000, "", "", ""],
            ["쿠팡", "B-3", "2026-11-22", "정", "", "모자", "two", 1000, "", "", ""],
            ["쿠팡", "B-4", "2026-11-22", "한", "", "모자", 1, 1000, "취소", "", ""]]
    report = await import_orders(any_db, workbook(rows), sheet="주문", header_row=1, mapping=MAPPING)
    assert report.orders_created == 1
    assert [(e.row, e.message.split(":")[0]) for e in report.errors] == [
        (3, "날짜 형식이 아닙니다"), (4, "전화번호가 올바르지 않습니다 ('abc')"), (5, "필수 값이 비어 있습니다"),
        (6, "수량"), (7, "상태는 주문/교환/반품 중 하나입니다 ('취소')")]


async def test_header_row_options_and_preview(any_db: Database) -> None:
    data = workbook(GOOD[:2], header_rows=2)
    shown = preview(data, "주문", header_row=2, rows=5)
    assert shown.sheets == ["주문", "메모"] and shown.header[:2] == ["주문처", "주문번호"]
    assert shown.rows[0][1] == "A-1001" and shown.columns[:3] == ["A", "B", "C"]
    report = await import_orders(any_db, data, sheet="주문", header_row=2, mapping=MAPPING)
    assert report.orders_created == 1
    headless = workbook(GOOD[3:], header_rows=0)
    assert (await import_orders(any_db, headless, sheet="주문", header_row=0, mapping=MAPPING)).orders_created == 1


async def test_broken_files_import_nothing(any_db: Database) -> None:
    with pytest.raises(ImportFileError, match="시트"):
        await import_orders(any_db, workbook(GOOD), sheet="Sheet9", header_row=1, mapping=MAPPING)
    with pytest.raises(ImportFileError, match="필수"):
        await import_orders(any_db, workbook(GOOD), sheet="주문", header_row=1, mapping={"source": "A"})
    with pytest.raises(ImportFileError, match="xlsx"):
        await import_orders(any_db, b"PK\x03\x04 not really a zip", sheet="주문", header_row=1, mapping=MAPPING)
    data = workbook(GOOD * 10)
    truncated = data[: len(data) // 2]
    with pytest.raises(ImportFileError):
        await import_orders(any_db, truncated, sheet="주문", header_row=1, mapping=MAPPING)
    assert await count(any_db, Order) == 0 and await count(any_db, OrderSource) == 0


@pytest.fixture
async def agent(any_db: Database) -> User:
    return await AccountService(any_db).create_user("kim", "password-kim", "agent", extension="1001")


async def test_returns_and_exchanges_make_linked_tickets(any_db: Database, agent: User) -> None:
    await import_orders(any_db, workbook(GOOD), sheet="주문", header_row=1, mapping=MAPPING)
    orders = OrderService(any_db)
    [view] = await orders.search(period="all", order_no="A-1001", name="홍길동")
    sweater, scarf = view.lines
    ticket = await orders.start_return(agent, view.order.id, [scarf.id], reason="색상 불만")
    assert ticket.order_id == view.order.id and ticket.order_line_id == scarf.id
    assert "주문번호 A-1001" in ticket.body and "송장번호 6012345678" in ticket.body and "머플러 × 2" in ticket.body
    coat = await ProductService(any_db).save("P-COAT", "롱코트")
    other = await orders.start_exchange(agent, view.order.id, [sweater.id], new_product_id=coat.id,
                                        new_amount=59000, new_quantity=1)
    assert "다른 상품 교환" in other.title and "롱코트 × 1 (59,000원)" in other.body
    refreshed = await orders.view(view.order.id)
    assert [line.status for line in refreshed.lines] == ["exchange", "return"]
    assert [t.id for t in refreshed.tickets] == [ticket.id, other.id]
    [coupang] = await orders.search(period="all", order_no="A-1001", name="김태희")
    with pytest.raises(OrderError, match="없는 상품"):
        await orders.start_return(agent, coupang.order.id, [scarf.id])


async def test_order_crud_and_search_periods(any_db: Database) -> None:
    orders = OrderService(any_db)
    with pytest.raises(OrderError, match="주문처"):
        await orders.create(order_no="X", order_date=TODAY, lines=[LineInput("양말")], source_id=999)
    made = await orders.create(order_no="N-1", order_date=TODAY, lines=[LineInput("양말", 2, 5000)], source_id=None,
                               customer_name="박지성", phone="010-2222-3333")
    with pytest.raises(OrderError, match="이미"):
        await orders.create(order_no="N-1", order_date=TODAY, lines=[LineInput("양말")], source_id=None)
    old = await orders.create(order_no="N-0", order_date=date(2026, 6, 1), lines=[LineInput("모자")], source_id=None)
    assert [v.order.id for v in await orders.search(period="today", today=TODAY)] == [made.id]
    assert {v.order.id for v in await orders.search(period="all", today=TODAY)} == {made.id, old.id}
    await orders.update(made.id, invoice="555", lines=[LineInput("양말", 3, 7500)])
    assert [(v.order.invoice, v.lines[0].quantity) for v in await orders.search(period="week", today=TODAY,
                                                                                invoice="555")] == [("555", 3)]
    await orders.delete(old.id)
    assert await count(any_db, Order) == 1


async def test_product_image_limit(any_db: Database) -> None:
    products = ProductService(any_db)
    with pytest.raises(OrderError, match="300KB"):
        await products.save("P1", "니트", image=b"\xff\xd8\xff" + b"0" * (300 * 1024))
    with pytest.raises(OrderError, match="JPG"):
        await products.save("P1", "니트", image=b"%PDF-1.4")
    saved = await products.save("P1", "니트", image=b"\xff\xd8\xff" + b"0" * 1000, image_type="image/jpeg")
    with pytest.raises(OrderError, match="이미"):
        await products.save("P1", "다른 니트")
    assert [p.id for p in await products.list("니트")] == [saved.id]


async def test_a_return_whose_ticket_cannot_be_saved_changes_nothing(any_db: Database, agent: User) -> None:
    from sqlalchemy.exc import IntegrityError

    await import_orders(any_db, workbook(GOOD), sheet="주문", header_row=1, mapping=MAPPING)
    orders = OrderService(any_db)
    [view] = await orders.search(period="all", order_no="A-1001", name="홍길동")
    ghost = User(id=987654, username="ghost", password_hash="x", role="agent")  # not in the users table
    with pytest.raises(IntegrityError):
        await orders.start_return(ghost, view.order.id, [view.lines[0].id])
    after = await orders.view(view.order.id)
    assert after.order.status == "order" and [line.status for line in after.lines] == ["order", "order"]
    assert after.tickets == []
    ticket = await orders.start_return(agent, view.order.id, [view.lines[0].id])  # a real agent: both saved
    after = await orders.view(view.order.id)
    assert after.lines[0].status == "return" and [t.id for t in after.tickets] == [ticket.id]
