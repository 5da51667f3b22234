"""The call tracker against real Asterisk 22 event sequences (asterisk-traces/), fed to its handler and over AMI."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select
from tracker_helpers import FakeClock, replay, timed_events, wall_clock_start

from contactd.bus import Bus
from contactd.config import PBXConfig
from contactd.simulator.ami_server import SimulatedAMIServer, list_reply
from contactd.store.db import Database
from contactd.store.models import Call
from contactd.telephony.ami import AMIClient, AMIMessage
from contactd.telephony.calls import CallTracker, normalize_number

LAB = ("agent-phones",)


async def rows(db: Database) -> list[Call]:
    async with db.session() as session:
        return list((await session.execute(select(Call).order_by(Call.id))).scalars())


def drain(sub: Any) -> list[tuple[str, dict[str, Any]]]:
    out = []
    while (event := sub.get_nowait()) is not None:
        out.append((event.topic, event.payload))
    return out


@pytest.fixture
async def tracker_factory(bus: Bus) -> AsyncIterator[Any]:
    made: list[CallTracker] = []

    async def make(db: Database, clock: FakeClock, **kwargs: Any) -> CallTracker:
        kwargs.setdefault("agent_contexts", LAB)
        tracker = CallTracker(kwargs.pop("ami", None), kwargs.pop("bus", bus), db, PBXConfig(), clock=clock,
                              **kwargs)
        await tracker.start()
        made.append(tracker)
        return tracker

    yield make
    for tracker in made:
        await tracker.stop()


async def test_ivr_call_from_originate_trace_gives_one_cdr_with_hangul_name(db, bus, clock, tracker_factory):
    sub = bus.subscribe("call.*")
    tracker = await tracker_factory(db, clock)
    # The FastAGI session (agi-session-inbound.txt) runs on the ;2 half: its agi_uniqueid is 1795385863.1.
    tracker.set_ivr_choice("1795385863.1", "1")
    replay(tracker, "ami-originate-inbound-call.txt", clock)
    await tracker.flush()

    [row] = await rows(db)
    assert (row.linkedid, row.uniqueid, row.direction) == ("1795385863.0", "1795385863.0", "in")
    assert (row.from_number, row.from_name, row.to_number) == ("0212345678", "홍길동", "100")
    assert row.ivr_choice == "1"
    # Asterisk's cdr_csv: the longer-lived half lasted 32 s; nobody but the IVR answered.
    assert row.duration == 32
    assert (row.disposition, row.billsec, row.agent_extension) == ("NO ANSWER", 0, None)
    assert row.started_at.tzinfo is not None and row.started_at.date() == wall_clock_start(
        "ami-originate-inbound-call.txt").date()
    events = drain(sub)
    assert [t for t, _ in events] == ["call.ended"]
    assert events[0][1]["call_id"] == row.id and events[0][1]["linkedid"] == "1795385863.0"
    assert tracker.live_calls == {}


@pytest.mark.parametrize("any_db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)
async def test_queue_call_answered_by_member(any_db, bus, clock, tracker_factory):
    sub = bus.subscribe("call.*")
    tracker = await tracker_factory(any_db, clock)
    replay(tracker, "ami-actions-misc.txt", clock)
    await tracker.flush()

    by_id = {r.linkedid: r for r in await rows(any_db)}
    # Three calls in that transcript (two lab originates and the queue call), one row each (8 Cdr events).
    assert set(by_id) == {"1795385901.2", "1795385901.4", "1795385933.7"}
    row = by_id["1795385933.7"]
    assert (row.from_number, row.from_name, row.to_number) == ("01012345678", "김태희", "200")
    assert (row.direction, row.queue, row.agent_extension) == ("in", "support", "1001")
    assert row.disposition == "ANSWERED" and row.answered_at is not None
    assert row.abandoned is False  # QueueCallerLeave came, but the call was answered
    assert row.wait_seconds == 1  # AgentConnect HoldTime (queue_log CONNECT|1)
    assert row.duration == 8 and row.billsec == 6  # cdr_csv: 8 s call, member leg billed 6 s
    # The MixMonitor started by AMI on the other lab call is remembered as its recording.
    assert by_id["1795385901.2"].recording_path == "/var/spool/asterisk/monitor/ami-mixmon-test.wav"

    queue_events = [(t, p) for t, p in drain(sub) if p["linkedid"] == "1795385933.7"]
    assert [t for t, _ in queue_events] == ["call.ringing", "call.answered", "call.ended"]
    ringing = queue_events[0][1]
    assert ringing == {"linkedid": "1795385933.7", "uniqueid": "1795385933.7", "caller_number": "01012345678",
                       "caller_name": "김태희", "extension": "1001", "queue": "support", "ivr_choice": None,
                       "direction": "in"}
    assert queue_events[1][1]["extension"] == "1001"
    assert queue_events[2][1]["disposition"] == "ANSWERED" and queue_events[2][1]["billsec"] == 6


async def test_agent_context_is_configurable(db, clock, tracker_factory):
    # With the default agent context (contactd-agents) the lab's Local/1001@agent-phones is not an agent.
    tracker = await tracker_factory(db, clock, agent_contexts=None)
    replay(tracker, "ami-actions-misc.txt", clock)
    await tracker.flush()
    row = {r.linkedid: r for r in await rows(db)}["1795385933.7"]
    assert row.agent_extension is None


async def test_transfers_give_one_row_per_call_with_final_agent(db, bus, clock, tracker_factory):
    sub = bus.subscribe("call.*")
    tracker = await tracker_factory(db, clock)
    replay(tracker, "ami-blind-and-attended-transfer.txt", clock)
    await tracker.flush()

    by_id = {r.linkedid: r for r in await rows(db)}
    assert set(by_id) == {"1795385946.11", "1795385955.15"}  # 10 Cdr events, 2 calls
    for row in by_id.values():
        assert row.transferred is True
        assert row.agent_extension == "1003"  # the transfer target is who the call ended with
        assert (row.direction, row.from_number, row.to_number) == ("internal", "1001", "1002")
        assert row.disposition == "ANSWERED"
    transfers = [p for t, p in drain(sub) if t == "call.transferred"]
    assert transfers == [
        {"linkedid": "1795385946.11", "from_extension": "1001", "to_extension": "1003", "kind": "blind"},
        {"linkedid": "1795385955.15", "from_extension": "1001", "to_extension": "1003", "kind": "attended"},
    ]


async def test_consult_call_with_its_own_linkedid_is_folded_into_the_original(db, bus, clock, tracker_factory):
    """A phone doing its own attended transfer places the consult call as a new call (new Linkedid)."""
    sub = bus.subscribe("call.*")
    tracker = await tracker_factory(db, clock, agent_contexts=("contactd-agents",))

    def ev(name: str, channel: str, uid: str, linkedid: str, **extra: str) -> None:
        tracker.handle(AMIMessage([("Event", name), ("Channel", channel), ("Uniqueid", uid),
                                   ("Linkedid", linkedid), *extra.items()]))

    # Customer -> agent 1001.
    ev("Newchannel", "PJSIP/trunk-00000001", "c.1", "c.1", ChannelState="4", CallerIDNum="01055556666",
       CallerIDName="이순신", Exten="0212340000", Context="from-pstn")
    ev("Newchannel", "PJSIP/1001-00000002", "c.2", "c.1", ChannelState="0", Exten="s", Context="from-pstn")
    ev("Newstate", "PJSIP/1001-00000002", "c.2", "c.1", ChannelState="5")
    ev("Newstate", "PJSIP/1001-00000002", "c.2", "c.1", ChannelState="6")
    ev("BridgeEnter", "PJSIP/1001-00000002", "c.2", "c.1", BridgeUniqueid="b1")
    ev("BridgeEnter", "PJSIP/trunk-00000001", "c.1", "c.1", BridgeUniqueid="b1")
    # Agent 1001's phone calls 1002 for a consultation: a second call.
    ev("Newchannel", "PJSIP/1001-00000003", "k.1", "k.1", ChannelState="4", CallerIDNum="1001", Exten="1002",
       Context="contactd-agents")
    ev("Newchannel", "PJSIP/1002-00000004", "k.2", "k.1", ChannelState="0")
    ev("Newstate", "PJSIP/1002-00000004", "k.2", "k.1", ChannelState="5")
    ev("Newstate", "PJSIP/1002-00000004", "k.2", "k.1", ChannelState="6")
    ev("BridgeEnter", "PJSIP/1002-00000004", "k.2", "k.1", BridgeUniqueid="b2")
    ev("BridgeEnter", "PJSIP/1001-00000003", "k.1", "k.1", BridgeUniqueid="b2")
    assert len(tracker.live_calls) == 2
    tracker.handle(AMIMessage([
        ("Event", "AttendedTransfer"), ("Result", "Success"),
        ("OrigTransfererChannel", "PJSIP/1001-00000002"), ("OrigTransfererUniqueid", "c.2"),
        ("OrigTransfererLinkedid", "c.1"), ("OrigBridgeUniqueid", "b1"),
        ("SecondTransfererChannel", "PJSIP/1001-00000003"), ("SecondTransfererUniqueid", "k.1"),
        ("SecondTransfererLinkedid", "k.1"), ("SecondBridgeUniqueid", "b2"),
        ("TransfereeChannel", "PJSIP/trunk-00000001"), ("TransfereeUniqueid", "c.1"),
        ("TransferTargetChannel", "PJSIP/1002-00000004"), ("TransferTargetUniqueid", "k.2"),
        ("IsExternal", "Yes"), ("DestType", "Bridge"), ("DestBridgeUniqueid", "b1"),
    ]))
    assert list(tracker.live_calls) == ["c.1"]
    assert tracker.call_for_extension("1002").linkedid == "c.1"
    for uid, channel, linkedid in (("c.2", "PJSIP/1001-00000002", "c.1"), ("k.1", "PJSIP/1001-00000003", "k.1"),
                                   ("c.1", "PJSIP/trunk-00000001", "c.1"), ("k.2", "PJSIP/1002-00000004", "k.1")):
        clock.advance(10)
        ev("Hangup", channel, uid, linkedid, Cause="16")
        ev("Cdr", channel, uid, linkedid)
    await tracker.flush()

    [row] = await rows(db)
    assert (row.linkedid, row.agent_extension, row.transferred) == ("c.1", "1002", True)
    assert (row.from_number, row.from_name, row.to_number) == ("01055556666", "이순신", "0212340000")
    assert row.duration == 40
    topics = [t for t, _ in drain(sub)]
    assert topics.count("call.ended") == 1 and topics.count("call.transferred") == 1


async def test_every_event_twice_still_one_row_and_no_duplicate_events(db, bus, clock, tracker_factory):
    sub = bus.subscribe("call.*")
    tracker = await tracker_factory(db, clock)
    for name in ("ami-originate-inbound-call.txt", "ami-actions-misc.txt", "ami-blind-and-attended-transfer.txt"):
        replay(tracker, name, clock, times=2)
        replay(tracker, name, clock)  # and the whole transcript once more afterwards
    await tracker.flush()

    linkedids = [r.linkedid for r in await rows(db)]
    assert sorted(linkedids) == sorted({"1795385863.0", "1795385901.2", "1795385901.4", "1795385933.7",
                                        "1795385946.11", "1795385955.15"})
    assert tracker.live_calls == {}
    events = drain(sub)
    keys = [(t, p["linkedid"], p.get("extension"), p.get("kind")) for t, p in events]
    assert len(keys) == len(set(keys)), keys
    assert sum(1 for t, _ in events if t == "call.ended") == 6


async def test_recording_redirect_target_and_live_call_lookup(db, clock, tracker_factory):
    tracker = await tracker_factory(db, clock)
    events = timed_events("ami-queue-and-actions.txt")
    redirect_at = next(i for i, (_, m) in enumerate(events)
                       if m.event == "BridgeLeave" and m.get("Context") == "warning")
    for _, msg in events[:redirect_at]:
        tracker.handle(msg)
    call = tracker.call_for_extension("1001")
    assert call is not None and call.answered
    # What the harassment button redirects: the caller's half that sits in the bridge with the agent.
    assert call.caller_channel == "Local/s@to-queue-00000009;2"
    assert call.agent_channel == "Local/1001@agent-phones-0000000a;1"
    assert tracker.get("1795383479.21") is call and tracker.get("1795383478.18") is call
    for _, msg in events[redirect_at:]:
        tracker.handle(msg)
    await tracker.flush()
    [row] = await rows(db)
    # Dialplan MixMonitor(<uniqueid>.wav) first (MIXMONITOR_FILENAME was only the directory), then AMI File:.
    assert row.recording_path == "/var/spool/asterisk/monitor/second-part.wav"
    assert row.recording_status == "recording"
    assert (row.from_name, row.agent_extension, row.queue) == ("김태희", "1001", "support")


async def test_ivr_choice_from_varset_and_abandoned_queue_call(db, bus, clock, tracker_factory):
    sub = bus.subscribe("call.*")
    tracker = await tracker_factory(db, clock, agent_contexts=("contactd-agents",))

    def ev(name: str, channel: str, uid: str, **extra: str) -> None:
        tracker.handle(AMIMessage([("Event", name), ("Channel", channel), ("Uniqueid", uid),
                                   ("Linkedid", "a.1"), *extra.items()]))

    ev("Newchannel", "PJSIP/trunk-0000000f", "a.1", ChannelState="4", CallerIDNum="+82 10-1234-5678",
       CallerIDName="홍길동", Exten="200", Context="from-pstn")
    ev("VarSet", "PJSIP/trunk-0000000f", "a.1", Variable="CONTACTD_IVR_CHOICE", Value="2")
    ev("QueueCallerJoin", "PJSIP/trunk-0000000f", "a.1", Queue="support")
    ev("AgentCalled", "PJSIP/trunk-0000000f", "a.1", Queue="support", DestChannel="PJSIP/1001-00000010",
       Interface="PJSIP/1001", MemberName="김상담")
    ev("AgentCalled", "PJSIP/trunk-0000000f", "a.1", Queue="support", DestChannel="PJSIP/1002-00000011",
       Interface="PJSIP/1002", MemberName="이상담")
    clock.advance(12)
    ev("QueueCallerAbandon", "PJSIP/trunk-0000000f", "a.1", Queue="support")
    ev("QueueCallerLeave", "PJSIP/trunk-0000000f", "a.1", Queue="support")
    ev("Hangup", "PJSIP/trunk-0000000f", "a.1", Cause="16")
    await tracker.flush()
    [row] = await rows(db)
    assert (row.ivr_choice, row.abandoned, row.disposition) == ("2", True, "NO ANSWER")
    assert row.wait_seconds == 12 and row.from_number == "01012345678"
    ringing = [p for t, p in drain(sub) if t == "call.ringing"]
    # Each ringing agent gets its own screen-pop, with the IVR choice.
    assert [(p["extension"], p["ivr_choice"]) for p in ringing] == [("1001", "2"), ("1002", "2")]


async def test_slow_subscriber_never_blocks_the_tracker(db, clock, tracker_factory):
    bus = Bus()
    sleeper = bus.subscribe("call.*", maxsize=10)  # never read
    tracker = await tracker_factory(db, clock, bus=bus, outbox_size=1000)
    started = time.perf_counter()
    for i in range(10_000):
        tracker.handle(AMIMessage([("Event", "AgentCalled"), ("Channel", f"PJSIP/trunk-{i:08x}"),
                                   ("Uniqueid", f"s.{i}"), ("Linkedid", f"s.{i}"), ("Queue", "support"),
                                   ("Interface", "PJSIP/1001"), ("DestChannel", f"PJSIP/1001-{i:08x}")]))
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0, f"handler too slow: {elapsed:.2f}s for 10,000 events"
    assert tracker.overflows == 9_000  # the outbox kept 1,000; the rest counted, not queued without bound
    await tracker.flush(10)
    assert sleeper.dropped == 990  # the bus dropped for the sleeping subscriber, it never blocked us
    # Calls still end and are written while the subscriber sleeps.
    tracker.handle(AMIMessage([("Event", "Hangup"), ("Channel", "PJSIP/trunk-00000000"), ("Uniqueid", "s.0"),
                               ("Linkedid", "s.0"), ("Cause", "16")]))
    await tracker.flush()
    assert [r.linkedid for r in await rows(db)] == ["s.0"]


async def test_hung_bus_publish_times_out_and_cdr_still_written(db, clock, tracker_factory):
    class StuckBus:
        async def publish(self, topic: str, payload: dict[str, Any]) -> None:
            await asyncio.sleep(3600)

    tracker = await tracker_factory(db, clock, bus=StuckBus(), publish_timeout=0.05)
    for msg in [m for _, m in timed_events("ami-sip-inbound-call.txt")]:
        tracker.handle(msg)
    await tracker.flush(5)
    assert [r.from_number for r in await rows(db)] == ["sipp"]
    assert tracker.overflows == 1  # the call.ended publish


def test_normalize_number() -> None:
    assert normalize_number("010-1234-5678") == "01012345678"
    assert normalize_number("+82 10 1234 5678") == "01012345678"
    assert normalize_number("<unknown>") == ""
    assert normalize_number("sipp") == "sipp"


# ----------------------------------------------------------------------------------------- over a real socket


def _channels_from_trace(name: str, action_id: str) -> list[list[tuple[str, str]]]:
    items = []
    for _, msg in timed_events(name):
        if msg.event == "CoreShowChannel" and msg.get("ActionID") == action_id:
            items.append([(k, v) for k, v in msg.headers if k != "ActionID"])
    return items


@pytest.fixture
async def ami_pair() -> AsyncIterator[tuple[SimulatedAMIServer, AMIClient, dict[str, Any]]]:
    server = SimulatedAMIServer(username="contactd", secret="labsecret")
    state: dict[str, Any] = {"channels": []}

    def core_show_channels(action: Any) -> Any:
        return list_reply("CoreShowChannelsComplete", state["channels"], message="Channels will follow")

    server.register_action("CoreShowChannels", core_show_channels)
    await server.start()
    client = AMIClient("127.0.0.1", server.port, "contactd", "labsecret", reconnect_min_delay=0.05,
                       reconnect_max_delay=0.2, ping_interval=30)
    yield server, client, state
    await client.close()
    await server.stop()


async def _wait_for(predicate: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        # Polling is the point here: the conditions change on the far side of a real socket.
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_queue_call_over_ami_socket(db, bus, clock, tracker_factory, ami_pair):
    server, client, _ = ami_pair
    await client.start()
    await client.wait_connected(5)
    sub = bus.subscribe("call.*")
    await tracker_factory(db, clock, ami=client)
    events = [m for _, m in timed_events("ami-actions-misc.txt")]
    start = next(i for i, m in enumerate(events) if m.get("Channel") == "Local/200@from-pstn-00000003;1")
    for msg in events[start:]:
        if msg.event and not msg.get("ActionID"):
            server.emit(msg.headers)
    seen: list[tuple[str, dict[str, Any]]] = []

    def ended() -> bool:
        seen.extend(drain(sub))
        return any(t == "call.ended" for t, _ in seen)

    await _wait_for(ended)
    [row] = await rows(db)
    assert (row.from_name, row.agent_extension, row.wait_seconds, row.abandoned) == ("김태희", "1001", 1, False)
    assert [t for t, _ in seen] == ["call.ringing", "call.answered", "call.ended"]


async def test_resync_after_reconnect_adopts_live_calls_and_closes_vanished_ones(db, bus, clock,
                                                                                 tracker_factory, ami_pair):
    server, client, state = ami_pair
    # Asterisk had 4 Local halves up (two calls) when contactd (re)started: ami-actions-misc.txt, ami-003.
    state["channels"] = _channels_from_trace("ami-actions-misc.txt", "ami-003")
    assert len(state["channels"]) == 4
    await client.start()
    await client.wait_connected(5)
    sub = bus.subscribe("call.*")
    tracker = await tracker_factory(db, clock, ami=client)
    await _wait_for(lambda: len(tracker.live_calls) == 2)
    assert set(tracker.live_calls) == {"1795385901.2", "1795385901.4"}
    call = tracker.get("1795385901.5")  # a ;2 half found by its uniqueid
    assert call is not None and call.linkedid == "1795385901.4" and call.adopted
    assert (call.started_at - clock.now).total_seconds() == -2  # Duration: 00:00:02

    # AMI drops; while away the 1009 call ends. After the reconnect only the 1002 call is listed.
    state["channels"] = [c for c in state["channels"] if ("Linkedid", "1795385901.4") in c]
    clock.advance(30)
    logins = server.login_count
    await server.kill()
    await server.start()
    await _wait_for(lambda: server.login_count > logins and len(tracker.live_calls) == 1)
    await tracker.flush()
    assert list(tracker.live_calls) == ["1795385901.4"]
    [row] = await rows(db)
    assert row.linkedid == "1795385901.2" and row.duration == 32
    assert [t for t, _ in drain(sub)] == ["call.ended"]

    # The adopted call keeps being tracked by live events: its hangups end it with one row.
    for channel, uid in (("Local/1002@agent-phones-00000002;2", "1795385901.5"),
                         ("Local/1002@agent-phones-00000002;1", "1795385901.4")):
        server.emit([("Event", "Hangup"), ("Channel", channel), ("Uniqueid", uid), ("Linkedid", "1795385901.4"),
                     ("Cause", "16")])
    await _wait_for(lambda: not tracker.live_calls)
    await tracker.flush()
    assert sorted(r.linkedid for r in await rows(db)) == ["1795385901.2", "1795385901.4"]


async def test_cdr_insert_is_idempotent_at_the_database(db, clock, tracker_factory):
    # Two trackers (e.g. a node handing over the AMI stream) folding the same call write one row.
    first = await tracker_factory(db, clock)
    second = await tracker_factory(db, clock)
    replay(first, "ami-sip-inbound-call.txt", clock)
    replay(second, "ami-sip-inbound-call.txt", clock)
    await first.flush()
    await second.flush()
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Call)) == 1
