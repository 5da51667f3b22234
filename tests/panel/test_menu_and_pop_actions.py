"""The grouped main menu as each role sees it (served HTML), and the screen-pop's one-click 접수 / 문자 targets."""

from __future__ import annotations

import asyncio
import re
from urllib.parse import parse_qs, urlparse

from panel_helpers import Panel, open_stream

from contactd.crm.customers import CustomerService
from contactd.panel import keys


def ringing(extension: str, number: str, linkedid: str) -> dict:
    return {"linkedid": linkedid, "uniqueid": linkedid, "caller_number": number, "caller_name": "",
            "extension": extension, "queue": "support", "ivr_choice": "2", "direction": "in"}


async def wait_clients(panel: Panel, count: int) -> None:
    for _ in range(100):
        if len(panel.app[keys.SCREENPOP].clients) >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("streams did not register")


SUMMARY = re.compile(r"<summary[^>]*>([^<]+)</summary>")
TOP_LINK = re.compile(r'<a class="nav-link[^"]*" href="([^"]+)"[^>]*>([^<]+)</a>')
CURRENT = re.compile(r'<a [^>]*aria-current="page"[^>]*>')
HREF = re.compile(r'href="([^"]+)"')


async def page(panel: Panel, username: str, path: str) -> str:
    session = await panel.login(username)
    async with session.http.get(path) as response:
        assert response.status == 200
        return await response.text()


def menu_of(html: str) -> str:
    return html[html.index('<nav class="menu"'):html.index("</nav>", html.index('<nav class="menu"'))]


async def test_each_role_sees_its_groups_and_empty_groups_vanish(panel: Panel) -> None:
    admin = menu_of(await page(panel, "admin", "/customers"))
    assert SUMMARY.findall(admin) == ["상담", "고객", "이력", "관리"]
    assert [label for _, label in TOP_LINK.findall(admin)] == ["문자", "통계"]  # one-item groups: plain links
    for href in ("/admin/users", "/admin/extensions", "/admin/blacklist", "/admin/consultation-types",
                 "/admin/hours", "/phonebook", "/customers/import", "/orders/import", "/admin/audit", "/inbox",
                 "/tickets/new", "/orders", "/products", "/history", "/consultations", "/stats/daily"):
        assert f'href="{href}"' in admin, href

    boss = menu_of(await page(panel, "boss", "/"))  # supervisor: no user/extension/hours/audit admin
    assert 'href="/admin/users"' not in boss and 'href="/admin/audit"' not in boss
    assert 'href="/admin/blacklist"' in boss and 'href="/stats/daily"' in boss

    kim = menu_of(await page(panel, "kim", "/"))
    assert SUMMARY.findall(kim) == ["상담", "고객", "이력"]
    # 관리 holds only the phonebook for an agent: a plain link, not a drop-down of one; 통계 is gone entirely.
    assert [label for _, label in TOP_LINK.findall(kim)] == ["문자", "전화번호부"]
    assert "통계" not in kim and 'href="/products"' not in kim and 'href="/customers/import"' not in kim


def current_links(menu: str) -> list[str]:
    return [HREF.search(tag).group(1) for tag in CURRENT.findall(menu)]


async def test_the_current_section_is_marked_by_path_prefix(panel: Panel) -> None:
    admin = await panel.login("admin")
    # path → (the lit group drop-down or None for a plain link, the lit item)
    cases = {"/sms/history": (None, "/sms/compose"), "/sms/templates": (None, "/sms/compose"),
             "/stats/monthly": (None, "/stats/daily"), "/admin/hours": ("admin", "/admin/hours"),
             "/orders/import": ("admin", "/orders/import"), "/orders": ("customers", "/orders"),
             "/customers": ("customers", "/customers"), "/tickets/new": ("desk", "/tickets/new"),
             "/": ("desk", "/")}
    for path, (group, href) in cases.items():
        async with admin.http.get(path) as response:
            menu = menu_of(await response.text())
        assert current_links(menu) == [href], path
        lit = re.findall(r'<details class="nav-group active" data-group="([a-z]+)"', menu)
        assert lit == ([group] if group else []), path


async def test_pop_offers_ticket_and_sms_for_this_call(panel: Panel) -> None:
    customers = CustomerService(panel.services.db)
    mobile_customer = await customers.create(name="문팝", mobile="010-4444-5555")
    landline_customer = await customers.create(name="유선팝", phone="02-333-4444", mobile="010-6666-7777")
    kim = await open_stream(await panel.login("kim"))
    await wait_clients(panel, 1)
    bus = panel.services.bus

    await bus.publish("call.ringing", ringing("1001", "01044445555", linkedid="1700000001.7"))
    _, pop = await kim.next(2)
    ticket = urlparse(pop["ticket_url"])
    assert ticket.path == "/tickets/new"
    assert parse_qs(ticket.query) == {"number": ["01044445555"], "linkedid": ["1700000001.7"],
                                      "customer_id": [str(mobile_customer.id)]}
    assert parse_qs(urlparse(pop["sms_url"]).query) == {"to": ["01044445555"], "name": ["문팝"],
                                                        "customer": [str(mobile_customer.id)]}

    # Called from the office line: the SMS goes to the customer's mobile.
    await bus.publish("call.ringing", ringing("1001", "023334444", linkedid="1700000002.7"))
    _, pop = await kim.next(2)
    assert parse_qs(urlparse(pop["sms_url"]).query)["to"] == ["01066667777"]
    assert parse_qs(urlparse(pop["ticket_url"]).query)["customer_id"] == [str(landline_customer.id)]

    # Unknown mobile caller: ticket and SMS by number alone; unknown landline: no SMS at all.
    await bus.publish("call.ringing", ringing("1001", "01099990000", linkedid="1700000003.7"))
    _, pop = await kim.next(2)
    assert "customer_id" not in parse_qs(urlparse(pop["ticket_url"]).query)
    assert parse_qs(urlparse(pop["sms_url"]).query) == {"to": ["01099990000"]}
    await bus.publish("call.ringing", ringing("1001", "0315556666", linkedid="1700000004.7"))
    _, pop = await kim.next(2)
    assert pop["sms_url"] == "" and "number=0315556666" in pop["ticket_url"]

    # The links lead somewhere real for kim: the ticket form knows the call, the SMS form the recipient.
    session = await panel.login("kim")
    async with session.http.get(panel.app[keys.SCREENPOP].bare(
            ringing("1001", "01044445555", linkedid="1700000001.7"))["ticket_url"]) as response:
        assert response.status == 200
        assert 'name="call_linkedid" value="1700000001.7"' in await response.text()
