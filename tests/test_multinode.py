"""Two contactd nodes on ONE Asterisk: one PostgreSQL database, one Redis bus, one simulated PBX.

Exactly one node (the Redis lease holder) owns the AMI event stream: screen-pops arrive once per node, not once
per node per node; one CDR and one recording per call; and when the owner stops mid-call the other node takes
over within the lease ttl, re-syncs and still writes the call's single CDR.

Sharing the simulator: a Daemon with no `[ami] host` builds a private simulator and stops it with itself, which
would take the PBX down with the first node. Here the test owns the SimulatedAMIServer + SimulatedPBX (as a real
Asterisk outlives contactd nodes) and both daemons get its host/port/secret in `[ami]`, like a real deployment.
The simulated PBX sends FastAGI to node B, so stopping node A mid-call leaves the caller's IVR session alone.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from contactd.app import Daemon
from contactd.config import Config, load_config
from contactd.simulator.agi_caller import CallerBehaviour
from contactd.simulator.ami_server import SimulatedAMIServer
from contactd.simulator.pbx import SimulatedPBX
from contactd.store.models import Call

TTL = 1.0
DAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")


def node_config(tmp_path: Path, pg_url: str, redis_url: str, sim: SimulatedAMIServer, secret: str) -> Config:
    return load_config(None, env={
        "CONTACTD_DB__URL": pg_url, "CONTACTD_BUS__REDIS_URL": redis_url, "CONTACTD_BUS__LEADER_TTL": str(TTL),
        "CONTACTD_AMI__HOST": "127.0.0.1", "CONTACTD_AMI__PORT": str(sim.port), "CONTACTD_AMI__SECRET": secret,
        "CONTACTD_AMI__RECONNECT_MAX_DELAY": "0.3",
        "CONTACTD_WEB__PORT": "0", "CONTACTD_AGI__PORT": "0",
        # One directory both nodes and Asterisk see at the same path (the documented requirement).
        "CONTACTD_RECORDINGS__DIR": str(tmp_path / "recordings"),
        **{f"CONTACTD_HOURS__{day}": "00:00-24:00" for day in DAYS},
    })


async def until(check: Any, timeout: float, what: str) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout}s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


class Node:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.services: Any = daemon.services
        self.leadership: Any = daemon.leadership
        # Subscribed from the start: everything this node's panel would push to browsers.
        self.events = self.services.bus.subscribe("call.*", name="test")
        # Redis pub/sub is server-wide: other test sessions' simulators (same linkedid scheme) publish there too.
        self.origins: set[str] = set()

    async def next_event(self, linkedid: str, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            event = await self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            if event.origin in self.origins and event.payload.get("linkedid") == linkedid:
                return event

    async def events_of(self, linkedid: str, timeout: float = 15.0) -> list[Any]:
        """This call's events as this node's bus delivered them, through its call.ended."""
        seen: list[Any] = []
        deadline = time.monotonic() + timeout
        while True:
            event = await self.next_event(linkedid, max(0.01, deadline - time.monotonic()))
            seen.append(event)
            if event.topic == "call.ended":
                return seen


@pytest.fixture
async def rig(tmp_path: Path, pg_db: Any, redis_url: str) -> AsyncIterator[tuple[Node, Node, SimulatedPBX, Any]]:
    secret = secrets.token_urlsafe(12)
    sim_server = SimulatedAMIServer(secret=secret)
    await sim_server.start()
    config = node_config(tmp_path, str(pg_db.engine.url.render_as_string(hide_password=False)), redis_url,
                         sim_server, secret)
    daemons: list[Daemon] = []
    # Built before the nodes log in: it registers the PBX's actions (CoreShowChannels, DBPut...) on the server.
    pbx = SimulatedPBX(sim_server, recordings_dir=tmp_path / "recordings", config=config.pbx)
    try:
        first = Daemon(config)
        daemons.append(first)
        await first.start()
        await until(lambda: first.leadership.is_leader, 5, "first node leads")
        second = Daemon(config)
        daemons.append(second)
        await second.start()
        await second.services.ami.wait_connected(5)
        a, b = Node(first), Node(second)
        a.origins = b.origins = {first.services.bus.node_id, second.services.bus.node_id}
        pbx.agi_port = second.agi_port
        yield a, b, pbx, sim_server
    finally:
        await pbx.close()
        for daemon in reversed(daemons):
            await daemon.stop()
        await sim_server.stop()


async def cdrs(db: Any, linkedid: str) -> list[Call]:
    async with db.session() as session:
        return list(await session.scalars(select(Call).where(Call.linkedid == linkedid)))


def actions(sim_server: SimulatedAMIServer, name: str) -> int:
    return sum(1 for msg in sim_server.received if (msg.get("Action") or "").lower() == name.lower())


def ringing_per_extension(events: list[Any]) -> Counter[str]:
    return Counter(e.payload["extension"] for e in events if e.topic == "call.ringing")


async def test_one_call_pops_once_per_node_and_writes_one_cdr_and_one_recording(rig, pg_db):
    a, b, pbx, sim_server = rig
    assert a.leadership.is_leader and not b.leadership.is_leader
    call = await pbx.inbound_call("01012345678", "홍길동", behaviour=CallerBehaviour(keys=["2"]), answer_by="1001",
                                  talk_seconds=1.0)
    seen_a, seen_b = await asyncio.gather(a.events_of(call.linkedid), b.events_of(call.linkedid))
    await asyncio.wait_for(call.done, 15)

    for seen in (seen_a, seen_b):
        ringing = ringing_per_extension(seen)
        assert ringing and set(ringing.values()) == {1}, ringing  # each ringing phone pops once, not twice
        assert "1001" in ringing
        assert Counter(e.topic for e in seen)["call.ended"] == 1
        assert {e.origin for e in seen} == {a.services.bus.node_id}  # only the stream's owner announces
    assert [e.topic for e in seen_a] == [e.topic for e in seen_b]

    [row] = await cdrs(pg_db, call.linkedid)
    assert (row.from_number, row.agent_extension, row.disposition) == ("01012345678", "1001", "ANSWERED")
    assert actions(sim_server, "MixMonitor") == 1
    for _ in range(50):  # the row is completed once MixMonitor's file has closed
        [row] = await cdrs(pg_db, call.linkedid)
        if row.recording_status not in ("none", "recording"):
            break
        await asyncio.sleep(0.1)
    assert row.recording_status == "ready" and row.recording_size > 44
    files = list((Path(a.services.config.recordings.dir)).rglob("*.wav"))
    assert len(files) == 1 and Path(row.recording_path).name == files[0].name
    # The follower still knows the call's state for call control (it folded every event), but wrote nothing.
    assert b.services.tracker.cdrs_written == 0 and a.services.tracker.cdrs_written == 1


async def test_leader_stopping_mid_call_hands_over_and_the_call_keeps_its_single_cdr(rig, pg_db):
    a, b, pbx, sim_server = rig
    call = await pbx.inbound_call("01099998888", "김철수", behaviour=CallerBehaviour(keys=["2"]), answer_by="1002",
                                  talk_seconds=3.0)

    async def answered_on_b() -> list[Any]:
        seen = []
        while True:
            seen.append(await b.next_event(call.linkedid, 10))
            if seen[-1].topic == "call.answered":
                return seen

    before = await answered_on_b()
    # Agent 1002 is on the call: call control on the follower finds it too.
    live = b.services.tracker.call_for_extension("1002")
    assert live is not None and live.linkedid == call.linkedid and live.answered

    resyncs_before = actions(sim_server, "CoreShowChannels")
    await a.daemon.stop()
    took = await until(lambda: b.leadership.is_leader, TTL, "second node takes over")
    assert took < TTL
    await until(lambda: actions(sim_server, "CoreShowChannels") > resyncs_before, 5, "new leader re-syncs")
    assert not call.done.done(), "the call must still be in progress at the hand-over"

    after = await b.events_of(call.linkedid)
    await asyncio.wait_for(call.done, 15)
    seen = before + after
    ringing = ringing_per_extension(seen)
    assert ringing and set(ringing.values()) == {1}  # no second screen-pop from the new leader's re-sync
    [ended] = [e for e in seen if e.topic == "call.ended"]
    assert ended.origin == b.services.bus.node_id

    await b.services.tracker.flush(5)
    [row] = await cdrs(pg_db, call.linkedid)
    assert (row.agent_extension, row.disposition, row.from_number) == ("1002", "ANSWERED", "01099998888")
    assert row.billsec >= 2  # the answer time survived the hand-over: folded by the follower all along
    assert actions(sim_server, "MixMonitor") == 1  # recorded once, by the first leader; not restarted
    for _ in range(50):  # measured by the new leader although the old one started it
        [row] = await cdrs(pg_db, call.linkedid)
        if row.recording_status not in ("none", "recording"):
            break
        await asyncio.sleep(0.1)
    assert row.recording_status == "ready" and row.recording_size > 44 and Path(row.recording_path).is_file()
