"""Orders, order import, returns and statistics in Chromium against the whole daemon (simulated PBX).

Uses the session's shared daemon / browser fixtures (conftest.py). Screenshots: test-artifacts/screenshots/orders-*.png,
stats-*.png (one of them print-emulated).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from browser_helpers import logged_in_page, shot
from orders_helpers import order_rows, workbook_bytes

from contactd.store.models import Call

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def base(daemon: Any) -> str:
    return f"http://127.0.0.1:{daemon.web_port}"


async def test_import_search_and_return_in_the_browser(daemon: Any, browser: Any) -> None:
    page = await logged_in_page(browser, daemon, "admin")
    await page.goto(base(daemon) + "/orders/import")
    await page.set_input_files('input[name="file"]', files=[{
        "name": "주문목록.xlsx", "mimeType": XLSX, "buffer": workbook_bytes(order_rows(3, prefix="WEB"))}])
    await page.click("#order-upload button[type=submit]")
    await page.wait_for_selector("#mapping-form")
    await page.select_option('select[name="sheet"]', "주문")  # the first sheet is a memo: choose the orders
    await page.wait_for_selector('#import-preview td:has-text("WEB0001")')
    assert await page.locator('select[name="col_order_no"]').input_value() == "G"  # matched to "주문번호"
    await page.screenshot(path=shot("orders-import-mapping.png"), full_page=True)
    await page.click("#import-run")
    await page.wait_for_selector("#import-report")
    assert await page.locator("#orders-created").inner_text() == "3"
    await page.screenshot(path=shot("orders-import-report.png"), full_page=True)

    await page.goto(base(daemon) + "/orders")
    await page.check('input[name="period"][value="all"]')
    await page.fill('input[name="name"]', "고객1")
    await page.click("#order-search button[type=submit]")
    rows = page.locator("#order-list tbody tr")
    assert await rows.count() == 1 and "WEB0001" in await rows.inner_text()
    await page.screenshot(path=shot("orders-search.png"), full_page=True)

    await page.click('#order-list a:has-text("WEB0001")')
    await page.wait_for_selector("#claim-form")
    await page.fill('#claim-form input[name="reason"]', "사이즈가 맞지 않음")
    await page.click("#claim-return")
    created = page.locator("#order-tickets tr.created")
    await created.wait_for()
    assert "반품 접수 WEB0001" in await created.inner_text()
    assert "반품" in await page.locator("#order-lines").inner_text()
    await page.screenshot(path=shot("orders-return-ticket.png"), full_page=True)

    await page.goto(base(daemon) + "/products")
    await page.fill('#product-new input[name="code"]', "P-100")
    await page.fill('#product-new input[name="name"]', "여름 반팔 티셔츠")
    await page.click("#product-new button[type=submit]")
    await page.wait_for_selector('#product-list input[value="여름 반팔 티셔츠"]')
    await page.screenshot(path=shot("orders-products.png"), full_page=True)
    await page.goto(base(daemon) + "/consultations")
    assert "반품 접수 WEB0001" in await page.locator("#history-list").inner_text()
    await page.screenshot(path=shot("orders-consultations.png"), full_page=True)
    await page.context.close()


async def test_daily_statistics_chart_and_print(daemon: Any, browser: Any) -> None:
    day = datetime(2026, 3, 10, tzinfo=UTC) - timedelta(hours=9)  # 00:00 Seoul
    async with daemon.services.db.transaction() as session:
        for n, hour in enumerate((9, 9, 10, 14, 14, 14, 17)):
            start = day + timedelta(hours=hour, minutes=n)
            session.add(Call(linkedid=f"b.{n}", uniqueid=f"b.{n}", direction="in", from_number="01012345678",
                             started_at=start, answered_at=start + timedelta(seconds=8) if n % 3 else None,
                             billsec=90 if n % 3 else 0, wait_seconds=8 if n % 3 else None,
                             agent_extension="1001" if n % 3 else None))
    page = await logged_in_page(browser, daemon, "admin")
    await page.goto(base(daemon) + "/stats/daily?day=2026-03-10")
    chart = page.locator("svg.chart")
    await chart.wait_for()
    inbound = page.locator('svg.chart rect.bar[data-series="인입"]')
    assert await inbound.count() == 4  # the four hours with calls
    assert await page.locator('svg.chart rect.bar[data-series="인입"][data-value="3"]').count() == 1
    await page.screenshot(path=shot("stats-daily.png"), full_page=True)
    await page.locator("svg.chart a.bucket").nth(2).click()  # the 14h bar
    await page.wait_for_selector("#hour-calls")
    assert await page.locator("#hour-calls tbody tr").count() == 3
    await page.emulate_media(media="print")
    await page.goto(base(daemon) + "/stats/daily?day=2026-03-10")
    assert not await page.locator("header.top").is_visible()
    assert await chart.is_visible()
    await page.screenshot(path=shot("stats-daily-print.png"), full_page=True)
    await page.emulate_media(media="screen")
    await page.goto(base(daemon) + "/stats/monthly?month=2026-03")
    await chart.wait_for()
    await page.screenshot(path=shot("stats-monthly.png"), full_page=True)
    await page.context.close()
