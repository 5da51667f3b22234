"""Panel fixtures: the real aiohttp app on a loopback port over a migrated SQLite file (helpers: panel_helpers);
for the browser tests one whole daemon (simulated PBX) and one Chromium shared by every test_browser*.py module.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from browser_helpers import CHROMIUM, PASSWORD
from panel_helpers import Panel, PanelFactory, start_panel

from contactd.bus import Bus
from contactd.config import Config
from contactd.crm.accounts import AccountService
from contactd.crm.customers import CustomerService
from contactd.store.db import Database


@pytest.fixture
async def make_panel(bus: Bus) -> AsyncIterator[PanelFactory]:
    panels: list[Panel] = []

    async def factory(db: Database, **kwargs: Any) -> Panel:
        panel = await start_panel(db, bus, **kwargs)
        panels.append(panel)
        return panel

    yield factory
    for panel in panels:
        for session in panel.sessions:
            await session.close()
        await panel.server.close()


@pytest.fixture
async def panel(make_panel: PanelFactory, db: Database) -> Panel:
    return await make_panel(db)


# ---- browser tests: one daemon and one Chromium per session ----------------------------------------------------
# Shared users (read-only for the modules): admin, kim (1001), lee (1002); and 홍길동 (010-1234-5678), the caller of
# test_browser.py. Anything a module writes (customers, orders, tickets, SMS) uses its own names and numbers.


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
        from service_checks import unavailable

        unavailable("chromium not installed (browser test)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu",
                                                                     "--disable-background-networking"])
        yield b
        await b.close()
