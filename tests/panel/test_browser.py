"""The panel in Debian's Chromium against the whole daemon (simulated PBX): login, the menu, screen-pop with its
ticket / SMS buttons, customers, upload.

The daemon and browser fixtures are session-wide (conftest.py). Screenshots go to test-artifacts/screenshots/
(git-ignored). This module's data: the calls from 010-1234-5678 (홍길동) and 031-555-6666, the upload's 최업로드.
"""

from __future__ import annotations

import asyncio
import io
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from browser_helpers import SHOTS, base_url, logged_in_page, shot
from openpyxl import Workbook

from contactd.crm.customers import CustomerService
from contactd.panel.app import WEB_DIR
from contactd.panel.i18n import Catalogues
from contactd.store.models import Call

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


async def test_screen_pop_reaches_only_the_ringing_agent(daemon: Any, browser: Any) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    kim = await logged_in_page(browser, daemon, "kim", shot="login-ko.png")
    lee = await logged_in_page(browser, daemon, "lee")
    assert "로그인" not in await kim.title()
    for page in (kim, lee):
        await page.wait_for_selector("#stream-state.on")
    # The support queue rings every member; lee steps away (자리비움 → QueuePause) so her phone stays silent.
    await lee.click('button[data-call="away"]')
    await lee.wait_for_selector('button[data-call="away"][aria-pressed="true"]')

    from contactd.simulator.agi_caller import CallerBehaviour

    bus_sub = daemon.services.bus.subscribe("call.ringing", name="browser-test")
    try:
        sim_call = await daemon.services.simulator.inbound_call("01012345678", "HONG",
                                                                behaviour=CallerBehaviour(keys=["2"]),
                                                                answer_by="1001", talk_seconds=2.0)
        event = await bus_sub.get(15)
        rang_at = time.time()
        assert event.payload["extension"] == "1001"
    finally:
        bus_sub.close()
    await kim.wait_for_selector("article.pop .pop-customer", timeout=5_000)
    shown_at = await kim.evaluate("window.contactdLastPop.at") / 1000
    latency = shown_at - rang_at
    print(f"\nscreen-pop latency (bus call.ringing → DOM): {latency * 1000:.0f} ms")
    assert latency < 1.0
    pop = kim.locator("article.pop").first
    assert "홍길동" in await pop.inner_text()
    assert "주의" in await pop.inner_text()  # caution flag
    assert "010-1234-5678" in await pop.inner_text()
    assert "반품/교환" in await pop.locator(".pop-ivr").inner_text()
    customer = (await CustomerService(daemon.services.db).find_by_number("01012345678"))[0]
    # The pop's one-click actions: a ticket for this call and this customer, an SMS to their mobile.
    ticket_href = await pop.locator("a.pop-ticket").get_attribute("href")
    assert await pop.locator("a.pop-ticket").inner_text() == "접수"
    assert urlparse(ticket_href).path == "/tickets/new"
    assert parse_qs(urlparse(ticket_href).query) == {"number": ["01012345678"], "linkedid": [sim_call.linkedid],
                                                     "customer_id": [str(customer.id)]}
    sms_href = await pop.locator("a.pop-sms").get_attribute("href")
    assert await pop.locator("a.pop-sms").inner_text() == "문자"
    assert parse_qs(urlparse(sms_href).query) == {"to": ["01012345678"], "name": ["홍길동"],
                                                  "customer": [str(customer.id)]}
    await kim.screenshot(path=shot("desk-screenpop-1001.png"))
    await asyncio.wait_for(sim_call.done, 20)
    await kim.wait_for_selector("article.pop.ended")
    # 1002 never popped.
    assert await lee.locator("article.pop").count() == 0
    await lee.screenshot(path=shot("desk-no-pop-1002.png"))
    await lee.context.close()
    # One click from the pop: the ticket form knows the call and the customer; the SMS form has the recipient.
    await pop.locator("a.pop-ticket").click()
    await kim.wait_for_url("**/tickets/new?**")
    assert "홍길동" in await kim.locator("#customer-name").inner_text()
    assert await kim.input_value('input[name="call_linkedid"]') == sim_call.linkedid
    await kim.screenshot(path=shot("desk-pop-ticket.png"))
    await kim.goto(base_url(daemon) + sms_href)
    assert "홍길동" in await kim.locator("#sms-list").inner_text()
    await kim.context.close()


async def test_unknown_caller_offers_prefilled_new_customer(daemon: Any, browser: Any) -> None:
    kim = await logged_in_page(browser, daemon, "kim")
    await kim.wait_for_selector("#stream-state.on")
    from contactd.simulator.agi_caller import CallerBehaviour

    sim_call = await daemon.services.simulator.inbound_call("0315556666", behaviour=CallerBehaviour(keys=["1"]),
                                                            answer_by="1001", talk_seconds=1.0)
    button = kim.locator("article.pop a.new-customer").first
    await button.wait_for(timeout=15_000)
    assert "주문/배송" in await kim.locator("article.pop .pop-ivr").first.inner_text()
    pop = kim.locator("article.pop").first
    assert "number=0315556666" in await pop.locator("a.pop-ticket").get_attribute("href")
    assert await pop.locator("a.pop-sms").count() == 0  # a landline and no customer: nobody to text
    await kim.screenshot(path=shot("desk-screenpop-unknown.png"))
    await button.click()
    await kim.wait_for_url("**/customers/new?**")
    assert await kim.input_value('input[name="phone"]') == "0315556666"
    await kim.fill('input[name="name"]', "신규고객")
    await kim.screenshot(path=shot("customer-new-prefilled.png"))
    await kim.click('#customer-form button[type="submit"]')
    await kim.wait_for_selector("#customer")
    assert "신규고객" in await kim.locator("#customer h1").inner_text()
    await asyncio.wait_for(sim_call.done, 20)
    await kim.context.close()


async def test_customer_page_with_tabs(daemon: Any, browser: Any) -> None:
    # Its own CDR row for 홍길동's number, so the tab has a call whichever tests ran before (the screen-pop
    # test's real call shows up beside it when that test ran).
    async with daemon.services.db.transaction() as session:
        start = datetime.now(UTC) - timedelta(hours=1)
        session.add(Call(linkedid="tabs.1", uniqueid="tabs.1", direction="in", from_number="01012345678",
                         to_number="100", started_at=start, answered_at=start + timedelta(seconds=5),
                         agent_extension="1001", billsec=42, disposition="ANSWERED"))
    kim = await logged_in_page(browser, daemon, "kim")
    base = base_url(daemon)
    await kim.goto(base + "/customers?q=길동")
    await kim.click("#customer-list a")
    await kim.wait_for_selector("nav.tabs")
    tabs = await kim.locator("nav.tabs a").all_inner_texts()
    assert tabs[:2] == ["콜내역", "콜백"]
    # The calls tab lists calls from the customer's numbers.
    for _ in range(50):
        if await kim.locator("#tab-body table").count():
            break
        await asyncio.sleep(0.2)
        await kim.reload()
    assert "010-1234-5678" in await kim.locator("#tab-body").inner_text()
    await kim.screenshot(path=shot("customer-tabs-calls.png"), full_page=True)
    await kim.click('nav.tabs a[data-tab="callbacks"]')
    await kim.wait_for_selector('nav.tabs a.active[data-tab="callbacks"]')
    await kim.screenshot(path=shot("customer-tabs-callbacks.png"), full_page=True)
    await kim.context.close()


async def test_excel_upload_through_the_page(daemon: Any, browser: Any, tmp_path: Path) -> None:
    wb = Workbook()
    ws = wb.active
    ws.title = "고객목록"
    ws.append(["고객명", "휴대폰", "전화번호", "우편번호", "주소"])
    ws.append(["최업로드", "010-7777-8888", "02-765-4321", "04524", "서울특별시 중구"])
    ws.append(["홍길동(중복)", "010-1234-5678", "", "", ""])
    ws.append(["번호오류", "02-1", "", "", ""])
    buffer = io.BytesIO()
    wb.save(buffer)
    path = tmp_path / "고객.xlsx"
    path.write_bytes(buffer.getvalue())

    admin = await logged_in_page(browser, daemon, "admin")
    base = base_url(daemon)
    await admin.goto(base + "/customers/import")
    await admin.set_input_files('input[name="file"]', str(path))
    await admin.wait_for_selector("#preview:not([hidden])")
    assert await admin.input_value("#sheet") == "고객목록"
    await admin.screenshot(path=shot("import-preview.png"), full_page=True)
    await admin.click('#import-form button[type="submit"]')
    await admin.wait_for_selector("#import-report")
    report = await admin.locator("#import-report").inner_text()
    assert "등록: 1건" in report and "중복 건너뜀: 1건" in report and "오류: 1건" in report
    await admin.screenshot(path=shot("import-report.png"), full_page=True)
    found = await CustomerService(daemon.services.db).find_by_number("01077778888")
    assert [c.name for c in found] == ["최업로드"]
    await admin.goto(base + "/admin/users")
    await admin.screenshot(path=shot("admin-users.png"), full_page=True)
    await admin.context.close()


async def test_menu_groups_by_role_and_opens_from_the_keyboard(daemon: Any, browser: Any) -> None:
    admin = await logged_in_page(browser, daemon, "admin")
    header = admin.locator("header.top")
    groups = admin.locator("nav.menu > details.nav-group > summary, nav.menu > a.nav-link")
    assert await groups.all_inner_texts() == ["상담", "고객", "문자", "이력", "통계", "관리"]
    box = await header.bounding_box()
    assert box is not None and box["height"] < 60  # one line at 1280 px, name and logout included
    assert (await admin.locator("header.top .who").bounding_box())["height"] < 30
    # The current section lights up by path prefix: any /sms/* page lights 문자, /admin/hours lights 관리.
    await admin.goto(base_url(daemon) + "/sms/history")
    assert await admin.locator("nav.menu a.nav-link.active").inner_text() == "문자"
    await admin.goto(base_url(daemon) + "/admin/hours")
    assert await admin.locator("nav.menu details.active > summary").inner_text() == "관리"
    assert await admin.locator("nav.menu ul.nav-menu a.active").get_attribute("href") == "/admin/hours"
    # Keyboard: Tab reaches the group, Enter opens it, Tab walks its links, Esc closes and keeps focus.
    admin_group = admin.locator('details.nav-group[data-group="admin"]')
    await admin_group.locator("summary").focus()
    await admin.keyboard.press("Enter")
    assert await admin_group.get_attribute("open") is not None
    assert await admin_group.locator("ul.nav-menu a").first.is_visible()
    await admin.screenshot(path=shot("nav-admin-open.png"))
    await admin.keyboard.press("Tab")
    assert await admin.evaluate("document.activeElement.getAttribute('href')") == "/admin/users"
    await admin.keyboard.press("Escape")
    assert await admin_group.get_attribute("open") is None
    assert await admin.evaluate("document.activeElement.tagName") == "SUMMARY"
    # Opening one group closes the other.
    await admin.click('details.nav-group[data-group="desk"] > summary')
    await admin.click('details.nav-group[data-group="customers"] > summary')
    assert await admin.locator("details.nav-group[open]").count() == 1
    await admin.context.close()

    kim = await logged_in_page(browser, daemon, "kim")
    texts = await kim.locator("nav.menu > details.nav-group > summary, nav.menu > a.nav-link").all_inner_texts()
    assert "통계" not in texts  # supervisors only: the group is gone, not empty
    assert texts[-1] == "전화번호부"  # the one admin-group item an agent may use stands alone
    assert await kim.locator('a[href="/admin/users"]').count() == 0
    await kim.context.close()


TOUR = ("/", "/inbox", "/tickets/new", "/customers", "/customers/new", "/orders", "/orders/new", "/products",
        "/sms/compose", "/sms/scheduled", "/sms/history", "/sms/templates", "/history", "/consultations",
        "/stats/daily", "/stats/monthly", "/stats/agents", "/stats/types", "/admin/users", "/admin/extensions",
        "/admin/blacklist", "/admin/consultation-types", "/admin/hours", "/phonebook", "/customers/import",
        "/orders/import", "/admin/audit")
# Feature prefixes of the catalogue: "history.title" on a page is a missing key even if nobody defined it yet.
PREFIXES = {key.split(".")[0] for key in Catalogues(WEB_DIR / "i18n").get("ko").messages}
RAW_KEY = re.compile(r"(?<![\w./-])[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+(?![\w./-])")


async def test_every_page_fits_1280_and_shows_no_raw_keys(daemon: Any, browser: Any) -> None:
    """A supervisor's day at 1280×800: every page in Korean (no catalogue key shown raw), nothing wider than the
    window, the menu on one line. Screenshots: page-<path>.png."""
    catalogue_keys = set(Catalogues(WEB_DIR / "i18n").get("ko").messages)
    admin = await logged_in_page(browser, daemon, "admin")
    await admin.set_viewport_size({"width": 1280, "height": 800})
    problems = []
    for path in TOUR:
        response = await admin.goto(base_url(daemon) + path)
        assert response is not None and response.status == 200, path
        text = await admin.locator("body").inner_text()
        raw = sorted({k for k in RAW_KEY.findall(text) if k in catalogue_keys or k.split(".")[0] in PREFIXES})
        if raw:
            problems.append(f"{path}: raw keys {raw}")
        width = await admin.evaluate("document.documentElement.scrollWidth")
        if width > 1280:
            problems.append(f"{path}: {width}px wide")
        header = await admin.locator("header.top").bounding_box()
        if header is None or header["height"] > 60:
            problems.append(f"{path}: menu wraps")
        slug = path.strip("/").replace("/", "-") or "desk"
        await admin.screenshot(path=shot(f"page-{slug}.png"), full_page=True)
    await admin.context.close()
    assert problems == []
