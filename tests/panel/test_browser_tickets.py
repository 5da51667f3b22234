"""Tickets, inbox, call history and admin lists in Chromium against the whole daemon (simulated PBX).

Uses the session's shared daemon / browser fixtures (conftest.py).
Screenshots: test-artifacts/screenshots/<feature>-<what>.png.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from browser_helpers import logged_in_page, shot

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


async def until(read: Any, expected: Any, timeout: float = 5.0) -> None:
    value = None
    for _ in range(int(timeout / 0.1)):
        value = await read()
        if value == expected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"still {value!r}, expected {expected!r}")


def base(daemon: Any) -> str:
    return f"http://127.0.0.1:{daemon.web_port}"


async def test_ticket_transfer_reaches_lees_inbox(daemon: Any, browser: Any) -> None:
    kim = await logged_in_page(browser, daemon, "kim")
    await kim.goto(base(daemon) + "/tickets/new?number=010-1234-5678")
    assert "홍길동" in await kim.locator("#customer-name").inner_text()  # found by the caller's number
    await kim.fill('input[name="title"]', "사이즈 교환 요청")
    await kim.fill('textarea[name="body"]', "M 사이즈로 교환 원함")
    await kim.select_option("#assignee", label="이상담 (1002)")
    await kim.screenshot(path=shot("tickets-new.png"), full_page=True)
    await kim.click('#ticket-buttons button[value="transfer"]')
    await kim.wait_for_selector("#ticket-status.status-transferred")
    assert "담당자이관" in await kim.locator("#ticket-status").inner_text()
    assert "이상담" in await kim.locator("#ticket-assignee").inner_text()
    await kim.screenshot(path=shot("tickets-transferred.png"), full_page=True)

    lee = await logged_in_page(browser, daemon, "lee")
    await lee.goto(base(daemon) + "/inbox")
    received = lee.locator('nav.inbox-tabs a[data-tab="received"]')
    assert await received.locator(".count").inner_text() == "1"
    assert "받은이관" in await received.inner_text()
    assert "사이즈 교환 요청" in await lee.locator(".tickets-table").inner_text()
    await lee.screenshot(path=shot("inbox-received.png"), full_page=True)
    # A second transfer to lee updates the count live (SSE → counts), no reload.
    await kim.goto(base(daemon) + "/tickets/new")
    await kim.fill('input[name="title"]', "두번째 문의")
    await kim.select_option("#assignee", label="이상담 (1002)")
    await kim.click('#ticket-buttons button[value="transfer"]')
    # (Polled from Python: the panel's CSP forbids the eval behind page.wait_for_function.)
    await until(lambda: received.locator(".count").inner_text(), "2")
    await kim.context.close()
    await lee.context.close()


async def test_harassment_then_history_with_recording(daemon: Any, browser: Any) -> None:
    kim = await logged_in_page(browser, daemon, "kim")
    await kim.wait_for_selector("#stream-state.on")
    sub = daemon.services.bus.subscribe("call.answered", name="browser-tickets")
    try:
        sim_call = await daemon.services.simulator.inbound_call("01098765432", "ABUSER", answer_by="1001",
                                                                talk_seconds=30.0)
        await sub.get(15)
    finally:
        sub.close()
    await asyncio.sleep(0.5)  # let the bridge settle so the recording has audio
    await kim.click('button[data-harass="abuse"]')
    await kim.click("#confirm-ok")
    await asyncio.wait_for(sim_call.done, 20)
    await kim.goto(base(daemon) + "/history")
    for _ in range(50):  # the CDR row and the recording are written when the call has ended
        row = kim.locator(f'#call-history tr[data-linkedid="{sim_call.linkedid}"]')
        if await row.count() and await row.locator("audio").count():
            break
        await asyncio.sleep(0.2)
        await kim.reload()
    assert "폭언" in await row.locator("td.incident").inner_text()
    audio = row.locator("audio")
    await audio.evaluate("a => a.play().catch(() => {})")
    await until(lambda: audio.evaluate("a => a.readyState >= 2 && a.duration > 0"), True)
    assert await audio.evaluate("a => a.duration") > 0
    await kim.screenshot(path=shot("history-calls.png"), full_page=True)
    await kim.context.close()


async def test_admin_pages_render(daemon: Any, browser: Any) -> None:
    admin = await logged_in_page(browser, daemon, "admin")
    await admin.goto(base(daemon) + "/admin/consultation-types")
    await admin.fill('form.row input[name="name"]', "상품문의")
    await admin.click('form.row button[type="submit"]')
    await admin.wait_for_selector(".type-node")
    await admin.fill('.type-node input[placeholder]', "사이즈")
    await admin.click('.type-node form:last-of-type button[type="submit"]')
    await admin.wait_for_selector(".type-node.level-2")
    await admin.screenshot(path=shot("tickets-types.png"), full_page=True)
    await admin.goto(base(daemon) + "/admin/blacklist")
    await admin.fill('#blacklist-add input[name="name"]', "악성민원")
    await admin.fill('#blacklist-add input[name="number"]', "010-9999-8888")
    await admin.fill('#blacklist-add input[name="reason"]', "반복 폭언")
    await admin.click('#blacklist-add button[type="submit"]')
    await admin.wait_for_selector('#blacklist tr[data-number="01099998888"]')
    await admin.screenshot(path=shot("blacklist-list.png"), full_page=True)
    await admin.goto(base(daemon) + "/phonebook")
    await admin.fill('#phonebook-add input[name="name"]', "CJ대한통운")
    await admin.fill('#phonebook-add input[name="number"]', "1588-1255")
    await admin.fill('#phonebook-add input[name="group"]', "택배사")
    await admin.fill('#phonebook-add input[name="speed_dial"]', "1")
    await admin.click('#phonebook-add button[type="submit"]')
    await admin.wait_for_selector("#phonebook tr[data-entry]")
    await admin.screenshot(path=shot("phonebook-list.png"), full_page=True)
    await admin.goto(base(daemon) + "/admin/hours")
    await admin.fill('#holiday-add input[name="date"]', "2030-01-01")
    await admin.fill('#holiday-add input[name="name"]', "신정")
    await admin.click('#holiday-add button[type="submit"]')
    await admin.wait_for_selector('#holidays tr[data-date="2030-01-01"]')
    await admin.screenshot(path=shot("hours-weekly.png"), full_page=True)
    await admin.goto(base(daemon) + "/inbox?tab=callbacks")
    await admin.screenshot(path=shot("inbox-callbacks.png"), full_page=True)
    await admin.context.close()
