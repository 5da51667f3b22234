"""The panel in Debian's Chromium against the whole daemon (simulated PBX): login, screen-pop, customers, upload.

Screenshots go to test-artifacts/screenshots/ (git-ignored).
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from openpyxl import Workbook

from contactd.config import Config
from contactd.crm.accounts import AccountService
from contactd.crm.customers import CustomerService

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PASSWORD = "browser-pass-1"


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def daemon(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    from contactd.app import Daemon

    root = tmp_path_factory.mktemp("daemon")
    config = Config()
    config.web.port = 0
    config.agi.port = 0
    config.web.session_key = "browser-test"
    config.db.url = f"sqlite+aiosqlite:///{root / 'contactd.sqlite3'}"
    config.recordings.dir = str(root / "recordings")
    config.simulator.call_interval = 0
    config.sms.sender = "02-1234-5678"  # SMS pages: a sender number, and the outbox spool in tmp
    config.sms.spool_dir = str(root / "sms-outbox")
    for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"):
        setattr(config.hours, day, "00:00-23:59")  # always open: calls reach the agents, not the callback flow
    d = Daemon(config)
    await asyncio.wait_for(d.start(), 30)
    accounts = AccountService(d.services.db)
    await accounts.create_user("admin", PASSWORD, "admin", display_name="관리자")
    await accounts.create_user("kim", PASSWORD, "agent", extension="1001", display_name="김상담")
    await accounts.create_user("lee", PASSWORD, "agent", extension="1002", display_name="이상담")
    # Not VIP: VIP callers go to the VIP queue, which the simulator starts without members.
    await CustomerService(d.services.db).create(name="홍길동", mobile="010-1234-5678", caution=True,
                                                address="서울특별시 종로구 세종대로 1", memo="배송 문의 자주 함")
    yield d
    await asyncio.wait_for(d.stop(), 30)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Any]:
    if not Path(CHROMIUM).exists():  # noqa: ASYNC240 - one stat at session start
        from tests.conftest import unavailable

        unavailable("chromium not installed (browser test)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu",
                                                                     "--disable-background-networking"])
        yield b
        await b.close()


async def logged_in_page(browser: Any, daemon: Any, username: str, *, shot: str | None = None) -> Any:
    context = await browser.new_context(viewport={"width": 1280, "height": 860}, locale="ko-KR")
    page = await context.new_page()
    page.set_default_timeout(10_000)
    base = f"http://127.0.0.1:{daemon.web_port}"
    await page.goto(base + "/")
    assert "/login" in page.url
    await page.fill('input[name="username"]', username)
    await page.fill('input[name="password"]', PASSWORD)
    if shot:
        await page.screenshot(path=str(SHOTS / shot))
    await page.click('button[type="submit"]')
    await page.wait_for_url(base + "/")
    return page


def shot(name: str) -> str:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return str(SHOTS / name)


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
    await kim.screenshot(path=shot("desk-screenpop-1001.png"))
    await asyncio.wait_for(sim_call.done, 20)
    await kim.wait_for_selector("article.pop.ended")
    # 1002 never popped.
    assert await lee.locator("article.pop").count() == 0
    await lee.screenshot(path=shot("desk-no-pop-1002.png"))
    await kim.context.close()
    await lee.context.close()


async def test_unknown_caller_offers_prefilled_new_customer(daemon: Any, browser: Any) -> None:
    kim = await logged_in_page(browser, daemon, "kim")
    await kim.wait_for_selector("#stream-state.on")
    from contactd.simulator.agi_caller import CallerBehaviour

    sim_call = await daemon.services.simulator.inbound_call("0315556666", behaviour=CallerBehaviour(keys=["1"]),
                                                            answer_by="1001", talk_seconds=1.0)
    button = kim.locator("article.pop a.new-customer").first
    await button.wait_for(timeout=15_000)
    assert "주문/배송" in await kim.locator("article.pop .pop-ivr").first.inner_text()
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
    kim = await logged_in_page(browser, daemon, "kim")
    base = f"http://127.0.0.1:{daemon.web_port}"
    await kim.goto(base + "/customers?q=길동")
    await kim.click("#customer-list a")
    await kim.wait_for_selector("nav.tabs")
    tabs = await kim.locator("nav.tabs a").all_inner_texts()
    assert tabs[:2] == ["콜내역", "콜백"]
    # The call of the first test is in the calls tab (the tracker wrote its CDR row when it ended).
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
    base = f"http://127.0.0.1:{daemon.web_port}"
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
