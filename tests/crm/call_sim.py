"""A small scripted Asterisk for the recording / harassment / call-control tests.

It sits on the real SimulatedAMIServer (real sockets) and answers the actions these services send with the
texts Asterisk 22 used in asterisk-traces/ (ami-actions-misc.txt, ami-queue-and-actions.txt,
ami-blind-and-attended-transfer.txt), emitting channel events shaped like those traces so the real
CallTracker folds them. MixMonitor writes a real 8 kHz 16-bit mono WAV whose audio grows with `talk()`
(virtual time: no test waits for real seconds).

It stands in until contactd/simulator/pbx.py (SimulatedPBX) exists; only what these tests need is modelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from contactd.config import Config
from contactd.services import Services
from contactd.simulator.ami_server import SimulatedAMIServer, error, list_reply, success
from contactd.store.models import Call, Extension, User
from contactd.telephony.ami import AMIClient
from contactd.telephony.calls import CallTracker
from contactd.telephony.pbx import PBX

BYTES_PER_SECOND = 16000  # 8000 Hz * 16-bit * mono, as mixmonitor-recording-info.txt


def wav_header(data_bytes: int) -> bytes:
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVEfmt " +
            struct.pack("<IHHIIHH", 16, 1, 1, 8000, BYTES_PER_SECOND, 2, 16) +
            b"data" + struct.pack("<I", data_bytes))


def tone(seconds: float) -> bytes:
    samples = int(8000 * seconds)
    return b"".join(struct.pack("<h", int(6000 * math.sin(2 * math.pi * 440 * i / 8000))) for i in range(samples))


@dataclass
class Chan:
    name: str
    uniqueid: str
    linkedid: str
    context: str
    exten: str
    caller_number: str = ""
    caller_name: str = ""
    state: int = 0


@dataclass
class Recording:
    path: Path
    data: int = 0


@dataclass
class SimCall:
    linkedid: str
    caller: Chan
    agent: Chan | None = None
    consult: Chan | None = None  # attended transfer target while consulting
    ended: bool = False
    audio: bool = True  # False: no audio frames ever reach the recording (header-only file)


class MiniPBX:
    def __init__(self, server: SimulatedAMIServer, config: Config) -> None:
        self.server = server
        self.config = config
        self.channels: dict[str, Chan] = {}
        self.calls: dict[str, SimCall] = {}
        self.recordings: dict[str, Recording] = {}  # channel -> running MixMonitor
        self.members: dict[tuple[str, str], bool] = {}  # (queue, interface) -> paused
        self.refuse: dict[str, str] = {}  # action name (lower) -> Asterisk error text to answer
        self.redirect_clears_agent = True  # what the trace shows; False models a PBX that leaves it up
        self._ids = itertools.count(1)
        self._epoch = 1795383478
        self._tasks: set[asyncio.Task[Any]] = set()
        for name, handler in {
            "CoreShowChannels": self._core_show_channels, "MixMonitor": self._mixmonitor,
            "StopMixMonitor": self._stop_mixmonitor, "Redirect": self._redirect, "Hangup": self._hangup,
            "BlindTransfer": self._blind_transfer, "Atxfer": self._atxfer, "CancelAtxfer": self._cancel_atxfer,
            "Originate": self._originate, "QueueAdd": self._queue_add, "QueueRemove": self._queue_remove,
            "QueuePause": self._queue_pause, "Bridge": self._bridge,
        }.items():
            self.server.register_action(name, self._guard(name, handler))

    def _guard(self, name: str, handler: Any) -> Any:
        def run(action: Any) -> Any:
            text = self.refuse.get(name.lower())
            if text:
                return error(text)
            return handler(action)
        return run

    # ------------------------------------------------------------------------------------------- events

    def _uid(self) -> str:
        return f"{self._epoch}.{next(self._ids)}"

    def _chan_event(self, event: str, ch: Chan, **extra: object) -> None:
        self.server.emit([("Event", event), ("Channel", ch.name), ("ChannelState", str(ch.state)),
                          ("ChannelStateDesc", {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}.get(ch.state, "")),
                          ("CallerIDNum", ch.caller_number or "<unknown>"),
                          ("CallerIDName", ch.caller_name or "<unknown>"),
                          ("ConnectedLineNum", "<unknown>"), ("ConnectedLineName", "<unknown>"),
                          ("Language", "en"), ("AccountCode", ""), ("Context", ch.context), ("Exten", ch.exten),
                          ("Priority", "1"), ("Uniqueid", ch.uniqueid), ("Linkedid", ch.linkedid),
                          *[(k, str(v)) for k, v in extra.items()]])

    def _new_channel(self, name: str, linkedid: str | None, context: str, exten: str, state: int,
                     number: str = "", cname: str = "") -> Chan:
        uid = self._uid()
        ch = Chan(name, uid, linkedid or uid, context, exten, number, cname, state)
        self.channels[name] = ch
        self._chan_event("Newchannel", ch)
        return ch

    def _agent_leg(self, call: SimCall, ext: str) -> Chan:
        n = next(self._ids)
        ch = self._new_channel(f"Local/{ext}@{self.config.pbx.agent_context}-{n:08x};1", call.linkedid,
                               self.config.pbx.agent_context, ext, 0, call.caller.caller_number,
                               call.caller.caller_name)
        ch.state = 5
        self._chan_event("Newstate", ch)
        ch.state = 6
        self._chan_event("Newstate", ch)
        return ch

    def _hangup_chan(self, ch: Chan, cause: int = 16) -> None:
        if self.channels.pop(ch.name, None) is None:
            return
        rec = self.recordings.pop(ch.name, None)
        if rec is not None:
            self._close_recording(rec)
            self._chan_event("MixMonitorStop", ch)
        self._chan_event("Hangup", ch, Cause=cause, **{"Cause-txt": "Normal Clearing"})

    def _end_call(self, call: SimCall) -> None:
        for ch in (call.consult, call.agent, call.caller):
            if ch is not None:
                self._hangup_chan(ch)
        call.ended = True

    def _close_recording(self, rec: Recording) -> None:
        with rec.path.open("r+b") as fh:
            fh.write(wav_header(rec.data))

    def _later(self, delay: float, fn: Any) -> None:
        async def run() -> None:
            await asyncio.sleep(delay)
            fn()
        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------------------------------- scenarios

    async def inbound(self, number: str, name: str = "", agent: str | None = "1001", *,
                      audio: bool = True) -> SimCall:
        n = next(self._ids)
        caller = self._new_channel(f"PJSIP/kt-trunk-{n:08x}", None, "from-pstn", "100", 4, number, name)
        caller.state = 6
        self._chan_event("Newstate", caller)
        call = SimCall(caller.linkedid, caller, audio=audio)
        self.calls[call.linkedid] = call
        if agent:
            call.agent = self._agent_leg(call, agent)
        return call

    def talk(self, call: SimCall, seconds: float) -> None:
        """`seconds` of conversation reach every running recording of the call's channels."""
        if not call.audio:
            return
        chunk = tone(seconds)
        for ch in (call.caller, call.agent):
            rec = self.recordings.get(ch.name) if ch else None
            if rec is not None:
                with rec.path.open("ab") as fh:
                    fh.write(chunk)
                rec.data += len(chunk)

    def hangup(self, call: SimCall) -> None:
        self._end_call(call)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _call_of(self, channel: str) -> SimCall | None:
        ch = self.channels.get(channel)
        return self.calls.get(ch.linkedid) if ch else None

    # ------------------------------------------------------------------------------------------- actions

    def _core_show_channels(self, action: Any) -> Any:
        return list_reply("CoreShowChannelsComplete", [], message="Channels will follow")

    def _mixmonitor(self, action: Any) -> Any:
        name = action.message.get("Channel") or ""
        ch = self.channels.get(name)
        if ch is None:
            return error("No such channel")
        path = Path(action.message.get("File") or "")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(wav_header(0))
        self.recordings[name] = Recording(path)
        self._chan_event("VarSet", ch, Variable="MIXMONITOR_FILENAME", Value=str(path))
        self._chan_event("MixMonitorStart", ch)
        return success()

    def _stop_mixmonitor(self, action: Any) -> Any:
        name = action.message.get("Channel") or ""
        rec = self.recordings.pop(name, None)
        if rec is None:
            return error("Could not stop monitoring channel")
        self._close_recording(rec)
        self._chan_event("MixMonitorStop", self.channels[name])
        return success()

    def _redirect(self, action: Any) -> Any:
        msg = action.message
        name = msg.get("Channel") or ""
        ch = self.channels.get(name)
        if ch is None:
            return error(f"Channel does not exist: {name}")
        call = self.calls.get(ch.linkedid)
        context, exten = msg.get("Context") or "", msg.get("Exten") or ""
        ch.context, ch.exten = context, exten
        self._chan_event("Newexten", ch, Extension=exten, Application="Playback", AppData=f"contactd/warning-{exten}")
        extra = msg.get("ExtraChannel")
        if extra and extra in self.channels:
            other = self.channels[extra]
            other.context, other.exten = msg.get("ExtraContext") or context, msg.get("ExtraExten") or exten
            self._chan_event("Newexten", other, Extension=other.exten, Application="Wait", AppData="3600")
        elif call is not None and call.agent is not None and self.redirect_clears_agent and not extra:
            # ami-queue-and-actions.txt: the caller leaves the bridge and Asterisk clears the agent's leg.
            agent = call.agent
            self._later(0.01, lambda: self._hangup_chan(agent))
        if call is not None and context == self.config.pbx.warning_context:
            def warning_played() -> None:
                self.talk(call, 1.0)  # the warning message goes into the recording too
                self._end_call(call)
            self._later(0.05, warning_played)
        return success("Redirect successful")

    def _hangup(self, action: Any) -> Any:
        name = action.message.get("Channel") or ""
        ch = self.channels.get(name)
        if ch is None:
            return error("No such channel")
        call = self.calls.get(ch.linkedid)
        if call is not None and call.consult is not None and call.agent is ch:
            # ami-blind-and-attended-transfer.txt: the transferer hanging up completes the attended transfer.
            target = call.consult
            self._hangup_chan(ch)
            self._chan_event("AttendedTransfer", target, Result="Success", OrigTransfererChannel=ch.name,
                             OrigTransfererUniqueid=ch.uniqueid, OrigTransfererLinkedid=ch.linkedid,
                             TransfereeChannel=call.caller.name, TransfereeUniqueid=call.caller.uniqueid,
                             TransferTargetChannel=target.name, TransferTargetUniqueid=target.uniqueid,
                             DestType="Bridge", IsExternal="No")
            call.agent, call.consult = target, None
        elif call is not None and ch in (call.agent, call.caller):
            self._later(0.01, lambda: self._end_call(call))  # a two-party bridge ends with either side
        else:
            self._hangup_chan(ch)
        return success("Channel Hungup")

    def _blind_transfer(self, action: Any) -> Any:
        msg = action.message
        name = msg.get("Channel") or ""
        call = self._call_of(name)
        if call is None or call.agent is None:
            return error("No such channel")
        transferer = call.agent
        context, exten = msg.get("Context") or "", msg.get("Exten") or ""
        self._chan_event("BlindTransfer", transferer, Result="Success", TransfererChannel=transferer.name,
                         TransfererUniqueid=transferer.uniqueid, TransfererLinkedid=transferer.linkedid,
                         TransfereeChannel=call.caller.name, TransfereeUniqueid=call.caller.uniqueid,
                         TransfereeLinkedid=call.linkedid, IsExternal="Yes", Context=context, Extension=exten)

        def move() -> None:
            self._hangup_chan(transferer)
            call.agent = self._agent_leg(call, exten)
        self._later(0.01, move)
        return success("Transfer succeeded")

    def _atxfer(self, action: Any) -> Any:
        msg = action.message
        call = self._call_of(msg.get("Channel") or "")
        if call is None:
            return error("No such channel")
        exten = msg.get("Exten") or ""

        def consult() -> None:
            call.consult = self._agent_leg(call, exten)
        self._later(0.01, consult)
        return success("Atxfer successfully queued")

    def _cancel_atxfer(self, action: Any) -> Any:
        call = self._call_of(action.message.get("Channel") or "")
        if call is None:
            return error("No such channel")
        if call.consult is None:
            return error("No active transfer")
        self._hangup_chan(call.consult)
        call.consult = None
        return success("CancelAtxfer successfully queued")

    def _originate(self, action: Any) -> Any:
        if not action.message.get("Channel"):
            return error("Channel not specified")
        return success("Originate successfully queued")

    def _queue_add(self, action: Any) -> Any:
        key = (action.message.get("Queue") or "", action.message.get("Interface") or "")
        if key in self.members:
            return error("Unable to add interface: Already there")
        self.members[key] = (action.message.get("Paused") or "").lower() == "true"
        return success("Added interface to queue")

    def _queue_remove(self, action: Any) -> Any:
        key = (action.message.get("Queue") or "", action.message.get("Interface") or "")
        if self.members.pop(key, None) is None:
            return error("Unable to remove interface: Not there")
        return success("Removed interface from queue")

    def _queue_pause(self, action: Any) -> Any:
        interface = action.message.get("Interface") or ""
        queue = action.message.get("Queue")
        keys = [k for k in self.members if k[1] == interface and (queue is None or k[0] == queue)]
        if not keys:
            return error("Interface not found")
        paused = (action.message.get("Paused") or "").lower() == "true"
        for key in keys:
            self.members[key] = paused
        return success("Interface paused successfully" if paused else "Interface unpaused successfully")

    def _bridge(self, action: Any) -> Any:
        for key in ("Channel1", "Channel2"):
            name = action.message.get(key) or ""
            if name not in self.channels:
                return error(f"Channel {key[-1]} does not exist: {name}")
        return success("Channels have been bridged")


def sent(server: SimulatedAMIServer, name: str) -> list[dict[str, str]]:
    """Every action `name` the server received, as dicts (first value of each header)."""
    return [m.as_dict() for m in server.received if (m.get("Action") or "").lower() == name.lower()]


async def wait_for(predicate: Any, timeout: float = 5.0, what: str = "condition") -> Any:
    """Poll an async or sync predicate until it returns something truthy (bounded)."""
    async with asyncio.timeout(timeout):
        while True:
            value = predicate()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
            await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")  # pragma: no cover


async def call_row(services: Services, linkedid: str) -> Call | None:
    async with services.db.session() as session:
        from sqlalchemy import select
        return await session.scalar(select(Call).where(Call.linkedid == linkedid))


@dataclass
class Rig:
    services: Services
    server: SimulatedAMIServer
    sim: MiniPBX
    tracker: CallTracker
    recdir: Path
    users: dict[str, User] = field(default_factory=dict)


async def add_agents(services: Services, *exts: str) -> dict[str, User]:
    users: dict[str, User] = {}
    async with services.db.transaction() as session:
        for ext in exts:
            session.add(Extension(number=ext, label=f"상담원 {ext}"))
            await session.flush()
            user = User(username=f"agent{ext}", display_name=f"상담원 {ext}", password_hash="x", role="agent",
                        extension=ext)
            session.add(user)
            users[ext] = user
    return users


@contextlib.asynccontextmanager
async def make_rig(db: Any, bus: Any, tmp_path: Path, *, auto_blacklist_after: int = 0) -> AsyncIterator[Rig]:
    config = Config()
    config.recordings.dir = str(tmp_path / "recordings")
    config.incidents.auto_blacklist_after = auto_blacklist_after
    server = SimulatedAMIServer(username="contactd", secret="s3cret")
    await server.start()
    sim = MiniPBX(server, config)
    ami = AMIClient("127.0.0.1", server.port, "contactd", "s3cret", action_timeout=5.0)
    await ami.start()
    await ami.wait_connected(5.0)
    pbx = PBX(ami, config.pbx)
    tracker = CallTracker(ami, bus, db, config.pbx)
    await tracker.start()
    services = Services(config=config, db=db, bus=bus, ami=ami, pbx=pbx, tracker=tracker)
    users = await add_agents(services, "1001", "1002", "1003")
    recdir = await asyncio.to_thread(Path(config.recordings.dir).resolve)
    rig = Rig(services, server, sim, tracker, recdir, users)
    try:
        yield rig
    finally:
        for name in ("recordings", "harassment"):
            svc = getattr(services, name)
            if svc is not None:
                await svc.stop()
        await tracker.stop()
        await sim.close()
        await ami.close()
        await server.stop()


@pytest.fixture(name="rig")
async def rig_fixture(db: Any, bus: Any, tmp_path: Path) -> AsyncIterator[Rig]:
    async with make_rig(db, bus, tmp_path) as r:
        yield r
