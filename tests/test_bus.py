"""The event bus: in-process and over a real Redis, with bounded per-subscriber queues."""

from __future__ import annotations

import asyncio

import pytest

from contactd.bus import Bus, RedisBus


async def test_in_process_delivers_by_pattern(bus: Bus) -> None:
    calls = bus.subscribe("call.*")
    sms = bus.subscribe("sms.*")
    await bus.publish("call.ringing", {"extension": "1001", "caller_name": "홍길동"})
    event = await calls.get(timeout=1)
    assert (event.topic, event.payload["caller_name"]) == ("call.ringing", "홍길동")
    assert sms.get_nowait() is None


async def test_slow_subscriber_loses_its_own_oldest_events_only(bus: Bus) -> None:
    stalled = bus.subscribe("call.*", maxsize=10, name="stalled-tab")
    live = bus.subscribe("call.*", maxsize=1000)
    for n in range(500):
        await bus.publish("call.ringing", {"n": n})
    assert stalled.dropped == 490
    kept = [stalled.get_nowait().payload["n"] for _ in range(10)]
    assert kept == list(range(490, 500))  # the newest survive
    assert [(await live.get(timeout=1)).payload["n"] for _ in range(500)] == list(range(500))


async def test_closed_subscription_stops_iteration(bus: Bus) -> None:
    sub = bus.subscribe("*")
    sub.close()
    with pytest.raises(StopAsyncIteration):
        await sub.get(timeout=1)
    assert bus.subscriber_count == 0


@pytest.mark.redis
async def test_redis_bus_crosses_nodes(redis_url: str) -> None:
    node_a, node_b = RedisBus(redis_url), RedisBus(redis_url)
    await node_a.start()
    await node_b.start()
    try:
        assert await node_a.ping()
        on_b = node_b.subscribe("call.ringing")
        on_a = node_a.subscribe("call.ringing")
        await node_a.publish("call.ringing", {"extension": "1002", "caller_name": "김태희"})
        got_b = await on_b.get(timeout=3)
        got_a = await on_a.get(timeout=3)
        assert got_b.payload == {"extension": "1002", "caller_name": "김태희"}
        assert got_b.origin == node_a.node_id
        assert got_a.payload == got_b.payload  # the publishing node sees its own events once, via Redis
        await asyncio.sleep(0.1)
        assert on_a.get_nowait() is None
    finally:
        await node_a.close()
        await node_b.close()


async def test_consumer_survives_a_failing_event_and_stops_cleanly(bus: Bus) -> None:
    from contactd.bus import BusConsumer

    handled: list[int] = []

    async def handle(event) -> None:  # type: ignore[no-untyped-def]
        if event.payload["n"] == 1:
            raise RuntimeError("one bad event")
        handled.append(event.payload["n"])

    consumer = BusConsumer(bus, "call.*", handle=handle, name="test-consumer")
    await consumer.start()
    for n in range(3):
        await bus.publish("call.ended", {"n": n})
    for _ in range(50):
        if len(handled) == 2:
            break
        await asyncio.sleep(0.01)
    assert handled == [0, 2]
    await consumer.stop()
    assert bus.subscriber_count == 0
