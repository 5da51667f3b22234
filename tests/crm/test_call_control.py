"""Agent call buttons: each sends the right AMI action with the right fields; each error is the right one."""

from __future__ import annotations

import pytest
from call_sim import rig_fixture, sent, wait_for  # noqa: F401  (rig is a fixture)

from contactd.crm.call_control import (
    CallControlError,
    CallControlService,
    NoLiveCall,
    PBXRefused,
    UnknownExtension,
)


async def answered(rig, number: str = "01012345678", agent: str = "1001"):  # type: ignore[no-untyped-def]
    call = await rig.sim.inbound(number, "고객", agent=agent)
    await wait_for(lambda: (live := rig.tracker.get(call.linkedid)) is not None and live.answered
                   and live.agent_channel, what="answered call")
    return call


async def test_click_to_call_rings_agent_phone_first(rig) -> None:  # type: ignore[no-untyped-def]
    rig.services.config.pbx.shop_caller_id = "0215881234"
    control = CallControlService(rig.services)
    result = await control.click_to_call("1001", "010-2345-6789")
    [o] = sent(rig.server, "Originate")
    assert (o["Channel"], o["Context"], o["Exten"], o["Priority"], o["Async"]) == \
        ("PJSIP/1001", "contactd-click2call", "01023456789", "1", "true")
    assert o["CallerID"] == "<0215881234>"
    assert result.number == "01023456789" and result.action_id == o["ActionID"]
    with pytest.raises(UnknownExtension, match="1 to 4 digits"):
        await control.click_to_call("12345", "01023456789")
    with pytest.raises(UnknownExtension, match="not a registered extension"):
        await control.click_to_call("1999", "01023456789")
    with pytest.raises(CallControlError, match="not a phone number"):
        await control.click_to_call("1001", "call me")
    rig.sim.refuse["originate"] = "Extension does not exist."
    with pytest.raises(PBXRefused) as info:
        await control.click_to_call("1001", "01023456789")
    assert info.value.asterisk_message == "Extension does not exist." and info.value.action == "Originate"


async def test_blind_transfer_sends_transferer_channel(rig) -> None:  # type: ignore[no-untyped-def]
    control = CallControlService(rig.services)
    with pytest.raises(NoLiveCall, match="1001 has no call"):
        await control.blind_transfer("1001", "1002")
    call = await answered(rig)
    agent_channel = call.agent.name
    with pytest.raises(UnknownExtension):
        await control.blind_transfer("1001", "7777")
    result = await control.blind_transfer("1001", "1002")
    [b] = sent(rig.server, "BlindTransfer")
    assert (b["Channel"], b["Context"], b["Exten"]) == (agent_channel, "contactd-agents", "1002")
    assert result.linkedid == call.linkedid
    await wait_for(lambda: rig.tracker.get(call.linkedid).agent_extension == "1002", what="tracker follows")


async def test_attended_transfer_complete_and_cancel(rig) -> None:  # type: ignore[no-untyped-def]
    control = CallControlService(rig.services)
    call = await answered(rig)
    transferer = call.agent.name
    await control.attended_transfer("1001", "1003")
    [a] = sent(rig.server, "Atxfer")
    assert (a["Channel"], a["Context"], a["Exten"]) == (transferer, "contactd-agents", "1003")
    await wait_for(lambda: call.consult is not None, what="consultation leg")
    await control.cancel_transfer("1001")
    [c] = sent(rig.server, "CancelAtxfer")
    assert c["Channel"] == transferer
    with pytest.raises(PBXRefused, match="No active transfer"):
        await control.cancel_transfer("1001")  # nothing to cancel any more: Asterisk's text comes through

    await control.attended_transfer("1001", "1003")
    await wait_for(lambda: call.consult is not None, what="consultation leg")
    await control.complete_transfer("1001")
    hangups = sent(rig.server, "Hangup")
    assert [h["Channel"] for h in hangups] == [transferer]  # the transferer leaving completes it
    await wait_for(lambda: rig.tracker.get(call.linkedid).agent_extension == "1003", what="1003 has the call")


async def test_hold_moves_both_legs_and_unhold_bridges_them(rig) -> None:  # type: ignore[no-untyped-def]
    control = CallControlService(rig.services)
    call = await answered(rig)
    await control.hold("1001")
    [r] = sent(rig.server, "Redirect")
    assert (r["Channel"], r["Context"], r["Exten"], r["Priority"]) == (call.caller.name, "contactd-hold", "s", "1")
    assert (r["ExtraChannel"], r["ExtraContext"], r["ExtraExten"], r["ExtraPriority"]) == \
        (call.agent.name, "contactd-hold", "agent", "1")
    assert control.is_on_hold("1001")
    with pytest.raises(CallControlError, match="already on hold"):
        await control.hold("1001")
    await control.unhold("1001")
    [b] = sent(rig.server, "Bridge")
    assert (b["Channel1"], b["Channel2"]) == (call.agent.name, call.caller.name)
    assert not control.is_on_hold("1001")
    with pytest.raises(CallControlError, match="not on hold"):
        await control.unhold("1001")


async def test_pickup_and_hangup(rig) -> None:  # type: ignore[no-untyped-def]
    control = CallControlService(rig.services)
    with pytest.raises(NoLiveCall, match="no call is ringing at extension 1002"):
        await control.pickup("1001", "1002")
    call = await answered(rig, agent="1002")
    with pytest.raises(NoLiveCall, match="ringing"):  # answered already: nothing to pick up
        await control.pickup("1001", "1002")
    with pytest.raises(NoLiveCall):  # 1001 is not on 1002's call
        await control.hangup("1001")
    await control.hangup("1002")
    assert [h["Channel"] for h in sent(rig.server, "Hangup")] == [call.agent.name]
    await wait_for(lambda: rig.tracker.get(call.linkedid) is None, what="call ended")

    # A call only ringing at 1003 (the phone rings, nobody answered): pickup rings 1001 into the pickup context.
    live = await _ringing_call(rig, "1003")
    await control.pickup("1001", "1003")
    o = sent(rig.server, "Originate")[-1]
    assert (o["Channel"], o["Context"], o["Exten"]) == ("PJSIP/1001", "contactd-pickup", "1003")
    assert live.caller_number in o["CallerID"]


async def _ringing_call(rig, ext: str):  # type: ignore[no-untyped-def]
    caller = rig.sim._new_channel("PJSIP/kt-trunk-ring", None, "from-pstn", "100", 6, "01044443333", "")
    leg = rig.sim._new_channel(f"Local/{ext}@contactd-agents-0000ffff;1", caller.linkedid, "contactd-agents",
                               ext, 0)
    leg.state = 5
    rig.sim._chan_event("Newstate", leg)
    return await wait_for(lambda: rig.tracker.call_for_extension(ext), what="ringing call")


async def test_away_and_online(rig) -> None:  # type: ignore[no-untyped-def]
    control = CallControlService(rig.services)
    with pytest.raises(PBXRefused, match="Interface not found"):  # offline agents are in no queue
        await control.set_away("1001", True, "점심")
    result = await control.set_online("1001", True)
    adds = sent(rig.server, "QueueAdd")
    assert [(a["Queue"], a["Interface"], a["StateInterface"], a["MemberName"]) for a in adds] == [
        ("support", "Local/1001@contactd-agents", "PJSIP/1001", "상담원 1001"),
        ("support-vip", "Local/1001@contactd-agents", "PJSIP/1001", "상담원 1001")]
    assert result.queues == ("support", "support-vip")
    await control.set_online("1001", True)  # pressing 온라인 twice is fine ("Already there")

    events = rig.services.bus.subscribe("agent.*")
    await control.set_away("1001", True, "점심")
    p = sent(rig.server, "QueuePause")[-1]
    assert (p["Interface"], p["Paused"], p["Reason"]) == ("Local/1001@contactd-agents", "true", "점심")
    assert "Queue" not in p  # every queue the member is in
    assert all(rig.sim.members[(q, "Local/1001@contactd-agents")] for q in ("support", "support-vip"))
    assert (await events.get(timeout=2)).payload == {"extension": "1001", "away": True, "reason": "점심"}
    await control.set_away("1001", False)
    assert sent(rig.server, "QueuePause")[-1]["Paused"] == "false"

    await control.set_online("1001", False)
    removes = sent(rig.server, "QueueRemove")
    assert [(r["Queue"], r["Interface"]) for r in removes] == [("support", "Local/1001@contactd-agents"),
                                                               ("support-vip", "Local/1001@contactd-agents")]
    await control.set_online("1001", False)  # already offline: "Not there" is not an error
    with pytest.raises(UnknownExtension):
        await control.set_online("abc", True)


async def test_hold_state_does_not_outlive_a_call_hung_up_on_hold(rig) -> None:  # type: ignore[no-untyped-def]
    control = CallControlService(rig.services)
    first = await answered(rig)
    await control.hold("1001")
    rig.sim.hangup(first)  # the customer gives up while listening to the hold music
    await wait_for(lambda: rig.tracker.get(first.linkedid) is None, what="call ended")
    second = await answered(rig)
    await control.hold("1001")  # a new call on the same phone holds normally
    assert control.is_on_hold("1001") and list(control._held) == [second.linkedid]
