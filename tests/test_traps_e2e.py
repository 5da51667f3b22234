"""Known contact-center traps, end to end: the whole daemon against the simulated Asterisk over real sockets.

Each test reproduces something an operator would hit (a wrong leg hung up, a lost or doubled CDR, ...).
The rig is the one of test_issue3_e2e.py (imported, not copied).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from test_issue3_e2e import TIME_SCALE, finished, make_rig  # noqa: F401 - make_rig is a fixture

from contactd.simulator.agi_caller import CallerBehaviour
from contactd.store.models import Call


async def test_second_blind_transfer_by_the_target_moves_the_customer_not_the_agent(
        make_rig: Callable[..., Any]) -> None:  # noqa: F811
    """1001 blind-transfers to 1002, then 1002 transfers on to 1003: the second BlindTransfer must name 1002's
    leg (Asterisk transfers the *peer* of the named channel; naming the customer would send 1002 to 1003)."""
    rig = await make_rig()
    call = await rig.sim.inbound_call("01012345678", "", behaviour=CallerBehaviour(keys=["1"]), answer_by="1001",
                                      talk_seconds=6.0)
    await rig.live("1001")
    await rig.services.call_control.blind_transfer("1001", "1002")
    live = await rig.live("1002")
    assert live.agent_channel != call.caller_channel
    await rig.services.call_control.blind_transfer("1002", "1003")
    first, second = rig.actions_named("BlindTransfer")
    assert first["Channel"] != call.caller_channel
    assert second["Channel"] != call.caller_channel
    assert "1002" in second["Channel"]
    await finished(call)
    row = await rig.cdr(call.linkedid)
    assert (row.transferred, row.agent_extension, row.disposition) == (True, "1003", "ANSWERED")
    assert len(await rig.rows(Call)) == 1


async def test_harassment_after_blind_transfer_never_hangs_up_the_warned_caller(
        make_rig: Callable[..., Any]) -> None:  # noqa: F811
    """The agent who got the call by blind transfer presses the harassment button: the caller is sent to the
    warning and only the agent's own leg may be hung up."""
    rig = await make_rig()
    rig.services.harassment.agent_release_timeout = 0.2
    call = await rig.sim.inbound_call("01012345678", "진상", behaviour=CallerBehaviour(keys=["1"]),
                                      answer_by="1001", talk_seconds=None)
    await rig.live("1001")
    await rig.services.call_control.blind_transfer("1001", "1002")
    live = await rig.live("1002")
    await rig.services.harassment.warn_and_hangup(live.linkedid, "abuse", None, "1002")
    await finished(call)
    assert all(h.get("Channel") != call.caller_channel for h in rig.actions_named("Hangup"))
    assert call.outcome == "warned"
    await asyncio.sleep(0)


async def test_caller_abandoning_while_three_phones_ring_is_one_abandoned_cdr(
        make_rig: Callable[..., Any]) -> None:  # noqa: F811
    rig = await make_rig()
    sub = rig.services.bus.subscribe("call.*")
    call = await rig.sim.inbound_call("01012345678", "", behaviour=CallerBehaviour(keys=["1"]), answer_by=None,
                                      ring_seconds=3.0)
    await finished(call)
    row = await rig.cdr(call.linkedid)
    assert (row.abandoned, row.disposition, row.agent_extension, row.recording_path) == \
        (True, "NO ANSWER", None, None)
    assert row.wait_seconds is not None  # the simulator sends no Timestamp: real (scaled) seconds, so ~0 here
    assert len(await rig.rows(Call)) == 1
    topics = []
    while (event := sub.get_nowait()) is not None:
        topics.append((event.topic, event.payload.get("extension")))
    assert sorted(e for t, e in topics if t == "call.ringing") == ["1001", "1002", "1003"]
    assert not [t for t, _ in topics if t == "call.answered"]
    assert not rig.actions_named("MixMonitor")


async def test_stop_with_a_live_call_returns_promptly_and_leaves_no_task_behind(
        make_rig: Callable[..., Any]) -> None:  # noqa: F811
    rig = await make_rig()
    call = await rig.sim.inbound_call("01012345678", "", behaviour=CallerBehaviour(keys=["1"]), answer_by="1001",
                                      talk_seconds=None)
    await rig.live("1001")
    before = {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}
    async with asyncio.timeout(15):
        await rig.daemon.stop()
    assert call.done.done()
    leftover = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    assert not [t for t in leftover if t in before], [t.get_name() for t in leftover]


async def test_click_to_call_records_the_customer_leg_that_outlives_a_transfer(
        make_rig: Callable[..., Any]) -> None:  # noqa: F811
    """On an outbound call the agent's phone is the originating channel. A recording hooked there stops as soon
    as the agent transfers the customer (the agent's channel hangs up); the customer's leg lives to the end."""
    rig = await make_rig()
    rig.sim.default_talk_seconds = 2.0
    await rig.services.call_control.click_to_call("1001", "010-7777-8888")
    call = await rig.until(lambda: next((c for c in rig.sim.calls if c.direction == "out"), None))
    await finished(call)
    row = await rig.cdr(call.linkedid, recording=True)
    [mixmonitor] = rig.actions_named("MixMonitor")
    assert mixmonitor["Channel"].startswith("PJSIP/trunk-"), mixmonitor["Channel"]
    assert row.recording_status == "ready"
