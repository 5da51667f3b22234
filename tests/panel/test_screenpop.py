"""The live screen-pop: call.ringing reaches only the agent whose phone rings, enriched with the customer."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
from panel_helpers import Panel, open_stream

from contactd.bus import RedisBus
from contactd.crm.customers import CustomerService
from contactd.store.models import Call


def ringing(extension: str, number: str = "01012345678", linkedid: str = "1700000000.1", **extra) -> dict:
    return {"linkedid": linkedid, "uniqueid": linkedid, "caller_number": number, "caller_name": "",
            "extension": extension, "queue": "support", "ivr_choice": "2", "direction": "in", **extra}


async def wait_clients(panel: Panel, count: int) -> None:
    hub = panel.app[__import__("contactd.panel.keys", fromlist=["SCREENPOP"]).SCREENPOP]
    for _ in range(100):
        if len(hub.clients) >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("streams did not register")


async def test_ringing_reaches_only_the_ringing_agent_with_the_customer(panel: Panel) -> None:
    customers = CustomerService(panel.services.db)
    customer = await customers.create(name="홍길동", mobile="010-1234-5678", vip=True, caution=True)
    async with panel.services.db.transaction() as session:
        session.add(Call(linkedid="old.1", uniqueid="old.1", direction="in", from_number="01012345678",
                         started_at=datetime.now(UTC) - timedelta(days=1), agent_extension="1002", billsec=42,
                         disposition="ANSWERED"))
    kim = await open_stream(await panel.login("kim"))  # 1001
    lee = await open_stream(await panel.login("lee"))  # 1002
    await wait_clients(panel, 2)

    started = time.monotonic()
    await panel.services.bus.publish("call.ringing", ringing("1001"))
    name, pop = await kim.next(2)
    assert time.monotonic() - started < 1.0
    assert name == "ringing"
    assert pop["number_display"] == "010-1234-5678"
    assert pop["customer"]["id"] == customer.id and pop["customer"]["name"] == "홍길동"
    assert pop["customer"]["vip"] and pop["customer"]["caution"]
    assert pop["ivr_choice"] == "2" and pop["ivr_label"] == "반품/교환"
    assert [c["billsec"] for c in pop["recent_calls"]] == [42]
    await lee.nothing_for(0.7)  # 1002's page does not pop

    # The rest of that call follows it to kim only.
    await panel.services.bus.publish("call.answered", {"linkedid": "1700000000.1", "extension": "1001",
                                                       "answered_at": "now"})
    assert (await kim.next(2))[0] == "answered"
    await panel.services.bus.publish("call.ended", {"linkedid": "1700000000.1", "disposition": "ANSWERED",
                                                    "billsec": 3, "call_id": 1})
    assert (await kim.next(2))[0] == "ended"
    await lee.nothing_for(0.3)


async def test_unknown_number_offers_new_customer_prefilled(panel: Panel) -> None:
    kim = await open_stream(await panel.login("kim"))
    await wait_clients(panel, 1)
    await panel.services.bus.publish("call.ringing", ringing("1001", number="+82 10-9999-0000", ivr_choice="1"))
    _, pop = await kim.next(2)
    assert pop["customer"] is None
    assert pop["new_customer_url"] == "/customers/new?mobile=01099990000"
    assert pop["ivr_label"] == "주문/배송"


async def test_supervisor_may_watch_all_but_an_agent_may_not(panel: Panel) -> None:
    boss = await open_stream(await panel.login("boss"), "?all=1")
    lee = await open_stream(await panel.login("lee"), "?all=1")  # agents cannot opt in
    await wait_clients(panel, 2)
    await panel.services.bus.publish("call.ringing", ringing("1001"))
    assert (await boss.next(2))[0] == "ringing"
    await lee.nothing_for(0.5)


async def test_a_failing_section_costs_only_that_section(panel: Panel) -> None:
    from contactd.panel.keys import SCREENPOP

    async def broken(customer, number):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    async def extra(customer, number):  # type: ignore[no-untyped-def]
        return [{"id": 1, "note": f"for {number}"}]

    panel.app[SCREENPOP].add_section("broken", broken)
    panel.app[SCREENPOP].add_section("extra", extra)
    kim = await open_stream(await panel.login("kim"))
    await wait_clients(panel, 1)
    await panel.services.bus.publish("call.ringing", ringing("1001"))
    _, pop = await kim.next(2)
    assert "broken" not in pop["sections"]
    assert pop["sections"]["extra"] == [{"id": 1, "note": "for 01012345678"}]


async def test_heartbeat_comments_keep_the_stream_alive_and_deactivation_ends_it(panel: Panel) -> None:
    kim_session = await panel.login("kim")
    kim = await open_stream(kim_session)
    raw = await asyncio.wait_for(kim.response.content.readline(), 3)  # heartbeat is 0.5 s in tests
    assert raw.startswith(b": ")
    await panel.accounts.update_user(panel.users["kim"].id, active=False)
    with pytest.raises(EOFError):
        await kim.next(3)


@pytest.mark.redis
async def test_ringing_crosses_nodes_over_redis(make_panel, db, redis_url) -> None:
    """Two panels on two RedisBus instances: a ringing published on node A pops on node B."""
    node_a, node_b = RedisBus(redis_url), RedisBus(redis_url)
    await node_a.start()
    await node_b.start()
    try:
        from panel_helpers import start_panel

        panel_b = await start_panel(db, node_b)
        try:
            kim = await open_stream(await panel_b.login("kim"))
            await wait_clients(panel_b, 1)
            await node_a.publish("call.ringing", ringing("1001", linkedid="redis.1"))
            name, pop = await kim.next(3)
            assert name == "ringing" and pop["linkedid"] == "redis.1"
        finally:
            for session in panel_b.sessions:
                await session.close()
            await panel_b.server.close()
    finally:
        await node_a.close()
        await node_b.close()
