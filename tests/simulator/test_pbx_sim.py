"""The simulated PBX over real sockets: AMIClient ↔ SimulatedAMIServer + SimulatedPBX, FastAGI IVR on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
import wave
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from trace_reader import server_messages  # tests/telephony, put on sys.path by this directory's conftest

from contactd.simulator.agi_caller import CallerBehaviour
from contactd.telephony.ami import AMIActionError, AMIMessage

if TYPE_CHECKING:
    from conftest import Rig

# Events on the caller's channel that make up a queue call (SoftHangupRequest and the dialplan plumbing of the
# lab's Local/200 originate differ between the trace and a trunk call, so they are left out).
QUEUE_EVENTS = {"QueueCallerJoin", "MusicOnHoldStart", "AgentCalled", "DialBegin", "DialState", "DialEnd",
                "MusicOnHoldStop", "QueueCallerLeave", "AgentConnect", "BridgeEnter", "HangupRequest",
                "AgentComplete", "BridgeLeave", "Hangup"}


def _caller_events(messages: list[AMIMessage], caller: str) -> list[AMIMessage]:
    return [m for m in messages if m.event in QUEUE_EVENTS and m.get("Channel") == caller]


def _keys(m: AMIMessage) -> list[str]:
    return [k for k, _ in m.headers if k != "ActionID"]


async def _only_1001_available(rig: Rig) -> None:
    for ext in ("1002", "1003"):
        await rig.ami.action("QueuePause", {"Queue": "support", "Interface": f"Local/{ext}@contactd-agents",
                                            "Paused": "true", "Reason": "test"})


async def test_inbound_queue_call_has_the_traced_event_sequence_and_headers(rig: Rig) -> None:
    await _only_1001_available(rig)
    call = await rig.sim.inbound_call("01012345678", "김태희", answer_by="1001", ring_seconds=1, talk_seconds=3)
    await asyncio.wait_for(call.done, 3)
    await rig.wait_event("Cdr", Channel=call.caller_channel)

    traced = server_messages("ami-actions-misc.txt", "ami")
    start = next(i for i, m in enumerate(traced) if m.get("Channel") == "Local/200@from-pstn-00000003;2")
    traced_caller = _caller_events(traced[start:], "Local/200@from-pstn-00000003;2")
    ours = _caller_events(rig.events, call.caller_channel)
    assert [m.event for m in ours] == [m.event for m in traced_caller]
    for mine, theirs in zip(ours, traced_caller, strict=True):
        assert _keys(mine) == _keys(theirs), mine.event
    connect = next(m for m in ours if m.event == "AgentConnect")
    assert connect.get("Interface") == "Local/1001@contactd-agents"
    assert connect.get("CallerIDName") == "김태희"
    assert call.transcript is not None and call.transcript.commands == ["ANSWER", "EXEC Queue support,,,,300"]
    assert call.transcript.hung_up and call.transcript.closed_by == "server"
    assert rig.sim.live_channels() == []


async def test_every_channel_of_a_call_is_in_exactly_one_cdr(rig: Rig) -> None:
    call = await rig.sim.inbound_call("01099998888", "이순신", answer_by="1002", talk_seconds=2)
    await asyncio.wait_for(call.done, 3)
    await rig.wait_event("Cdr", Channel=call.caller_channel)
    created = {m.get("Channel") for m in rig.events if m.event == "Newchannel" and m.get("Linkedid") == call.linkedid}
    cdrs = [m for m in rig.events if m.event == "Cdr" and m.get("Channel") in created]
    own = [m.get("Channel") for m in cdrs]
    assert len(own) == len(set(own)), "a channel got two CDRs"
    named = set(own) | {m.get("DestinationChannel") for m in cdrs}
    assert created <= named
    trunk = next(m for m in cdrs if m.get("Channel") == call.caller_channel)
    assert trunk.get("Disposition") == "ANSWERED" and trunk.get("Source") == "01099998888"
    assert trunk.get("DestinationChannel", "").startswith("Local/1002@contactd-agents-")
    assert int(trunk.get("BillableSeconds") or 0) >= 2
    # Hangup of the trunk comes after the FastAGI session closed, as Asterisk does.
    names = [m.event for m in rig.events if m.get("Channel") == call.caller_channel]
    assert names[-2:] == ["Hangup", "Cdr"]


async def test_abandoned_call_emits_queue_caller_abandon(rig: Rig) -> None:
    call = await rig.sim.inbound_call("01011112222", "홍길동", answer_by=None, ring_seconds=2)
    await asyncio.wait_for(call.done, 3)
    names = rig.names(call.linkedid)
    assert "QueueCallerAbandon" in names and "AgentConnect" not in names
    assert names.index("QueueCallerAbandon") < names.index("QueueCallerLeave")
    assert call.outcome == "abandoned"
    assert rig.sim.live_channels() == []


async def test_agent_can_answer_a_ringing_call_by_hand(rig: Rig) -> None:
    call = await rig.sim.inbound_call("01011112222", answer_by=None, ring_seconds=50, talk_seconds=1)
    await rig.wait_event("AgentCalled", Interface="Local/1003@contactd-agents")
    assert rig.sim.answer("1003")
    await asyncio.wait_for(call.done, 3)
    connect = await rig.wait_event("AgentConnect")
    assert connect.get("MemberName") == "Agent 1003" and call.agent_extension == "1003"


async def test_originate_answers_as_traced(rig: Rig) -> None:
    result = await rig.ami.action("Originate", {"Channel": "PJSIP/1001", "Context": "contactd-click2call",
                                                "Exten": "01012345678", "Priority": 1, "CallerID": "<01012345678>",
                                                "Async": "true"})
    assert result.response.get("Message") == "Originate successfully queued"
    action_id = result.response.action_id
    resp = await rig.wait_event("OriginateResponse")
    assert resp.action_id == action_id
    assert (resp.get("Response"), resp.get("Reason")) == ("Success", "4")
    assert resp.get("Channel", "").startswith("PJSIP/1001-")
    assert _keys(resp)[:2] == ["Event", "Privilege"]
    dial = await rig.wait_event("DialBegin", Channel=resp.get("Channel") or "")
    assert dial.get("DestExten") == "01012345678" and dial.get("DestChannel", "").startswith("PJSIP/trunk-")
    await rig.wait_event("BridgeEnter", Channel=resp.get("Channel"))
    with pytest.raises(AMIActionError, match="Channel not specified"):
        await rig.ami.action("Originate", {"Exten": "s", "Context": "x"})


async def test_redirect_to_warning_plays_it_and_ends_the_call(rig: Rig) -> None:
    call = await rig.sim.inbound_call("01055556666", "김태희", answer_by="1001", talk_seconds=None)
    await rig.wait_event("AgentConnect")
    reply = await rig.ami.action("Redirect", {"Channel": call.caller_channel, "Context": "contactd-warning",
                                              "Exten": "abuse", "Priority": 1})
    assert reply.response.get("Message") == "Redirect successful"
    await asyncio.wait_for(call.done, 3)
    mine = [m for m in rig.events if m.get("Channel") == call.caller_channel]
    plays = [m for m in mine if m.event == "Newexten" and m.get("Application") == "Playback"]
    assert plays and plays[0].get("AppData") == "contactd/warning-abuse"
    assert plays[0].get("Context") == "contactd-warning"
    assert mine[-2].event == "Hangup" and mine[-1].event == "Cdr"
    agent_hangups = [m for m in rig.events if m.event == "Hangup" and "1001" in (m.get("Channel") or "")]
    assert len(agent_hangups) == 3  # Local;1, Local;2, desk phone
    assert call.outcome == "warned" and rig.sim.live_channels() == []


async def test_agent_hangup_via_ami_ends_the_call(rig: Rig) -> None:
    call = await rig.sim.inbound_call("01055556666", answer_by="1002", talk_seconds=None)
    await rig.wait_event("AgentConnect")
    assert call.agent_phone_channel
    await rig.ami.action("Hangup", {"Channel": call.agent_phone_channel, "Cause": 16})
    await asyncio.wait_for(call.done, 3)
    done = await rig.wait_event("AgentComplete")
    assert done.get("Reason") == "agent"


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else -1


async def _size_above(path: Path, size: int) -> int:
    for _ in range(200):  # ≤ 2 s
        if _size(path) > size:
            return _size(path)
        await asyncio.sleep(0.01)
    raise AssertionError(f"{path} did not grow beyond {size} bytes")


async def test_mixmonitor_writes_a_growing_wav(rig: Rig) -> None:
    call = await rig.sim.inbound_call("01012345678", answer_by="1001", talk_seconds=None)
    await rig.wait_event("AgentConnect")
    path = rig.recordings / "2026" / "call.wav"
    await rig.ami.action("MixMonitor", {"Channel": call.caller_channel, "File": str(path), "Options": "b"})
    await rig.wait_event("MixMonitorStart", Channel=call.caller_channel)
    started = time.monotonic()
    early = await _size_above(path, 44)
    await _size_above(path, early)  # still growing while the call lasts
    with wave.open(str(path)) as w:  # readable while still recording
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
    await asyncio.sleep(max(0.0, 0.16 - (time.monotonic() - started)))  # ≥ 8 simulated seconds of talk
    rig.sim.hangup(call.caller_channel)
    await asyncio.wait_for(call.done, 3)
    with wave.open(str(path)) as w:
        frames = w.getnframes()
        audio = w.readframes(frames)
    assert frames >= 8000 * 6  # ≥ 6 s of audio for ≥ 8 simulated seconds of talk
    assert max(abs(int.from_bytes(audio[i:i + 2], "little", signed=True)) for i in range(0, 4000, 2)) > 1000
    with pytest.raises(AMIActionError, match="No such channel"):
        await rig.ami.action("StopMixMonitor", {"Channel": call.caller_channel})


async def test_stop_mixmonitor_when_none_runs(rig: Rig) -> None:
    call = await rig.sim.inbound_call("01012345678", answer_by="1001", talk_seconds=None)
    await rig.wait_event("AgentConnect")
    await rig.ami.action("MixMonitor", {"Channel": call.caller_channel, "File": "a.wav"})
    await rig.ami.action("StopMixMonitor", {"Channel": call.caller_channel})
    await rig.wait_event("MixMonitorStop", Channel=call.caller_channel)
    with pytest.raises(AMIActionError, match="Could not stop monitoring channel"):
        await rig.ami.action("StopMixMonitor", {"Channel": call.caller_channel})
    assert _size(rig.recordings / "a.wav") >= 44
    rig.sim.hangup(call.caller_channel)
    await asyncio.wait_for(call.done, 3)


async def test_astdb_round_trip(rig: Rig) -> None:
    ok = await rig.ami.action("DBPut", {"Family": "contactd-blacklist", "Key": "01012345678", "Val": "abuse"})
    assert ok.response.get("Message") == "Updated database successfully"
    got = await rig.ami.action("DBGet", {"Family": "contactd-blacklist", "Key": "01012345678"})
    assert [(e.event, e.get("Val")) for e in got.events if e.event == "DBGetResponse"] == [("DBGetResponse", "abuse")]
    tree = await rig.ami.action("DBGetTree", {"Family": "contactd-blacklist"})
    assert [e.get("Key") for e in tree.events if e.event == "DBGetTreeResponse"] == ["/contactd-blacklist/01012345678"]
    deleted = await rig.ami.action("DBDel", {"Family": "contactd-blacklist", "Key": "01012345678"})
    assert deleted.response.get("Message") == "Key deleted successfully"
    with pytest.raises(AMIActionError, match="Database entry not found"):
        await rig.ami.action("DBGet", {"Family": "contactd-blacklist", "Key": "01012345678"})


async def test_unknown_channels_get_the_traced_errors(rig: Rig) -> None:
    gone = "PJSIP/trunk-0000ffff"
    for action, fields, text in [
        ("Hangup", {"Channel": gone}, "No such channel"),
        ("Getvar", {"Channel": gone, "Variable": "X"}, "No such channel"),
        ("Status", {"Channel": gone}, "No such channel"),
        ("Redirect", {"Channel": gone, "Context": "c", "Exten": "s", "Priority": 1}, f"Channel does not exist: {gone}"),
        ("Hangup", {}, "No channel specified"),
        ("Getvar", {"Channel": gone}, "No variable specified"),
        ("Redirect", {"Channel": gone}, "Context not specified"),
    ]:
        with pytest.raises(AMIActionError) as info:
            await rig.ami.action(action, fields)
        assert info.value.response.get("Message") == text, action


async def test_queue_actions_and_status(rig: Rig) -> None:
    added = await rig.ami.action("QueueAdd", {"Queue": "support", "Interface": "Local/1004@contactd-agents",
                                              "MemberName": "Agent 1004", "Penalty": 1, "Paused": "false"})
    assert added.response.get("Message") == "Added interface to queue"
    with pytest.raises(AMIActionError, match="Already there"):
        await rig.ami.action("QueueAdd", {"Queue": "support", "Interface": "Local/1004@contactd-agents"})
    await rig.ami.action("QueuePause", {"Queue": "support", "Interface": "Local/1004@contactd-agents",
                                        "Paused": "true", "Reason": "lunch"})
    status = await rig.ami.action("QueueStatus", {"Queue": "support"})
    member = next(e for e in status.events if e.event == "QueueMember" and e.get("Name") == "Agent 1004")
    assert (member.get("Paused"), member.get("PausedReason")) == ("1", "lunch")
    with pytest.raises(AMIActionError, match="Interface not found"):
        await rig.ami.action("QueuePause", {"Queue": "support", "Interface": "Local/9999@x", "Paused": "true"})
    removed = await rig.ami.action("QueueRemove", {"Queue": "support", "Interface": "Local/1004@contactd-agents"})
    assert removed.response.get("Message") == "Removed interface from queue"


async def test_blind_transfer_moves_the_caller_to_another_agent(rig: Rig) -> None:
    await _only_1001_available(rig)
    call = await rig.sim.inbound_call("01012345678", answer_by="1001", talk_seconds=None)
    await rig.wait_event("AgentConnect")
    reply = await rig.ami.action("BlindTransfer", {"Channel": call.agent_channel, "Exten": "1003",
                                                   "Context": "contactd-agents"})
    assert reply.response.get("Message") == "Transfer succeeded"
    xfer = await rig.wait_event("BlindTransfer")
    assert xfer.get("Extension") == "1003" and xfer.get("TransfereeChannel") == call.caller_channel
    await rig.wait_event("BridgeEnter", Channel=call.caller_channel, BridgeNumChannels="2")
    for _ in range(100):
        if call.agent_extension == "1003":
            break
        await asyncio.sleep(0.01)
    assert call.agent_extension == "1003"
    rig.sim.hangup(call.caller_channel)
    await asyncio.wait_for(call.done, 3)
    assert rig.sim.live_channels() == []


async def test_caller_hanging_up_in_the_ivr_never_reaches_the_queue(rig: Rig) -> None:
    call = await rig.sim.inbound_call("01012345678", behaviour=CallerBehaviour(hangup_after=0))
    await asyncio.wait_for(call.done, 3)
    assert "QueueCallerJoin" not in rig.names(call.linkedid)
    assert rig.sim.live_channels() == []


async def test_agent_calls_out_through_the_trunk(rig: Rig) -> None:
    call = await rig.sim.agent_calls("1001", "01012345678", talk_seconds=1)
    await asyncio.wait_for(call.done, 3)
    assert call.direction == "out"
    dial = next(m for m in rig.events if m.event == "DialBegin" and m.get("Channel") == call.caller_channel)
    assert dial.get("DestChannel", "").startswith("PJSIP/trunk-") and dial.get("DestExten") == "01012345678"
    internal = await rig.sim.agent_calls("1001", "1002", talk_seconds=1)
    await asyncio.wait_for(internal.done, 3)
    assert internal.direction == "internal"


async def test_unreachable_fastagi_sends_the_caller_straight_to_the_queue(rig: Rig) -> None:
    await rig.agi.stop(timeout=1.0)
    call = await rig.sim.inbound_call("01012345678", answer_by="1002", talk_seconds=1)
    await asyncio.wait_for(call.done, 3)
    agistatus = [m.get("Value") for m in rig.events if m.event == "VarSet" and m.get("Variable") == "AGISTATUS"]
    assert agistatus == ["FAILURE"]
    assert "AgentConnect" in rig.names(call.linkedid)


async def test_redirect_during_the_ivr_ends_the_agi_and_plays_the_warning(rig: Rig) -> None:
    async def slow_ivr(session) -> None:  # noqa: ANN001 - AGISession
        await session.answer()
        while True:  # a menu that never ends; the HANGUP notice must stop it
            await session.wait_for_digit(100)

    rig.agi.route("inbound", slow_ivr)
    call = await rig.sim.inbound_call("01012345678", behaviour=CallerBehaviour(keys=["1"] * 1000))
    await rig.wait_event("Newexten", Channel=call.caller_channel, Application="AGI")
    await rig.ami.action("Redirect", {"Channel": call.caller_channel, "Context": "contactd-warning",
                                      "Exten": "sexual", "Priority": 1})
    await asyncio.wait_for(call.done, 3)
    assert call.transcript is not None and call.transcript.hung_up
    plays = [m.get("AppData") for m in rig.events
             if m.event == "Newexten" and m.get("Channel") == call.caller_channel and m.get("Application") == "Playback"]
    assert plays == ["contactd/warning-sexual"]
    assert rig.sim.live_channels() == []


async def test_demo_places_varied_calls_until_stopped(rig: Rig) -> None:
    from contactd.simulator.demo import run_demo_calls

    stop = asyncio.Event()
    demo = asyncio.create_task(run_demo_calls(rig.sim, interval=0.05, stop=stop, seed=7))
    await asyncio.sleep(0.4)
    stop.set()
    await asyncio.wait_for(demo, 5)
    inbound = [c for c in rig.sim.calls if c.direction == "in"]
    assert len(inbound) >= 4
    names = {m.get("CallerIDName") for m in rig.events if m.event == "QueueCallerJoin"}
    assert names & {"홍길동", "김태희", "이순신", "유관순", "장보고", "신사임당", "세종대왕", "박지성", "김연아"}
    numbers = {c.caller.caller_num for c in inbound if c.caller is not None}
    assert all(n.startswith("010") and len(n) == 11 for n in numbers)
    await rig.sim.idle(5)
    assert rig.sim.live_channels() == []


async def test_attended_transfer_completes_when_the_transferer_hangs_up(rig: Rig) -> None:
    await _only_1001_available(rig)
    call = await rig.sim.inbound_call("01012345678", answer_by="1001", talk_seconds=None)
    await rig.wait_event("AgentConnect")
    first_agent = call.agent_phone_channel
    reply = await rig.ami.action("Atxfer", {"Channel": call.agent_phone_channel, "Exten": "1002",
                                            "Context": "contactd-agents"})
    assert reply.response.get("Message") == "Atxfer successfully queued"
    await rig.wait_event("Hold", Channel=call.caller_channel)
    target = await rig.wait_event("DialEnd", DialStatus="ANSWER", DestExten="1002")
    assert target.get("DestChannel", "").startswith("PJSIP/1002-")
    await rig.ami.action("Hangup", {"Channel": first_agent})
    xfer = await rig.wait_event("AttendedTransfer")
    assert xfer.get("TransfereeChannel") == call.caller_channel and xfer.get("DestType") == "Bridge"
    await rig.wait_event("BridgeEnter", Channel=call.caller_channel, BridgeNumChannels="2")
    assert call.agent_extension == "1002" and rig.sim.live_channels()
    rig.sim.hangup(call.caller_channel)
    await asyncio.wait_for(call.done, 3)
    assert rig.sim.live_channels() == []


async def test_cancelled_attended_transfer_returns_the_caller(rig: Rig) -> None:
    await _only_1001_available(rig)
    call = await rig.sim.inbound_call("01012345678", answer_by="1001", talk_seconds=None)
    await rig.wait_event("AgentConnect")
    await rig.ami.action("Atxfer", {"Channel": call.agent_channel, "Exten": "1003", "Context": "contactd-agents"})
    await rig.wait_event("Hold", Channel=call.caller_channel)
    await rig.ami.action("CancelAtxfer", {"Channel": call.agent_channel})
    await rig.wait_event("Unhold", Channel=call.caller_channel)
    assert call.agent_extension == "1001"
    assert not [c for c in rig.sim.live_channels() if c.startswith(("PJSIP/1003", "Local/1003"))]
    rig.sim.hangup(call.caller_channel)
    await asyncio.wait_for(call.done, 3)


async def test_redirect_to_hold_plays_music_until_hangup(rig: Rig) -> None:
    call = await rig.sim.inbound_call("01012345678", answer_by="1001", talk_seconds=None)
    await rig.wait_event("AgentConnect")
    await rig.ami.action("Redirect", {"Channel": call.caller_channel, "Context": "contactd-hold", "Exten": "s",
                                      "Priority": 1})
    await rig.wait_event("MusicOnHoldStart", Channel=call.caller_channel, Context="contactd-hold")
    assert rig.sim.live_channels() == [call.caller_channel]
    await rig.ami.action("Hangup", {"Channel": call.caller_channel})
    await asyncio.wait_for(call.done, 3)
    hangup = await rig.wait_event("Hangup", Channel=call.caller_channel)
    assert hangup.get("Cause") == "0"  # Hangup without Cause, as traced
