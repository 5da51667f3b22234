"""SMS pages in Chromium against the whole daemon: templates, compose with a template to two customers (each
recipient gets their own name), the live byte counter, schedule and cancel, history details.

Uses the session's shared daemon / browser fixtures (conftest.py). Screenshots: test-artifacts/screenshots/sms-<what>.png.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from browser_helpers import logged_in_page, shot

from contactd.crm.customers import CustomerService
from contactd.crm.sms_text import fill, text_bytes

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

SEOUL = ZoneInfo("Asia/Seoul")
TEMPLATE = "{고객명}님, 주문하신 상품이 {오늘날짜}에 출고되었습니다."


def base(daemon: Any) -> str:
    return f"http://127.0.0.1:{daemon.web_port}"


async def confirm(page: Any) -> None:
    await page.wait_for_selector("#confirm-dialog[open]")
    await page.click("#confirm-ok")


async def test_template_then_compose_to_two_customers(daemon: Any, browser: Any) -> None:
    customers = CustomerService(daemon.services.db)
    for name, mobile in (("박문자", "010-7777-0001"), ("최문자", "010-7777-0002")):
        await customers.create(name=name, mobile=mobile)

    admin = await logged_in_page(browser, daemon, "admin")
    await admin.goto(base(daemon) + "/sms/templates")
    await admin.fill("#sms-folder-name", "주문 안내")
    async with admin.expect_navigation():
        await admin.click("#sms-folder-add-top")
    await admin.click('#sms-folder-tree a[data-top="1"]')
    await admin.fill("#sms-tpl-title", "출고 안내")
    await admin.fill("#sms-tpl-body", TEMPLATE)
    assert await admin.locator("#sms-tpl-kind").inner_text() == "SMS"
    async with admin.expect_navigation():
        await admin.click("#sms-tpl-save")
    assert "출고 안내" in await admin.locator("#sms-template-list").inner_text()
    assert "주문 안내" in await admin.locator("#sms-template-list").inner_text()  # saved into the chosen folder
    await admin.screenshot(path=shot("sms-templates.png"), full_page=True)
    await admin.context.close()

    kim = await logged_in_page(browser, daemon, "kim")
    await kim.goto(base(daemon) + "/sms/compose")
    await kim.click("#sms-search-box summary")
    await kim.fill("#sms-search-q", "문자")
    await kim.click("#sms-search-go")
    await kim.wait_for_selector("#sms-search-results tbody tr >> nth=1")
    await kim.check("#sms-search-all")
    await kim.click("#sms-search-add")
    assert await kim.locator("#sms-count").inner_text() == "2"
    await kim.select_option("#sms-template", label="출고 안내")
    today = datetime.now(SEOUL).date()
    expected = max(text_bytes(fill(TEMPLATE, name=n, today=today)) for n in ("박문자", "최문자"))
    assert int(await kim.locator("#sms-bytes").inner_text()) == expected
    assert await kim.locator("#sms-kind").inner_text() == "SMS"
    assert await kim.locator("#sms-subject-label").is_hidden()
    # The page's counter is the server's: same figures for Hangul, ASCII, emoji and CRLF.
    for sample in ("가나다 abc", "😀 이모지", "줄\r\n바꿈", "똠방각하"):
        assert await kim.evaluate("(s) => window.contactdSms.textBytes(s)", sample) == text_bytes(sample)
    await kim.screenshot(path=shot("sms-compose.png"), full_page=True)

    await kim.fill("#sms-body", await kim.input_value("#sms-body") + " 배송조회는 홈페이지에서 하실 수 있습니다.")
    assert await kim.locator("#sms-kind").inner_text() == "LMS"  # past 80 bytes: a subject appears
    assert await kim.locator("#sms-subject-label").is_visible()
    await kim.fill("#sms-subject", "출고 안내")
    await kim.screenshot(path=shot("sms-compose-lms.png"), full_page=True)
    await kim.click("#sms-send")
    await confirm(kim)
    await kim.wait_for_selector("#sms-result p.ok")
    assert "LMS 2명" in await kim.locator("#sms-result").inner_text()
    assert await kim.input_value("#sms-body") == ""  # the form is ready for the next message
    await kim.context.close()


async def test_schedule_then_cancel(daemon: Any, browser: Any) -> None:
    kim = await logged_in_page(browser, daemon, "kim")
    await kim.goto(base(daemon) + "/sms/compose?to=010-7777-0003&name=예약고객")
    assert "예약고객" in await kim.locator("#sms-list").inner_text()  # the "문자" link's recipient
    await kim.fill("#sms-body", "{고객명}님 내일 방문 예정입니다.")
    await kim.check('input[name="sms-when"][value="later"]')
    at = (datetime.now(SEOUL) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    await kim.fill("#sms-at", at)
    await kim.click("#sms-send")
    await confirm(kim)
    await kim.wait_for_selector("#sms-result p.ok")
    assert at.replace("T", " ") in await kim.locator("#sms-result").inner_text()

    await kim.goto(base(daemon) + "/sms/scheduled")
    row = kim.locator("#sms-scheduled-list tbody tr", has_text="방문 예정")
    assert await row.count() == 1
    await kim.screenshot(path=shot("sms-scheduled.png"), full_page=True)
    await row.locator("input.sms-sched-pick").check()
    await kim.click("#sms-cancel-selected")
    await confirm(kim)
    # The page reloads without the cancelled row ("now" messages of other tests may still wait for the dispatcher).
    await kim.wait_for_selector("#sms-scheduled-list tbody tr:has-text('방문 예정')", state="detached")
    assert "방문 예정" not in await kim.locator("#sms-scheduled").inner_text()
    assert all("방문 예정" not in m.body for m in await daemon.services.extra["sms"].scheduled())
    await kim.context.close()


async def test_history_shows_each_recipients_own_text(daemon: Any, browser: Any) -> None:
    sms = daemon.services.extra["sms"]
    for _ in range(80):  # the daemon's dispatcher sends "now" messages on its next pass (every 5 s)
        rows = await sms.history(start=datetime.now(SEOUL).date(), end=datetime.now(SEOUL).date())
        if any(r["message"].kind == "LMS" and r["sent"] == 2 for r in rows):
            break
        await asyncio.sleep(0.1)
    kim = await logged_in_page(browser, daemon, "kim")
    await kim.goto(base(daemon) + "/sms/history?kind=LMS")
    row = kim.locator("#sms-history-list tr.sms-msg", has_text="출고 안내").first
    assert "발송완료" in await row.inner_text()
    await row.locator("button.sms-detail").click()
    detail = kim.locator("tr.sms-recipients").first
    await detail.wait_for()
    text = await detail.inner_text()
    assert "박문자님, 주문하신 상품이" in text and "최문자님, 주문하신 상품이" in text and "{고객명}" not in text
    await kim.screenshot(path=shot("sms-history.png"), full_page=True)
    await kim.context.close()
