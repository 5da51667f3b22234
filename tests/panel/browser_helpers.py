"""Browser-test helpers: log a user into the shared daemon's panel in a fresh Chromium context; screenshot paths.

The daemon and browser fixtures themselves live in conftest.py (session scope: one daemon, one Chromium for every
browser module). Each module owns its data: distinct customers, numbers and tickets, so modules run in any order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PASSWORD = "browser-pass-1"
VIEWPORT = {"width": 1280, "height": 860}


def base_url(daemon: Any) -> str:
    return f"http://127.0.0.1:{daemon.web_port}"


def shot(name: str) -> str:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return str(SHOTS / name)


async def logged_in_page(browser: Any, daemon: Any, username: str, *, shot: str | None = None) -> Any:
    context = await browser.new_context(viewport=VIEWPORT, locale="ko-KR")
    page = await context.new_page()
    page.set_default_timeout(10_000)
    base = base_url(daemon)
    await page.goto(base + "/")
    assert "/login" in page.url
    await page.fill('input[name="username"]', username)
    await page.fill('input[name="password"]', PASSWORD)
    if shot:
        SHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SHOTS / shot))
    await page.click('button[type="submit"]')
    await page.wait_for_url(base + "/")
    return page
