"""Leadership of the AMI event stream: one Redis lease per Asterisk, and a tracker that only acts as leader."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from sqlalchemy import select
from tracker_helpers import FakeClock, replay

from contactd.bus import Bus
from contactd.config import PBXConfig
from contactd.store.models import Call
from contactd.telephony.calls import CallTracker
from contactd.telephony.leadership import Leadership, RedisLeadership, SingleNode, make_leadership, owner_key

TTL = 1.0


async def eventually(check: Callable[[], bool], timeout: float) -> float:
    """Seconds until `check()` held; fails the test after `timeout`."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


@pytest.fixture
async def key(redis_url: str) -> AsyncIterator[str]:
    name = owner_key("127.0.0.1", 5038) + ":" + uuid.uuid4().hex  # per test: parallel runs never share it
    yield name
    r = aioredis.from_url(redis_url)
    await r.delete(name)
    await r.aclose()


@pytest.fixture
async def nodes(redis_url: str, key: str) -> AsyncIterator[Callable[..., Any]]:
    made: list[RedisLeadership] = []

    async def make(url: str | None = None, **kwargs: Any) -> RedisLeadership:
        node = RedisLeadership(url or redis_url, key, ttl=kwargs.pop("ttl", TTL), **kwargs)
        made.append(node)
        await node.start()
        return node

    yield make
    for node in made:
        await node.stop()


async def owner(redis_url: str, key: str) -> str | None:
    r = aioredis.from_url(redis_url, decode_responses=True)
    try:
        return await r.get(key)
    finally:
        await r.aclose()


async def test_two_nodes_on_one_key_elect_exactly_one_leader(nodes, redis_url, key):
    a = await nodes(node_id="node-a")
    b = await nodes(node_id="node-b")
    assert (a.is_leader, b.is_leader) == (True, False)
    # Several renewals later it is still the same single leader, and Redis names it.
    for _ in range(10):
        await asyncio.sleep(TTL / 5)
        assert [a.is_leader, b.is_leader].count(True) == 1
    assert a.is_leader and await owner(redis_url, key) == "node-a"
    assert a.acquisitions == 1 and b.acquisitions == 0


async def test_nodes_on_different_asterisks_both_lead(redis_url, nodes):
    other = owner_key("127.0.0.2", 5038) + ":" + uuid.uuid4().hex
    a = await nodes()
    b = RedisLeadership(redis_url, other, ttl=TTL)
    await b.start()
    try:
        assert a.is_leader and b.is_leader
    finally:
        await b.stop()


async def test_leader_stopping_hands_over_within_ttl(nodes, redis_url, key):
    a = await nodes(node_id="node-a")
    b = await nodes(node_id="node-b")
    changes: list[bool] = []
    b.on_change(changes.append)
    await a.stop()
    assert not a.is_leader
    took = await eventually(lambda: b.is_leader, TTL)
    assert took < TTL and changes == [True]
    assert await owner(redis_url, key) == "node-b"


async def test_crashed_leader_is_replaced_once_its_lease_expires(nodes, key):
    a = await nodes(node_id="node-a")
    b = await nodes(node_id="node-b")
    # A crash: no more renewals and no release (the process is gone).
    assert a._loop_task is not None
    a._loop_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await a._loop_task
    a._loop_task = None
    a.is_leader = False
    a._redis, redis_client = None, a._redis
    await redis_client.aclose()
    took = await eventually(lambda: b.is_leader, TTL * 2)
    assert TTL / 3 < took < TTL + TTL / 3 + 0.3  # not before the lease ran out, soon after


async def test_leader_whose_lease_was_taken_steps_down_and_stays_follower(nodes, redis_url, key):
    a = await nodes(node_id="node-a")
    changes: list[bool] = []
    a.on_change(changes.append)
    r = aioredis.from_url(redis_url)
    try:
        await r.set(key, "intruder", px=60_000)
        took = await eventually(lambda: not a.is_leader, TTL)
        assert took <= TTL / 3 + 0.2
        await asyncio.sleep(TTL)  # it keeps trying, and keeps failing: the lease is someone else's
        assert not a.is_leader and changes == [False]
        assert await owner(redis_url, key) == "intruder"  # its renewals never touched another's lease
    finally:
        await r.aclose()


async def test_leader_whose_lease_vanished_steps_down_before_reacquiring(nodes, redis_url, key):
    a = await nodes()
    changes: list[bool] = []
    a.on_change(changes.append)
    r = aioredis.from_url(redis_url)
    try:
        await r.delete(key)
        took = await eventually(lambda: changes[:1] == [False], TTL)
        assert took <= TTL / 3 + 0.2  # at the next renewal, not when its own lease would have run out
        await eventually(lambda: a.is_leader, TTL)  # free key: taken again, announced as a new term
        await asyncio.sleep(0.05)
        assert changes == [False, True] and a.acquisitions == 2
    finally:
        await r.aclose()


async def test_unreachable_redis_means_not_leader(unused_tcp_port):
    node = RedisLeadership(f"redis://127.0.0.1:{unused_tcp_port}/0", "contactd:ami-owner:test", ttl=TTL)
    await node.start()  # must not raise: the node runs as a follower until Redis is back
    try:
        await asyncio.sleep(TTL / 2)
        assert not node.is_leader
    finally:
        await node.stop()


class _Proxy:
    """A TCP relay to Redis that the test can cut, as a network outage between a node and Redis."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        for coro in (pipe(reader, up_writer), pipe(up_reader, writer)):
            task = asyncio.create_task(coro)
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in self.writers:
            w.transport.abort()
        await self.server.wait_closed()


async def test_redis_outage_makes_the_leader_step_down_at_once(redis_url, key, nodes):
    from urllib.parse import urlparse

    parsed = urlparse(redis_url)
    proxy = _Proxy(parsed.port or 6379)
    port = await proxy.start()
    a = await nodes(f"redis://127.0.0.1:{port}{parsed.path}")
    assert a.is_leader
    await proxy.cut()
    took = await eventually(lambda: not a.is_leader, TTL)
    # Stepped down well before the lease it held could expire (and a second node could have taken it).
    assert took < TTL * 2 / 3


async def test_ineligible_node_never_takes_the_lease_and_gives_it_up(nodes, redis_url, key):
    link_up = False
    a = await nodes(eligible=lambda: link_up)
    await asyncio.sleep(TTL / 2)
    assert not a.is_leader and await owner(redis_url, key) is None
    link_up = True
    a.nudge()
    await eventually(lambda: a.is_leader, 0.3)  # nudged: no wait for the next interval
    link_up = False
    a.nudge()
    await eventually(lambda: not a.is_leader, 0.3)
    assert await owner(redis_url, key) is None  # released, so another node can take it at once


async def test_make_leadership_picks_single_node_without_redis(redis_url):
    single = make_leadership("", "127.0.0.1", 5038)
    assert isinstance(single, SingleNode) and single.is_leader
    await single.start()
    await single.stop()
    redis_backed = make_leadership(redis_url, "pbx.example", 5038, ttl=3)
    assert isinstance(redis_backed, RedisLeadership)
    assert redis_backed.key == "contactd:ami-owner:pbx.example:5038" and redis_backed.interval == 1.0


# ------------------------------------------------------------------------------------------ the tracker


class ManualLeadership(Leadership):
    """Leadership the test flips by hand."""

    def promote(self) -> None:
        self._set(True)


async def _call_rows(db: Any) -> list[Call]:
    async with db.session() as session:
        return list(await session.scalars(select(Call)))


@pytest.fixture
async def follower_tracker(db, bus: Bus) -> AsyncIterator[tuple[CallTracker, ManualLeadership]]:
    leadership = ManualLeadership()
    tracker = CallTracker(None, bus, db, PBXConfig(), clock=FakeClock(), agent_contexts=("agent-phones",),
                          leadership=leadership)
    await tracker.start()
    yield tracker, leadership
    await tracker.stop()
    await leadership.stop()


async def test_follower_tracker_folds_but_neither_publishes_nor_writes(follower_tracker, bus, db):
    tracker, _ = follower_tracker
    sub = bus.subscribe("call.*")
    clock = tracker.clock
    replay(tracker, "ami-actions-misc.txt", clock)  # type: ignore[arg-type]
    await tracker.flush()
    assert sub.get_nowait() is None
    assert await _call_rows(db) == []
    assert len(tracker._standby) == 3  # the three calls of that transcript, ready for a take-over


async def test_promoted_tracker_writes_cdrs_of_calls_that_ended_during_the_handover(follower_tracker, bus, db):
    tracker, leadership = follower_tracker
    sub = bus.subscribe("call.*")
    replay(tracker, "ami-actions-misc.txt", tracker.clock)  # type: ignore[arg-type]
    # The old leader wrote one of the three before it died; the other two ended while nobody led.
    async with db.transaction() as session:
        session.add(Call(**{k: v for k, v in tracker._standby["1795385901.2"][1].items()}))
    leadership.promote()
    await eventually(lambda: tracker.cdrs_written == 2, 5)
    await tracker.flush()
    rows = await _call_rows(db)
    assert sorted(r.linkedid for r in rows) == ["1795385901.2", "1795385901.4", "1795385933.7"]
    ended = []
    while (event := sub.get_nowait()) is not None:
        ended.append((event.topic, event.payload["linkedid"]))
    # call.ended only for the rows this node wrote: the old leader announced its own.
    assert sorted(ended) == [("call.ended", "1795385901.4"), ("call.ended", "1795385933.7")]


def test_leader_ttl_is_configurable_and_must_be_positive():
    from contactd.config import ConfigError, load_config

    assert load_config(None, env={}).bus.leader_ttl == 10.0
    assert load_config(None, env={"CONTACTD_BUS__LEADER_TTL": "2.5"}).bus.leader_ttl == 2.5
    with pytest.raises(ConfigError, match="bus.leader_ttl"):
        load_config(None, env={"CONTACTD_BUS__LEADER_TTL": "0"})
