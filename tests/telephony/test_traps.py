"""Known contact-center traps for the telephony layer, each reproduced with Asterisk 22 event shapes.

Events are built with the field names the recorded traces use (asterisk-traces/); the tracker is fed through its
synchronous handler, the AMI client through real sockets on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from contactd.config import PBXConfig
from contactd.store.db import Database
from contactd.telephony.ami import AMIMessage
from contactd.telephony.calls import CallTracker

LAB = ("agent-phones",)
CALLER = "PJSIP/trunk-00000001"


def ev(name: str, **fields: str) -> AMIMessage:
    return AMIMessage([("Event", name), *fields.items()])


def chan(name: str, channel: str, uniqueid: str, linkedid: str = "100.1", **fields: str) -> AMIMessage:
    return ev(name, Channel=channel, Uniqueid=uniqueid, Linkedid=linkedid, **fields)


@pytest.fixture
async def tracker(db: Database, bus: Any, clock: Any) -> AsyncIterator[CallTracker]:
    t = CallTracker(None, bus, db, PBXConfig(), agent_contexts=LAB, clock=clock)
    await t.start()
    yield t
    await t.stop()


def queue_call_answered_by_1001(tracker: CallTracker) -> str:
    """A trunk caller queued and answered by agent 1001 (queue member Local/1001@agent-phones/n)."""
    agent = "Local/1001@agent-phones-00000001;1"
    for msg in (
        chan("Newchannel", CALLER, "100.1", ChannelState="4", CallerIDNum="01012345678", Exten="100",
             Context="contactd-inbound"),
        chan("QueueCallerJoin", CALLER, "100.1", Queue="support"),
        chan("Newchannel", agent, "100.2", ChannelState="0", Context="agent-phones", Exten="1001"),
        ev("AgentCalled", Channel=CALLER, Uniqueid="100.1", Linkedid="100.1", DestChannel=agent,
           DestUniqueid="100.2", Queue="support", Interface="Local/1001@agent-phones/n"),
        chan("Newstate", agent, "100.2", ChannelState="6"),
        ev("AgentConnect", Channel=CALLER, Uniqueid="100.1", Linkedid="100.1", DestChannel=agent,
           DestUniqueid="100.2", Queue="support", Interface="Local/1001@agent-phones/n", HoldTime="3"),
    ):
        tracker.handle(msg)
    return agent


async def test_renamed_agent_leg_keeps_the_hangup_button_on_the_agent(tracker: CallTracker) -> None:
    """A masquerade (pickup, some channel drivers) renames a channel, keeping its Uniqueid: the agent's buttons
    must follow the new name, or Hangup/BlindTransfer hit a channel that no longer exists."""
    agent = queue_call_answered_by_1001(tracker)
    live = tracker.call_for_extension("1001")
    assert live is not None and live.agent_channel == agent
    tracker.handle(ev("Rename", Channel=agent, Newname="PJSIP/1001-0000000a", Uniqueid="100.2", Linkedid="100.1"))
    assert live.agent_channel == "PJSIP/1001-0000000a"
    tracker.handle(ev("Rename", Channel=CALLER, Newname="PJSIP/trunk-0000000b", Uniqueid="100.1",
                      Linkedid="100.1"))
    assert live.caller_channel == "PJSIP/trunk-0000000b"
    await asyncio.sleep(0)


def _snapshot(channel: str, uniqueid: str, state: int, bridge: str, duration: str = "00:00:20") -> Any:
    from contactd.telephony.pbx import LiveChannel

    return LiveChannel(channel=channel, uniqueid=uniqueid, linkedid="100.1", state=state, state_desc="",
                       caller_number="", caller_name="", connected_number="", connected_name="",
                       context="agent-phones", exten="1001", priority=1, application="", application_data="",
                       duration=duration, bridge_id=bridge)


async def test_call_answered_while_ami_was_down_is_answered_in_its_cdr(tracker: CallTracker, db: Database,
                                                                        clock: Any) -> None:
    """The link drops while 1001's phone rings; 1001 answers during the outage (AgentConnect is lost). The
    re-sync snapshot shows both legs Up in one bridge: the CDR must say ANSWERED by 1001, not NO ANSWER."""
    from sqlalchemy import select

    from contactd.store.models import Call

    agent = "Local/1001@agent-phones-00000001;1"
    for msg in (
        chan("Newchannel", CALLER, "100.1", ChannelState="4", CallerIDNum="01012345678", Exten="100",
             Context="contactd-inbound"),
        chan("QueueCallerJoin", CALLER, "100.1", Queue="support"),
        chan("Newchannel", agent, "100.2", ChannelState="0", Context="agent-phones", Exten="1001"),
        ev("AgentCalled", Channel=CALLER, Uniqueid="100.1", Linkedid="100.1", DestChannel=agent,
           DestUniqueid="100.2", Queue="support", Interface="Local/1001@agent-phones/n"),
        chan("Newstate", agent, "100.2", ChannelState="5"),
    ):
        tracker.handle(msg)
    clock.advance(10)
    tracker.apply_channel_list([_snapshot(CALLER, "100.1", 6, "b-1"), _snapshot(agent, "100.2", 6, "b-1")])
    live = tracker.call_for_extension("1001")
    assert live is not None and live.answered and live.agent_extension == "1001"
    assert live.agent_channel == agent
    clock.advance(30)
    tracker.handle(chan("Hangup", agent, "100.2", Cause="16"))
    tracker.handle(chan("Hangup", CALLER, "100.1", Cause="16"))
    await tracker.flush()
    async with db.session() as session:
        [row] = list(await session.scalars(select(Call)))
    assert (row.disposition, row.agent_extension, row.abandoned) == ("ANSWERED", "1001", False)
    assert 25 <= row.billsec <= 40


async def test_local_channel_optimisation_moves_the_agent_buttons_to_the_phone(tracker: CallTracker) -> None:
    """The shipped queues.conf adds members as Local/<ext>@contactd-agents without /n, so Asterisk optimises the
    Local pair away once 1001 answers: PJSIP/1001 is swapped into the caller's bridge and both Local halves hang
    up. The agent's hangup/transfer/hold must then act on PJSIP/1001, not on the vanished Local;1."""
    from contactd.crm.call_control import agent_channel

    local1 = queue_call_answered_by_1001(tracker)
    local2 = "Local/1001@agent-phones-00000001;2"
    phone = "PJSIP/1001-00000002"
    for msg in (
        chan("Newchannel", local2, "100.3", ChannelState="4", Context="agent-phones", Exten="1001"),
        chan("Newchannel", phone, "100.4", ChannelState="0", Context="agent-phones", Exten="1001"),
        chan("Newstate", phone, "100.4", ChannelState="6"),
        chan("BridgeEnter", CALLER, "100.1", BridgeUniqueid="b-caller"),
        chan("BridgeEnter", local1, "100.2", BridgeUniqueid="b-caller"),
        # LocalOptimizationBegin/End are not tracked; what matters is the swap and the hang-ups that follow.
        chan("BridgeEnter", phone, "100.4", BridgeUniqueid="b-caller"),
        chan("BridgeLeave", local1, "100.2", BridgeUniqueid="b-caller"),
        chan("Hangup", local1, "100.2", Cause="16"),
        chan("Hangup", local2, "100.3", Cause="16"),
    ):
        tracker.handle(msg)
    live = tracker.call_for_extension("1001")
    assert live is not None and live.answered
    assert agent_channel(live) == phone
    assert "100.1" in live.legs and tracker.live_calls  # the call goes on


async def test_screen_pop_is_not_held_behind_a_cdr_write_the_database_is_stalling(
        tracker: CallTracker, bus: Any, sqlite_url: str) -> None:
    """The database is locked (a long report, a backup, PostgreSQL failing over) while call A's CDR is written.
    Call B starts ringing at 1002 meanwhile: its screen-pop must arrive now, not after the CDR write gives up."""
    import sqlite3

    sub = bus.subscribe("call.*")
    locker = sqlite3.connect(sqlite_url.split("///", 1)[1], isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        tracker.handle(chan("Newchannel", CALLER, "100.1", ChannelState="4", CallerIDNum="01012345678",
                            Exten="100", Context="contactd-inbound"))
        tracker.handle(chan("Hangup", CALLER, "100.1", Cause="16"))  # call A ends: its CDR write now waits
        await asyncio.sleep(0.1)
        other = "PJSIP/trunk-00000009"
        tracker.handle(chan("Newchannel", other, "200.1", "200.1", ChannelState="4", CallerIDNum="0212345678",
                            Exten="100", Context="contactd-inbound"))
        tracker.handle(ev("AgentCalled", Channel=other, Uniqueid="200.1", Linkedid="200.1", Queue="support",
                          DestChannel="Local/1002@agent-phones-00000005;1", Interface="Local/1002@agent-phones/n"))
        try:
            event = await sub.get(timeout=1.0)
            while event.topic != "call.ringing":
                event = await sub.get(timeout=1.0)
        except TimeoutError:
            pytest.fail("the screen-pop of call B waited behind call A's CDR write")
        assert event.payload["extension"] == "1002"
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    await tracker.flush(10)
    assert tracker.cdrs_written == 1
