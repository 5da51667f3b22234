"""PBX actions against a simulated AMI server answering exactly like Asterisk 22 did (ami-actions-misc.txt)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from contactd.config import PBXConfig
from contactd.simulator.ami_server import SimulatedAMIServer, error, list_reply, success
from contactd.telephony.ami import AMIClient
from contactd.telephony.pbx import PBX, ChannelNotFound, PBXError

CHAN_A = "Local/1009@agent-phones-00000001;1"
CHAN_B = "Local/1002@agent-phones-00000002;1"

# CoreShowChannel items as Asterisk sent them for ami-003 (two of the four).
CORE_SHOW = [
    [("Event", "CoreShowChannel"), ("Channel", "Local/1009@agent-phones-00000001;2"), ("ChannelState", "6"), ("ChannelStateDesc", "Up"),
     ("CallerIDNum", "5550000"), ("CallerIDName", "Lab"), ("ConnectedLineNum", "5550000"),
     ("ConnectedLineName", "Lab"), ("Language", "en"), ("AccountCode", ""), ("Context", "agent-phones"),
     ("Exten", "1009"), ("Priority", "2"), ("Uniqueid", "1795385901.3"), ("Linkedid", "1795385901.2"),
     ("Application", "MusicOnHold"), ("ApplicationData", "default,60"), ("Duration", "00:00:02"),
     ("BridgeId", "")],
    [("Event", "CoreShowChannel"), ("Channel", CHAN_A), ("ChannelState", "6"), ("ChannelStateDesc", "Up"), ("CallerIDNum", "5550000"),
     ("CallerIDName", "Lab"), ("ConnectedLineNum", "5550000"), ("ConnectedLineName", "Lab"), ("Language", "en"),
     ("AccountCode", ""), ("Context", "agent-phones"), ("Exten", "1009"), ("Priority", "1"),
     ("Uniqueid", "1795385901.2"), ("Linkedid", "1795385901.2"), ("Application", "Wait"),
     ("ApplicationData", "120"), ("Duration", "00:01:02"), ("BridgeId", "")],
]


def _live(channel: str | None) -> bool:
    return channel in (CHAN_A, CHAN_B)


def trace_handlers(server: SimulatedAMIServer) -> None:
    """Answers copied from ami-actions-misc.txt / ami-blind-and-attended-transfer.txt."""
    db: dict[tuple[str, str], str] = {}
    mixmon: set[str] = set()

    def originate(a: Any) -> Any:
        if not a.message.get("Channel"):
            return error("Channel not specified")
        reply = success("Originate successfully queued")
        reply.events_after = [[
            ("Event", "OriginateResponse"), ("Privilege", "call,all"), ("ActionID", a.action_id or ""),
            ("Response", "Success"), ("Channel", "Local/200@from-pstn-00000003;1"), ("Application", "Wait"),
            ("Data", "8"), ("Reason", "4"), ("Uniqueid", "1795385933.7"), ("CallerIDNum", "01012345678"),
            ("CallerIDName", "김태희"),
        ]]
        return reply

    def redirect(a: Any) -> Any:
        if not a.message.get("Context"):
            return error("Context not specified")
        if not _live(a.message.get("Channel")):
            return error(f"Channel does not exist: {a.message.get('Channel')}")
        return success("Redirect successful")

    def hangup(a: Any) -> Any:
        if not a.message.get("Channel"):
            return error("No channel specified")
        return success("Channel Hungup") if _live(a.message.get("Channel")) else error("No such channel")

    def getvar(a: Any) -> Any:
        if not a.message.get("Variable"):
            return error("No variable specified")
        channel = a.message.get("Channel")
        if channel is not None and not _live(channel):
            return error("No such channel")
        values = {"CHANNEL(state)": "Up", "CONTACTD_GLOBAL": "on"}
        return success(None, Variable=a.message["Variable"], Value=values.get(a.message["Variable"], ""))

    def db_put(a: Any) -> Any:
        db[(a.message["Family"], a.message["Key"])] = a.message["Val"]
        return success("Updated database successfully")

    def db_get(a: Any) -> Any:
        key = (a.message["Family"], a.message["Key"])
        if key not in db:
            return error("Database entry not found")
        return list_reply("DBGetComplete", [[("Event", "DBGetResponse"), ("Family", key[0]), ("Key", key[1]),
                                             ("Val", db[key])]], message="Result will follow")

    def db_gettree(a: Any) -> Any:
        # Shaped like ami-actions-misc.txt's DBGetTree: Key carries the /family/ prefix.
        family = a.message["Family"]
        items = [[("Event", "DBGetTreeResponse"), ("Key", f"/{f}/{k}"), ("Val", v)] for (f, k), v in db.items()
                 if f == family]
        if not items:
            return error("Database entry not found")
        return list_reply("DBGetTreeComplete", items, message="Result will follow")

    def db_del(a: Any) -> Any:
        if db.pop((a.message["Family"], a.message["Key"]), None) is None:
            return error("Database entry not found")
        return success("Key deleted successfully")

    def mixmonitor(a: Any) -> Any:
        if not a.message.get("Channel"):
            return error("No channel specified")
        mixmon.add(a.message["Channel"])
        return success()

    def stop_mixmonitor(a: Any) -> Any:
        if a.message.get("Channel") not in mixmon:
            return error("Could not stop monitoring channel")
        mixmon.discard(a.message["Channel"])
        return success()

    def queue_add(a: Any) -> Any:
        return success("Added interface to queue")

    def queue_pause(a: Any) -> Any:
        if a.message.get("Interface") != "Local/1002@agent-phones":
            return error("Interface not found")
        paused = a.message.get("Paused") == "true"
        return success("Interface paused successfully" if paused else "Interface unpaused successfully")

    handlers = {
        "Originate": originate, "Redirect": redirect, "Hangup": hangup, "Getvar": getvar,
        "Setvar": lambda a: success("Variable Set"), "DBPut": db_put, "DBGet": db_get, "DBDel": db_del,
        "DBGetTree": db_gettree,
        "MixMonitor": mixmonitor, "StopMixMonitor": stop_mixmonitor, "QueueAdd": queue_add,
        "QueuePause": queue_pause, "QueueRemove": lambda a: success("Removed interface from queue"),
        "BlindTransfer": lambda a: success("Transfer succeeded"),
        "Atxfer": lambda a: success("Atxfer successfully queued"),
        "Bridge": lambda a: success("Channels have been bridged") if _live(a.message.get("Channel1"))
        and _live(a.message.get("Channel2")) else error(f"Channel1 does not exist: {a.message.get('Channel1')}"),
        "CoreShowChannels": lambda a: list_reply("CoreShowChannelsComplete", CORE_SHOW,
                                                 message="Channels will follow"),
        "Status": lambda a: error("No such channel") if not _live(a.message.get("Channel")) else list_reply(
            "StatusComplete", [[("Event", "Status"), ("Channel", a.message["Channel"]), ("ChannelState", "6"),
                                ("ChannelStateDesc", "Up"), ("Uniqueid", "1795385901.2"),
                                ("Linkedid", "1795385901.2"), ("Application", "Wait"), ("Data", "120"),
                                ("Seconds", "3"), ("BridgeID", "")]],
            message="Channel status will follow", Items=1),
    }
    for name, handler in handlers.items():
        server.register_action(name, handler)


@pytest.fixture
async def pbx() -> AsyncIterator[tuple[PBX, SimulatedAMIServer]]:
    server = SimulatedAMIServer(username="contactd", secret="labsecret")
    trace_handlers(server)
    await server.start()
    client = AMIClient("127.0.0.1", server.port, "contactd", "labsecret", ping_interval=30)
    await client.start()
    await client.wait_connected(5)
    pbx = PBX(client, PBXConfig())
    yield pbx, server
    pbx.close()
    await client.close()
    await server.stop()


def sent(server: SimulatedAMIServer, action: str) -> list[tuple[str, str]]:
    msg = [m for m in server.received if (m.get("Action") or "").lower() == action.lower()][-1]
    return [(k, v) for k, v in msg.headers if k not in ("Action", "ActionID")]


async def test_originate_async_and_wait_for_originate_response(pbx):
    p, server = pbx
    result = await p.originate("Local/200@from-pstn", application="Wait", data="8",
                               caller_id='"김태희" <01012345678>', variables={"DIGITS": "1#", "DIGITS2": "5"},
                               wait=True, wait_timeout=5)
    assert result.answered and result.reason == 4 and result.reason_text == "answered"
    assert (result.channel, result.uniqueid) == ("Local/200@from-pstn-00000003;1", "1795385933.7")
    fields = sent(server, "Originate")
    assert ("Variable", "DIGITS=1#") in fields and ("Variable", "DIGITS2=5") in fields
    assert ("CallerID", '"김태희" <01012345678>') in fields and ("Async", "true") in fields
    quick = await p.originate("Local/100@from-pstn", context="caller-sim", exten="s")
    assert quick.action_id and quick.response is None
    assert ("Context", "caller-sim") in sent(server, "Originate")


async def test_click_to_call_rings_the_agent_then_dials_the_number(pbx):
    p, server = pbx
    await p.click_to_call("1001", "010-1234-5678")
    fields = dict(sent(server, "Originate"))
    assert fields["Channel"] == "PJSIP/1001"
    assert (fields["Context"], fields["Exten"], fields["Priority"]) == ("contactd-click2call", "01012345678", "1")


async def test_errors_carry_asterisks_message_and_gone_channels_are_typed(pbx):
    p, server = pbx
    with pytest.raises(ChannelNotFound, match="No such channel"):
        await p.hangup("Local/1009@agent-phones-00000001;9")
    with pytest.raises(ChannelNotFound, match="Channel does not exist: SIP/none-00000001"):
        await p.redirect("SIP/none-00000001", "warning", "abuse")
    with pytest.raises(PBXError, match="Could not stop monitoring channel") as exc:
        await p.mixmonitor_stop(CHAN_A)
    assert not isinstance(exc.value, ChannelNotFound) and exc.value.action == "StopMixMonitor"
    with pytest.raises(PBXError, match="Interface not found"):
        await p.queue_pause("Local/9999@agent-phones", True, queue="support")
    with pytest.raises(ChannelNotFound):
        await p.status("Local/nope-00000000;1")


async def test_channel_actions_send_asterisks_field_names(pbx):
    p, server = pbx
    await p.hangup(CHAN_B, cause=16)
    assert sent(server, "Hangup") == [("Channel", CHAN_B), ("Cause", "16")]
    await p.hangup(CHAN_A)
    assert sent(server, "Hangup") == [("Channel", CHAN_A)]
    await p.redirect(CHAN_B, "contactd-warning", "abuse", extra_channel=CHAN_A)
    assert sent(server, "Redirect") == [
        ("Channel", CHAN_B), ("Context", "contactd-warning"), ("Exten", "abuse"), ("Priority", "1"),
        ("ExtraChannel", CHAN_A), ("ExtraContext", "contactd-warning"), ("ExtraExten", "abuse"),
        ("ExtraPriority", "1")]
    await p.blind_transfer(CHAN_A, "1003", "agent-phones")
    assert sent(server, "BlindTransfer") == [("Channel", CHAN_A), ("Exten", "1003"), ("Context", "agent-phones")]
    await p.attended_transfer(CHAN_A, "1003")
    assert sent(server, "Atxfer") == [("Channel", CHAN_A), ("Exten", "1003"), ("Context", "contactd-agents")]
    await p.mixmonitor_start(CHAN_A, "/var/spool/asterisk/monitor/ami-mixmon-test.wav")
    assert sent(server, "MixMonitor") == [("Channel", CHAN_A),
                                          ("File", "/var/spool/asterisk/monitor/ami-mixmon-test.wav"),
                                          ("Options", "")]
    await p.mixmonitor_stop(CHAN_A)
    await p.bridge(CHAN_A, CHAN_B)
    assert sent(server, "Bridge") == [("Channel1", CHAN_A), ("Channel2", CHAN_B), ("Tone", "no")]
    with pytest.raises(ChannelNotFound):
        await p.bridge("Local/gone-00000009;1", CHAN_B)


async def test_queue_actions(pbx):
    p, server = pbx
    await p.queue_add("support", "Local/1002@agent-phones", member_name="Agent 1002", penalty=1)
    assert sent(server, "QueueAdd") == [("Queue", "support"), ("Interface", "Local/1002@agent-phones"),
                                        ("MemberName", "Agent 1002"), ("Paused", "false"), ("Penalty", "1")]
    await p.queue_pause("Local/1002@agent-phones", True, queue="support", reason="lunch")
    assert sent(server, "QueuePause") == [("Interface", "Local/1002@agent-phones"), ("Paused", "true"),
                                          ("Queue", "support"), ("Reason", "lunch")]
    await p.queue_pause("Local/1002@agent-phones", False)
    assert sent(server, "QueuePause") == [("Interface", "Local/1002@agent-phones"), ("Paused", "false")]
    await p.queue_remove("support", "Local/1002@agent-phones")
    assert sent(server, "QueueRemove") == [("Queue", "support"), ("Interface", "Local/1002@agent-phones")]


async def test_astdb_and_variables(pbx):
    p, server = pbx
    await p.db_put("contactd", "agent1001", "ready")
    assert sent(server, "DBPut") == [("Family", "contactd"), ("Key", "agent1001"), ("Val", "ready")]
    assert await p.db_get("contactd", "agent1001") == "ready"
    assert await p.db_get("contactd", "nosuchkey") is None
    assert await p.db_gettree("contactd") == {"agent1001": "ready"}
    assert await p.db_gettree("emptyfamily") == {}
    assert await p.db_del("contactd", "agent1001") is True
    assert await p.db_del("contactd", "agent1001") is False
    assert await p.getvar("CHANNEL(state)", CHAN_A) == "Up"
    assert await p.getvar("NOT_SET_ANYWHERE", CHAN_A) == ""
    assert await p.getvar("CONTACTD_GLOBAL") == "on"
    with pytest.raises(ChannelNotFound):
        await p.getvar("X", "Local/nope-00000000;1")
    await p.setvar("CONTACTD_TAG", "abc 123", CHAN_A)
    assert sent(server, "Setvar") == [("Channel", CHAN_A), ("Variable", "CONTACTD_TAG"), ("Value", "abc 123")]


async def test_channel_lists_are_typed(pbx):
    p, _ = pbx
    channels = await p.channels()
    assert [c.channel for c in channels] == ["Local/1009@agent-phones-00000001;2", CHAN_A]
    first = channels[1]
    assert (first.uniqueid, first.linkedid, first.state, first.application) == (
        "1795385901.2", "1795385901.2", 6, "Wait")
    assert first.duration_seconds == 62
    [status] = await p.status(CHAN_A)
    assert (status.channel, status.seconds, status.state_desc) == (CHAN_A, 3, "Up")
    settings = await p.core_settings()
    assert settings.asterisk_version == "22.10.1"


async def test_originate_wait_times_out_when_no_response_event(pbx):
    p, server = pbx
    server.register_action("Originate", lambda a: success("Originate successfully queued"))
    with pytest.raises(asyncio.TimeoutError):
        await p.originate("Local/100@from-pstn", context="caller-sim", exten="s", wait=True, wait_timeout=0.2)
    assert p._originate_waiters == {}
