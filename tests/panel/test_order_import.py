"""The order import wizard over HTTP: upload → sheet/header/mapping → import → report, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from orders_helpers import (
    HEADER,
    order_rows,
    report_value,
    run_import,
    selected_mapping,
    upload,
    workbook_bytes,
)

from contactd.crm.orders import OrderService
from contactd.panel import keys

MAPPING = {"source": "A", "customer_name": "B", "phone": "C", "product": "D", "quantity": "E", "amount": "F",
           "order_no": "G", "order_date": "H", "status": "I", "invoice": "J"}


async def test_good_file_through_the_wizard_then_reimport_doubles_nothing(make_panel, any_db) -> None:
    panel = await make_panel(any_db)
    boss = await panel.login("boss")
    rows = order_rows(3) + [["스마트스토어", "고객0", "010-1234-0000", "추가상품", 1, 500, "A0000", "2026-03-02",
                             "주문", "INV00000"]]  # a second line of order A0000
    data = workbook_bytes(rows)
    status, token = await upload(boss, data)
    assert status == 302

    async with boss.http.get(f"/orders/import/{token}", params={"sheet": "주문", "header_row": "1"}) as response:
        page = await response.text()
        assert response.status == 200
    assert selected_mapping(page) == MAPPING  # prefilled from the header texts
    assert "고객0" in page and "INV00002" in page  # preview rows
    assert "data" not in token and len(token) >= 22

    status, page = await run_import(boss, token, "주문", 1, MAPPING)
    assert status == 200, page
    assert report_value(page, "orders-created") == "3"
    assert report_value(page, "lines-created") == "4"
    assert report_value(page, "sources-created") == "스마트스토어"
    views = await OrderService(any_db).search(period="all")
    assert sorted(v.order.order_no for v in views) == ["A0000", "A0001", "A0002"]
    first = next(v for v in views if v.order.order_no == "A0000")
    assert [line.product_name for line in first.lines] == ["상품0", "추가상품"]
    assert first.order.phone == "01012340000"

    # The upload is gone after the import: the same token cannot import twice.
    async with boss.http.get(f"/orders/import/{token}") as response:
        assert response.status == 404

    status, token2 = await upload(boss, data)
    status, page = await run_import(boss, token2, "주문", 1, MAPPING)
    assert report_value(page, "orders-created") == "0"
    assert report_value(page, "duplicates") == "3"
    assert len(await OrderService(any_db).search(period="all")) == 3


async def test_wrong_sheet_missing_columns_and_bad_dates(make_panel, db) -> None:
    panel = await make_panel(db)
    boss = await panel.login("boss")
    rows = order_rows(2) + [["스마트스토어", "고객9", "", "상품9", 1, 1000, "A0009", "3월 어느날", "주문", ""]]
    status, token = await upload(boss, workbook_bytes(rows))

    # Wrong sheet: the memo sheet has no orders; a sheet that does not exist is refused with the real list.
    async with boss.http.get(f"/orders/import/{token}", params={"sheet": "없는시트"}) as response:
        page = await response.text()
        assert response.status == 422
    assert "없는시트" in page and "주문" in page
    status, page = await run_import(boss, token, "없는시트", 1, MAPPING)
    assert status == 422 and "시트가 없습니다" in page

    # Missing required columns: nothing imported, the file is kept so the mapping can be fixed.
    status, page = await run_import(boss, token, "주문", 1, {k: v for k, v in MAPPING.items() if k != "order_no"})
    assert status == 422 and "주문번호" in page
    assert await OrderService(db).search(period="all") == []

    # Bad date: that row is reported with its row number; the others import.
    status, page = await run_import(boss, token, "주문", 1, MAPPING)
    assert status == 200
    assert report_value(page, "orders-created") == "2"
    assert report_value(page, "error-count") == "1"
    assert "<td>4</td>" in page and "날짜 형식이 아닙니다" in page


async def test_header_row_three_and_none(make_panel, db) -> None:
    panel = await make_panel(db)
    boss = await panel.login("boss")
    status, token = await upload(boss, workbook_bytes(order_rows(2), lead_rows=2, extra_sheet=None))
    async with boss.http.get(f"/orders/import/{token}", params={"header_row": "3"}) as response:
        page = await response.text()
    assert selected_mapping(page) == MAPPING
    status, page = await run_import(boss, token, "주문", 3, MAPPING)
    assert report_value(page, "orders-created") == "2"

    status, token = await upload(boss, workbook_bytes(order_rows(2, prefix="N"), header=None, extra_sheet=None))
    async with boss.http.get(f"/orders/import/{token}", params={"header_row": "0"}) as response:
        assert selected_mapping(await response.text()) == {}  # nothing to match without a header
    status, page = await run_import(boss, token, "주문", 0, MAPPING)
    assert report_value(page, "orders-created") == "2"


async def test_upload_is_bound_to_the_session_and_agents_cannot_import(make_panel, db) -> None:
    panel = await make_panel(db)
    boss = await panel.login("boss")
    admin = await panel.login("admin")
    kim = await panel.login("kim")
    status, token = await upload(boss, workbook_bytes(order_rows(1)))
    async with admin.http.get(f"/orders/import/{token}") as response:
        assert response.status == 404  # another session cannot use the token
    status, page = await run_import(admin, token, "주문", 1, MAPPING)
    assert status == 404
    async with kim.http.get("/orders/import") as response:
        assert response.status == 403
    status, _ = await upload(kim, workbook_bytes(order_rows(1)))
    assert status == 403
    # Not an xlsx: refused at once, nothing stored.
    store = panel.app[keys.ORDER_UPLOADS]
    before = len(list(store.directory.iterdir()))
    status, page = await upload(boss, b"name,phone\n", name="orders.csv")
    assert status == 422 and "엑셀" in page
    assert len(list(store.directory.iterdir())) == before


async def test_api_import_one_shot(make_panel, db) -> None:
    import aiohttp

    panel = await make_panel(db)
    boss = await panel.login("boss")
    form = aiohttp.FormData()
    form.add_field("file", workbook_bytes(order_rows(2)), filename="o.xlsx")
    form.add_field("sheet", "주문")
    form.add_field("header_row", "1")
    for key, col in MAPPING.items():
        form.add_field(f"col_{key}", col)
    async with boss.http.post("/api/orders/import", data=form, headers=boss.headers()) as response:
        report = await response.json()
    assert response.status == 200
    assert report["orders_created"] == 2 and report["sources_created"] == ["스마트스토어"]
    assert HEADER[0] == "주문처"


@pytest.mark.parametrize("age,found", [(10, True), (4000, False)])
def test_upload_store_expires_after_an_hour(tmp_path, age, found) -> None:
    from contactd.panel.uploads import UploadStore

    now = [1000.0]
    store = UploadStore(tmp_path / "u", clock=lambda: now[0])
    token = store.put("owner", b"xlsx-bytes", "a.xlsx")
    now[0] += age
    assert (store.get(token, "owner") is not None) is found
    assert store.get(token, "someone-else") is None
    assert store.get("../../etc/passwd", "owner") is None
