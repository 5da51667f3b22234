"""The simulated PBX: Asterisk's call behaviour on top of the simulated AMI server.

It keeps channels, bridges, queues, AstDB, globals and MixMonitors, answers the actions contactd's
`telephony/pbx.py` sends (same texts as the traces, errors included), and plays call scenarios whose events are
shaped like the traces (`scenarios.py` prints them). Each call runs as one task that is the only emitter of
that call's events: actions touching a call only queue a request and wake it, so the action's response goes out
first (as in the traces) and a dead channel never shows up in a later event.

time_scale multiplies every simulated delay (tests use ~0.02, the demo 1.0). Durations written into CDRs and
recordings are in simulated seconds, so a 3 s talk at scale 0.02 still records 3 s of audio.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import logging
import math
import random
import sys
import time
import uuid
import wave
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contactd.config import PBXConfig
from contactd.simulator import scenarios as sc
from contactd.simulator.agi_caller import AGICallTranscript, CallerBehaviour, place_agi_call
from contactd.simulator.ami_server import (
    ActionReply,
    AMIAction,
    SimulatedAMIServer,
    error,
    list_reply,
    success,
)
from contactd.simulator.scenarios import Bridge, Channel, Member, Queue

log = logging.getLogger(__name__)

SAMPLE_RATE = 8000
WARNING_SECONDS = 3.0  # how long the warning prompt plays before the hang-up
NO_SUCH_CHANNEL = "No such channel"


# ------------------------------------------------------------------------------------------- recordings

def _tone_table() -> bytes:
    """One second of a soft two-tone hum with noise: clearly audible, clearly not silence."""
    rnd = random.Random(8000)
    samples = array.array("h", (
        int(4000 * math.sin(2 * math.pi * 440 * i / SAMPLE_RATE) + 1500 * math.sin(2 * math.pi * 620 * i / SAMPLE_RATE)
            + rnd.randint(-600, 600))
        for i in range(SAMPLE_RATE)
    ))
    if sys.byteorder == "big":
        samples.byteswap()  # WAV data is little-endian
    return samples.tobytes()


_TONE = _tone_table()


class _Recorder:
    """A MixMonitor: an 8 kHz mono 16-bit WAV that grows with (simulated) time until stopped."""

    def __init__(self, path: Path, time_scale: float) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._scale = max(time_scale, 1e-6)
        self._wav = wave.open(str(path), "wb")
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(SAMPLE_RATE)
        self._wav.writeframes(b"")  # header on disk at once, like Asterisk's 44-byte start
        self._last = time.monotonic()
        self._offset = 0
        self.closed = False

    def pump(self) -> None:
        if self.closed:
            return
        now = time.monotonic()
        frames = int((now - self._last) / self._scale * SAMPLE_RATE)
        if frames <= 0:
            return
        self._last += frames * self._scale / SAMPLE_RATE
        out = bytearray()
        need = frames * 2
        while need > 0:
            chunk = _TONE[self._offset: self._offset + need]
            out += chunk
            need -= len(chunk)
            self._offset = (self._offset + len(chunk)) % len(_TONE)
        self._wav.writeframes(bytes(out))  # wave patches the header sizes after every write

    def close(self) -> None:
        if not self.closed:
            self.pump()
            self.closed = True
            self._wav.close()


# ------------------------------------------------------------------------------------------- calls

@dataclass(eq=False)
class _Leg:
    """One queue member (or transfer target) being rung: Local;1/;2 and the desk phone."""

    extension: str
    member: Member | None
    local1: Channel
    local2: Channel
    phone: Channel
    rung_mono: float = field(default_factory=time.monotonic)
    answer_now: bool = False
    bridge: Bridge | None = None  # Local;2 <-> phone

    @property
    def channels(self) -> tuple[Channel, Channel, Channel]:
        return (self.local1, self.local2, self.phone)


@dataclass(eq=False)
class SimCall:
    linkedid: str
    caller_channel: str
    direction: str = "in"
    agent_channel: str | None = None
    agent_phone_channel: str | None = None
    agent_extension: str | None = None
    transcript: AGICallTranscript | None = None
    events: list[list[tuple[str, str]]] = field(default_factory=list)
    done: asyncio.Task[None] | None = None
    outcome: str = ""  # answered | abandoned | warned | redirected | failed
    # Internal state the scenario task owns.
    caller: Channel | None = None
    legs: list[_Leg] = field(default_factory=list)
    agent: _Leg | None = None
    consult: _Leg | None = None
    requests: list[tuple[Any, ...]] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    redirect: tuple[str, str] | None = None
    side_tasks: set[asyncio.Task[None]] = field(default_factory=set)
    behaviour: CallerBehaviour | None = None
    phase: str = ""  # ivr while the FastAGI script owns the caller (no dialplan app to interrupt yet)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on", "y")


class SimulatedPBX:
    def __init__(self, ami_server: SimulatedAMIServer, *, agi_host: str = "127.0.0.1", agi_port: int = 4573,
                 recordings_dir: Path | None = None, agents: tuple[str, ...] = ("1001", "1002", "1003"),
                 config: PBXConfig | None = None, time_scale: float = 1.0) -> None:
        self.ami = ami_server
        self.agi_host = agi_host
        self.agi_port = agi_port
        self.recordings_dir = Path(recordings_dir) if recordings_dir is not None else Path("var/recordings")
        self.agents = tuple(agents)
        self.config = config or PBXConfig()
        self.time_scale = time_scale
        self.agi_timeout = 120.0  # real seconds a simulated caller waits on a silent FastAGI server
        self.default_talk_seconds = 30.0  # originated calls: the far end hangs up after this
        self.originate_ring_seconds = 1.0
        self.channels: dict[str, Channel] = {}
        self.queues: dict[str, Queue] = {}
        self.astdb: dict[str, str] = {}  # "/family/key" -> value
        self.globals: dict[str, str] = {}
        self.recorders: dict[str, _Recorder] = {}
        self.calls: list[SimCall] = []
        self.processed = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pump_task: asyncio.Task[None] | None = None
        self._chan_seq = 0
        self._local_seq = 0
        for name in {self.config.queue, self.config.vip_queue}:
            self.queues[name] = Queue(name)
        # As contactd leaves them with the shipped queues.conf: every agent a dynamic member (QueueAdd, kept by
        # persistentmembers) of both the support and the VIP queue, so QueueRemove (agent offline) works.
        for queue in self.queues.values():
            for ext in self.agents:
                iface = self._member_interface(ext)
                queue.members[iface] = Member(iface, f"Agent {ext}", iface, membership="dynamic")
        self._register()

    # ------------------------------------------------------------------------------------- public API

    def live_channels(self) -> list[str]:
        return [ch.name for ch in self.channels.values() if ch.alive]

    async def idle(self, timeout: float = 30.0) -> None:
        """Wait until no scenario runs (bounded)."""
        async with asyncio.timeout(timeout):
            while any(not t.done() for t in self._tasks):
                await asyncio.wait([t for t in self._tasks if not t.done()])

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2.0)
        for rec in self.recorders.values():
            rec.close()
        self.recorders.clear()
        if self._pump_task is not None:
            self._pump_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump_task
            self._pump_task = None

    async def inbound_call(self, caller_number: str, caller_name: str = "", *,
                           behaviour: CallerBehaviour | None = None, answer_by: str | None = "1001",
                           ring_seconds: float = 1.0, talk_seconds: float | None = 3.0, hangup_by: str = "caller",
                           via_agi: bool = True, did: str = "100") -> SimCall:
        """A PSTN call on the trunk: contactd-inbound → FastAGI `inbound` → (EXEC Queue) → agents."""
        ch = self._new_channel(f"PJSIP/trunk-{self._next_seq():08x}", context="contactd-inbound", exten=did,
                               caller_num=caller_number, caller_name=caller_name, state=4, role="caller")
        call = SimCall(linkedid=ch.linkedid, caller_channel=ch.name, caller=ch, behaviour=behaviour or
                       CallerBehaviour())
        ch.call = call
        opts = {"answer_by": answer_by, "ring_seconds": ring_seconds, "talk_seconds": talk_seconds,
                "hangup_by": hangup_by}
        call.done = self._spawn(self._run_inbound(call, opts, via_agi, did))
        self.calls.append(call)
        return call

    async def agent_calls(self, extension: str, number: str, *, talk_seconds: float | None = 3.0,
                          ring_seconds: float = 1.0) -> SimCall:
        """The agent dials from the desk phone: internal when `number` has ≤ 4 digits, else out the trunk."""
        phone = self._new_channel(f"PJSIP/{extension}-{self._next_seq():08x}", context=self.config.agent_context,
                                  exten=number, caller_num=extension, caller_name=f"Agent {extension}", state=4,
                                  role="phone", extension=extension)
        call = SimCall(linkedid=phone.linkedid, caller_channel=phone.name, caller=phone,
                       direction="internal" if len(number) <= 4 else "out", agent_channel=phone.name,
                       agent_phone_channel=phone.name, agent_extension=extension)
        phone.call = call
        call.done = self._spawn(self._run_agent_call(call, phone, number, ring_seconds, talk_seconds))
        self.calls.append(call)
        return call

    def answer(self, extension: str) -> bool:
        """The agent picks up a ringing phone now (a queue call or an originated call)."""
        for call in self.calls:
            for leg in [*call.legs, *([call.consult] if call.consult else [])]:
                if leg.extension == extension and leg.phone.alive and leg.phone.state != 6:
                    leg.answer_now = True
                    call.wake.set()
                    return True
            if call.caller is not None and call.caller.extension == extension and call.caller.state == 5:
                call.requests.append(("answer",))
                call.wake.set()
                return True
        return False

    def hangup(self, channel: str, cause: int = 16) -> bool:
        ch = self._find(channel)
        if ch is None or ch.call is None:
            return False
        self._hangup_request(ch, cause)
        return True

    # ------------------------------------------------------------------------------------- plumbing

    def _s(self, seconds: float) -> float:
        return max(0.0, seconds * self.time_scale)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("simulated PBX: scenario failed", exc_info=task.exception())

    def _next_seq(self) -> int:
        self._chan_seq += 1
        return self._chan_seq

    def _member_interface(self, ext: str) -> str:
        return f"Local/{ext}@{self.config.agent_context}"

    def _new_channel(self, name: str, *, context: str, exten: str, caller_num: str = "", caller_name: str = "",
                     state: int = 0, role: str = "", extension: str = "", linkedid: str | None = None,
                     call: SimCall | None = None) -> Channel:
        uniqueid = sc.next_uniqueid()
        ch = Channel(name=name, uniqueid=uniqueid, linkedid=linkedid or uniqueid, context=context, exten=exten,
                     caller_num=caller_num, caller_name=caller_name, connected_num=caller_num,
                     connected_name=caller_name, state=state, role=role, extension=extension, call=call,
                     started_mono=self._sim_now())
        self.channels[name] = ch
        self.processed += 1
        return ch

    def _find(self, name: str | None) -> Channel | None:
        if not name:
            return None
        ch = self.channels.get(name)
        return ch if ch is not None and ch.alive else None

    def _emit(self, call: SimCall | None, pairs: list[tuple[str, str]]) -> None:
        if call is not None:
            call.events.append(pairs)
        self.ami.emit(pairs)

    def _ev(self, call: SimCall | None, name: str, ch: Channel, *extra: tuple[str, str]) -> None:
        if ch.alive:
            self._emit(call, sc.chan_event(name, ch, *extra))

    def _set_state(self, call: SimCall | None, ch: Channel, state: int) -> None:
        if not ch.alive or ch.state == state:
            return
        ch.state = state
        if state == 6 and ch.answered_at is None:
            ch.answered_at = datetime.now(UTC)
            ch.answered_mono = self._sim_now()
        self._ev(call, "Newstate", ch)

    def _exten(self, call: SimCall | None, ch: Channel, app: str, data: str) -> None:
        ch.app, ch.app_data = app, data
        if ch.alive:
            self._emit(call, sc.newexten(ch, app, data))

    def _var(self, call: SimCall | None, ch: Channel, name: str, value: str) -> None:
        ch.variables[name] = value
        if ch.alive:
            self._emit(call, sc.varset(ch, name, value))

    def _sim_now(self) -> float:
        # CDR durations count simulated seconds: real elapsed / time_scale.
        return time.monotonic() / max(self.time_scale, 1e-6)

    def _request(self, call: SimCall, *request: Any) -> None:
        call.requests.append(request)
        call.wake.set()

    async def _wait(self, call: SimCall, seconds: float | None) -> None:
        """Sleep `seconds` simulated seconds, or until an action touches the call."""
        if call.requests:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(None if seconds is None else self._s(seconds)):
                await call.wake.wait()
        call.wake.clear()

    def _bridge(self, call: SimCall | None, *channels: Channel) -> Bridge:
        bridge = Bridge(str(uuid.uuid4()))
        self._emit(call, sc.bridge_event("BridgeCreate", bridge))
        for ch in channels:
            bridge.channels.append(ch)
            ch.bridge = bridge
            self._emit(call, sc.bridge_event("BridgeEnter", bridge, ch))
        if len(channels) == 2:
            a, b = channels
            self._var(call, a, "BRIDGEPEER", b.name)
            self._var(call, b, "BRIDGEPEER", a.name)
        return bridge

    def _leave_bridge(self, call: SimCall | None, ch: Channel) -> None:
        bridge = ch.bridge
        if bridge is None:
            return
        if ch in bridge.channels:
            bridge.channels.remove(ch)
        ch.bridge = None
        if ch.alive:
            self._emit(call, sc.bridge_event("BridgeLeave", bridge, ch))
        if not bridge.channels:
            self._emit(call, sc.bridge_event("BridgeDestroy", bridge))

    def _hangup_channel(self, call: SimCall | None, ch: Channel, cause: int = 16, *, soft: bool = True) -> None:
        """Hang one channel up like Asterisk: [SoftHangupRequest], BridgeLeave, Hangup, Cdr (if party A)."""
        if not ch.alive:
            return
        if soft:
            self._ev(call, "SoftHangupRequest", ch, ("Cause", str(cause)))
        self._leave_bridge(call, ch)
        rec = self.recorders.pop(ch.name, None)
        if rec is not None:
            rec.close()  # Asterisk closes the file at hangup without a MixMonitorStop event
        self._emit(call, sc.hangup_event(ch, cause))
        ch.alive = False
        if not ch.is_cdr_dest:
            self._emit(call, sc.cdr_event(ch, datetime.now(UTC), self._sim_now()))
        self.channels.pop(ch.name, None)

    # ------------------------------------------------------------------------------------- inbound

    async def _run_inbound(self, call: SimCall, opts: dict[str, Any], via_agi: bool, did: str) -> None:
        ch = call.caller
        assert ch is not None
        try:
            self._emit(call, sc.chan_event("Newchannel", ch))
            self._var(call, ch, "CONTACTD_DID", did)
            self._exten(call, ch, "NoOp", f'Inbound call from "{ch.caller_name}" <{ch.caller_num}>')
            self._exten(call, ch, "Answer", "")
            ch.priority = 2
            self._set_state(call, ch, 6)
            if via_agi:
                ch.priority = 3
                self._exten(call, ch, "AGI", f"agi://{self.agi_host}:{self.agi_port}/inbound")

                async def exec_handler(app: str, args: str) -> str | None:
                    return await self._agi_exec(call, opts, app, args)

                call.phase = "ivr"
                call.transcript = await place_agi_call(
                    self.agi_host, self.agi_port, script="inbound", callerid=ch.caller_num,
                    calleridname=ch.caller_name, uniqueid=ch.uniqueid, channel=ch.name, extension=did,
                    behaviour=call.behaviour, exec_handler=exec_handler, timeout=self.agi_timeout,
                    variables={"CONTEXT": ch.context},
                )
                call.phase = ""
                # No command and no hang-up: the FastAGI server was unreachable or dropped us at once.
                failed = not call.transcript.commands and not call.transcript.hung_up
                self._var(call, ch, "AGISTATUS", "FAILURE" if failed else "SUCCESS")
                # Asterisk says SUCCESS also when contactd's socket closed mid-script; the shipped dialplan's
                # fail-safe therefore looks at the flag the IVR sets when it has finished with the call.
                finished = call.transcript.variables.get("CONTACTD_IVR_DONE") == "1"
                if not finished and not call.transcript.hung_up and ch.alive and call.redirect is None:
                    # The fail-safe: the IVR did not finish, so straight to the agents' queue.
                    ch.priority = 5
                    self._exten(call, ch, "Queue", f"{self.config.queue},,,,300")
                    await self._queue(call, opts, self.config.queue, f"{self.config.queue},,,,300")
            else:
                ch.priority = 5
                self._exten(call, ch, "Queue", f"{self.config.queue},,,,300")
                await self._queue(call, opts, self.config.queue, f"{self.config.queue},,,,300")
            if call.side_tasks:
                await asyncio.wait(list(call.side_tasks), timeout=self._s(600) + 5)
            if ch.alive and call.redirect is None:
                self._hangup_channel(call, ch, ch.hangup_cause, soft=False)
        finally:
            self._cleanup(call)

    def _cleanup(self, call: SimCall) -> None:
        for leg in [*call.legs, *([call.consult] if call.consult else [])]:
            for ch in leg.channels:
                self._hangup_channel(call, ch, 16)
        if call.caller is not None and call.caller.alive and call.redirect is None:
            self._hangup_channel(call, call.caller, 16)

    async def _agi_exec(self, call: SimCall, opts: dict[str, Any], app: str, args: str) -> str | None:
        ch = call.caller
        assert ch is not None
        name = app.lower()
        if call.redirect is not None or not ch.alive:
            return "200 result=-1"
        if name == "queue":
            call.phase = "queue"
            qname = args.split(",", 1)[0] or self.config.queue
            ch.app, ch.app_data = "Queue", args
            await self._queue(call, opts, qname, args)
            call.phase = "ivr"
            if call.behaviour is not None:
                # Queue returned because the call ended (or the caller was moved): the AGI sees the hang-up.
                call.behaviour.hangup_after = 0
            return "200 result=-1"
        if name == "mixmonitor":
            parts = args.split(",")
            self._start_mixmonitor(call, ch, parts[0])
            return "200 result=0"
        if name == "stopmixmonitor":
            self._stop_mixmonitor(call, ch)
            return "200 result=0"
        return None

    # ------------------------------------------------------------------------------------- queue

    async def _queue(self, call: SimCall, opts: dict[str, Any], qname: str, args: str) -> None:
        ch = call.caller
        assert ch is not None
        q = self.queues.setdefault(qname, Queue(qname))
        for var in ("ANSWEREDTIME", "ANSWEREDTIME_MS", "DIALEDTIME", "DIALEDTIME_MS", "QUEUEWAIT", "QUEUEWAIT_MS"):
            self._var(call, ch, var, "")
        q.callers.append(ch)
        position = len(q.callers)
        joined = self._sim_now()
        self._ev(call, "QueueCallerJoin", ch, ("Queue", q.name), ("Position", str(position)),
                 ("Count", str(len(q.callers))))
        self._ev(call, "MusicOnHoldStart", ch, ("Class", "default"))
        for member in list(q.members.values()):
            if not member.paused and member.status == 1:
                ext = member.interface.split("/", 1)[1].split("@", 1)[0]
                call.legs.append(self._ring_leg(call, ext, member, q))
        answer_by = opts.get("answer_by")
        deadline = time.monotonic() + self._s(opts.get("ring_seconds") or 0.0)
        answered: _Leg | None = None
        caller_gone: int | None = None
        while True:
            for req in self._take(call):
                kind = req[0]
                if kind == "hangup" and req[1] is ch:
                    caller_gone = req[2]
                elif kind == "hangup":
                    leg = self._leg_of(call, req[1])
                    if leg is not None:
                        self._cancel_leg(call, leg, "CANCEL", req[2])
                elif kind == "redirect" and req[1] is ch:
                    call.redirect = (req[2], req[3])
            if caller_gone is not None or call.redirect is not None:
                break
            answered = next((leg for leg in call.legs if leg.answer_now), None)
            if answered is not None:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                answered = next((leg for leg in call.legs if leg.extension == answer_by), None)
                if answered is None:
                    caller_gone = 16  # nobody answered: the caller gives up
                break
            await self._wait(call, remaining / max(self.time_scale, 1e-6))
        waited = int(self._sim_now() - joined)
        if answered is None:
            if caller_gone is not None:
                self._ev(call, "HangupRequest", ch, ("Cause", str(caller_gone)))
                ch.hangup_cause = caller_gone
            for leg in list(call.legs):
                self._cancel_leg(call, leg, "CANCEL")
            self._ev(call, "MusicOnHoldStop", ch)
            if caller_gone is not None:
                q.abandoned += 1
                call.outcome = "abandoned"
                self._ev(call, "QueueCallerAbandon", ch, ("Queue", q.name), ("Position", str(position)),
                         ("OriginalPosition", str(position)), ("HoldTime", str(waited)))
            q.callers.remove(ch)
            self._ev(call, "QueueCallerLeave", ch, ("Queue", q.name), ("Position", str(position)),
                     ("Count", str(len(q.callers))))
            if call.redirect is not None:
                self._start_redirect(call)
            return
        # Someone answered: drop the others, connect, talk.
        for leg in list(call.legs):
            if leg is not answered:
                self._cancel_leg(call, leg, "CANCEL")
        self._connect_leg(call, answered, q, ch, waited)
        q.callers.remove(ch)
        call.outcome = "answered"
        await self._talk(call, opts, q)

    def _take(self, call: SimCall) -> list[tuple[Any, ...]]:
        requests, call.requests = call.requests, []
        return requests

    def _leg_of(self, call: SimCall, ch: Channel) -> _Leg | None:
        for leg in [*call.legs, *([call.consult] if call.consult else [])]:
            if ch in leg.channels:
                return leg
        return None

    def _ring_leg(self, call: SimCall, ext: str, member: Member | None, q: Queue | None,
                  context: str | None = None) -> _Leg:
        caller = call.caller
        assert caller is not None
        ctx = context or self.config.agent_context
        self._local_seq += 1
        base = f"Local/{ext}@{ctx}-{self._local_seq:08x}"
        l1 = self._new_channel(f"{base};1", context=ctx, exten=ext, linkedid=call.linkedid, role="local1",
                               extension=ext, call=call, caller_num=caller.caller_num, caller_name=caller.caller_name)
        l2 = self._new_channel(f"{base};2", context=ctx, exten=ext, linkedid=call.linkedid, role="local2",
                               extension=ext, call=call, state=4, caller_num=caller.caller_num,
                               caller_name=caller.caller_name)
        phone = self._new_channel(f"PJSIP/{ext}-{self._next_seq():08x}", context=ctx, exten=ext,
                                  linkedid=call.linkedid, role="phone", extension=ext, call=call,
                                  caller_num=caller.caller_num, caller_name=caller.caller_name)
        l1.is_cdr_dest = True  # the caller's CDR names it (Asterisk writes no CDR of its own)
        phone.is_cdr_dest = True
        l2.cdr_dest = phone
        if caller.cdr_dest is None:
            caller.cdr_dest = l1
        leg = _Leg(ext, member, l1, l2, phone)
        self._emit(call, sc.chan_event("Newchannel", l1))
        self._emit(call, sc.chan_event("Newchannel", l2))
        self._exten(call, l1, "AppQueue" if q else "AppDial", "(Outgoing Line)")
        self._var(call, l1, "DIALEDPEERNUMBER", f"{ext}@{ctx}")
        self._var(call, l2, "DIALEDPEERNUMBER", f"{ext}@{ctx}")
        self._emit(call, sc.local_bridge(l1, l2))
        if q is not None and member is not None:
            self._emit(call, sc.dial_event("AgentCalled", caller, l1, Queue=q.name, Interface=member.interface,
                                           MemberName=member.name))
        self._emit(call, sc.dial_event("DialBegin", caller, l1, DialString=f"{ext}@{ctx}"))
        self._exten(call, l2, "Dial", f"{self.config.channel_tech}/{ext},30")
        self._emit(call, sc.chan_event("Newchannel", phone))
        self._emit(call, sc.dial_event("DialBegin", l2, phone, DialString=ext))
        self._set_state(call, phone, 5)
        self._emit(call, sc.dial_event("DialState", l2, phone, DialStatus="RINGING"))
        self._set_state(call, l1, 5)
        self._emit(call, sc.dial_event("DialState", caller, l1, DialStatus="RINGING"))
        if member is not None and q is not None:
            member.status = 6
            self._emit(call, sc.member_event("QueueMemberStatus", q, member))
        return leg

    def _cancel_leg(self, call: SimCall, leg: _Leg, status: str, cause: int = 16) -> None:
        caller = call.caller
        if leg in call.legs:
            call.legs.remove(leg)
        if caller is not None and caller.alive and leg.local1.alive:
            self._emit(call, sc.dial_event("DialEnd", caller, leg.local1, DialStatus=status))
        if leg.local2.alive and leg.phone.alive:
            self._emit(call, sc.dial_event("DialEnd", leg.local2, leg.phone, DialStatus=status))
        # A cancelled Local;1 is nobody's CDR destination any more: it writes its own (NO ANSWER).
        leg.local1.is_cdr_dest = False
        if caller is not None and caller.cdr_dest is leg.local1:
            caller.cdr_dest = None
        for ch in (leg.phone, leg.local2, leg.local1):
            self._hangup_channel(call, ch, cause)
        if leg.member is not None:
            leg.member.status = 1
            # Members are per queue (support and support-vip each have their own): report in the one rung.
            q = next((q for q in self.queues.values() if q.members.get(leg.member.interface) is leg.member), None)
            if q is not None:
                self._emit(call, sc.member_event("QueueMemberStatus", q, leg.member))

    def _answer_leg(self, call: SimCall, leg: _Leg) -> None:
        caller = call.caller
        assert caller is not None
        self._exten(call, leg.local2, "Dial", f"{self.config.channel_tech}/{leg.extension},30")
        self._set_state(call, leg.phone, 6)
        self._emit(call, sc.dial_event("DialEnd", leg.local2, leg.phone, DialStatus="ANSWER"))
        self._set_state(call, leg.local2, 6)
        self._set_state(call, leg.local1, 6)
        self._emit(call, sc.dial_event("DialEnd", caller, leg.local1, DialStatus="ANSWER"))
        leg.bridge = self._bridge(call, leg.local2, leg.phone)
        caller.cdr_dest = leg.local1
        leg.local1.is_cdr_dest = True

    def _connect_leg(self, call: SimCall, leg: _Leg, q: Queue, caller: Channel, waited: int) -> None:
        self._answer_leg(call, leg)
        self._ev(call, "MusicOnHoldStop", caller)
        position = q.callers.index(caller) + 1 if caller in q.callers else 1
        self._ev(call, "QueueCallerLeave", caller, ("Queue", q.name), ("Position", str(position)),
                 ("Count", str(len(q.callers) - 1)))
        self._var(call, caller, "QUEUEPOSITION", str(position))
        self._var(call, caller, "QUEUEWAIT", str(waited))
        self._var(call, caller, "QUEUEWAIT_MS", str(waited * 1000))
        ring = int(self._sim_now() - leg.rung_mono / max(self.time_scale, 1e-6))
        member = leg.member
        self._emit(call, sc.dial_event("AgentConnect", caller, leg.local1, Queue=q.name,
                                       Interface=member.interface if member else self._member_interface(leg.extension),
                                       MemberName=member.name if member else f"Agent {leg.extension}",
                                       HoldTime=str(waited), RingTime=str(max(ring, 0))))
        self._bridge(call, leg.local1, caller)
        if member is not None:
            member.status, member.in_call = 2, 1
            self._emit(call, sc.member_event("QueueMemberStatus", q, member))
        call.legs = []
        call.agent = leg
        call.agent_channel = leg.local1.name
        call.agent_phone_channel = leg.phone.name
        call.agent_extension = leg.extension

    async def _talk(self, call: SimCall, opts: dict[str, Any], q: Queue | None) -> None:
        caller = call.caller
        assert caller is not None
        talk = opts.get("talk_seconds")
        deadline = None if talk is None else time.monotonic() + self._s(talk)
        started = self._sim_now()
        reason = ""
        while reason == "":
            for req in self._take(call):
                kind, target = req[0], req[1] if len(req) > 1 else None
                if kind == "hangup" and target is caller:
                    caller.hangup_cause = req[2]
                    reason = "caller"
                elif kind == "hangup" and call.consult is not None and target in call.consult.channels:
                    if target is call.consult.phone or target is call.consult.local1:
                        self._end_consult(call, complete=False)
                elif kind == "hangup" and call.agent is not None and target in call.agent.channels:
                    if call.consult is not None and call.consult.phone.state == 6:
                        self._complete_atxfer(call, q)
                    else:
                        reason = "agent"
                elif kind == "redirect" and target is caller:
                    call.redirect = (req[2], req[3])
                    reason = "transfer"
                elif kind == "blind" and call.agent is not None:
                    self._blind_transfer(call, q, req[2], req[3])
                elif kind == "atxfer" and call.agent is not None and call.consult is None:
                    self._start_atxfer(call, req[2], req[3])
                elif kind == "cancel_atxfer":
                    self._end_consult(call, complete=False)
            if reason:
                break
            if call.consult is not None and call.consult.phone.state != 6:
                if call.consult.answer_now or time.monotonic() - call.consult.rung_mono >= self._s(1.0):
                    self._answer_leg(call, call.consult)
                    call.consult.local1.is_cdr_dest = True
                    self._bridge(call, call.consult.local1, call.agent.phone if call.agent else caller)
            if deadline is not None and time.monotonic() >= deadline:
                reason = opts.get("hangup_by") or "caller"
                if reason == "caller":
                    self._ev(call, "HangupRequest", caller, ("Cause", "16"))
                break
            wait = None if deadline is None else (deadline - time.monotonic()) / max(self.time_scale, 1e-6)
            if call.consult is not None and call.consult.phone.state != 6:
                wait = 1.0 if wait is None else min(wait, 1.0)
            await self._wait(call, wait)
        leg = call.agent
        if call.consult is not None:
            self._end_consult(call, complete=False)
        talk_time = int(self._sim_now() - started)
        if leg is not None:
            if reason == "agent":
                self._ev(call, "HangupRequest", leg.phone, ("Cause", "16"))
                for ch in (leg.phone, leg.local2):
                    self._hangup_channel(call, ch, 16)
            self._agent_complete(call, q, leg, "agent" if reason == "agent" else
                                 "transfer" if reason == "transfer" else "caller", talk_time)
            if reason in ("caller", "transfer"):
                self._leave_bridge(call, caller)
                self._var(call, caller, "BRIDGEPEER", "")
            self._hangup_channel(call, leg.local1, 16, soft=False)
            self._ev(call, "HangupRequest", leg.local2, ("Cause", "16"))
            for ch in (leg.local2, leg.phone):
                self._hangup_channel(call, ch, 16)
            self._leave_bridge(call, caller)
            call.agent = None
            if leg.member is not None and q is not None:
                leg.member.status, leg.member.in_call = 1, 0
                leg.member.calls_taken += 1
                leg.member.last_call = int(time.time())
                self._emit(call, sc.member_event("QueueMemberStatus", q, leg.member))
        if q is not None:
            q.completed += 1
        self._var(call, caller, "ANSWEREDTIME", str(talk_time))
        self._var(call, caller, "ANSWEREDTIME_MS", str(talk_time * 1000))
        if call.redirect is not None:
            self._start_redirect(call)

    def _agent_complete(self, call: SimCall, q: Queue | None, leg: _Leg, reason: str, talk_time: int) -> None:
        caller = call.caller
        if q is None or caller is None or not caller.alive:
            return
        member = leg.member
        self._emit(call, sc.dial_event(
            "AgentComplete", caller, leg.local1, Queue=q.name,
            Interface=member.interface if member else self._member_interface(leg.extension),
            MemberName=member.name if member else f"Agent {leg.extension}",
            HoldTime=caller.variables.get("QUEUEWAIT", "0") or "0", TalkTime=str(talk_time), Reason=reason))

    # ------------------------------------------------------------------------------------- transfers

    def _blind_transfer(self, call: SimCall, q: Queue | None, exten: str, context: str) -> None:
        caller = call.caller
        old = call.agent
        assert caller is not None and old is not None
        bridge = caller.bridge or Bridge(str(uuid.uuid4()), [caller])
        self._emit(call, [("Event", "BlindTransfer"), ("Result", "Success"),
                          *sc.channel_block(old.local1, "Transferer"), *sc.channel_block(caller, "Transferee"),
                          *sc.bridge_block(bridge), ("IsExternal", "Yes"), ("Context", context),
                          ("Extension", exten)])
        self._agent_complete(call, q, old, "transfer", 0)
        self._leave_bridge(call, caller)
        for ch in (old.local1, old.phone, old.local2):
            self._hangup_channel(call, ch, 16)
        if old.member is not None and q is not None:
            old.member.status, old.member.in_call = 1, 0
            old.member.calls_taken += 1
        call.agent = None
        caller.context, caller.exten, caller.priority = context, exten, 1
        leg = self._ring_leg(call, exten, None, None, context)
        call.legs = []
        self._answer_leg(call, leg)
        self._bridge(call, leg.local1, caller)
        call.agent = leg
        call.agent_channel, call.agent_phone_channel, call.agent_extension = leg.local1.name, leg.phone.name, exten

    def _start_atxfer(self, call: SimCall, exten: str, context: str) -> None:
        caller, agent = call.caller, call.agent
        assert caller is not None and agent is not None
        for digit in f"*2{exten}#":
            self._ev(call, "DTMFEnd", agent.phone, ("Digit", digit), ("DurationMs", "100"),
                     ("Direction", "Received"))
        self._ev(call, "Hold", caller)
        call.consult = self._ring_leg(call, exten, None, None, context)
        call.legs = []

    def _end_consult(self, call: SimCall, complete: bool) -> None:
        leg, call.consult = call.consult, None
        if leg is None:
            return
        for ch in (leg.local1, leg.local2, leg.phone):
            self._hangup_channel(call, ch, 16)
        if call.caller is not None:
            self._ev(call, "Unhold", call.caller)

    def _complete_atxfer(self, call: SimCall, q: Queue | None) -> None:
        """The transferer hung up after the target answered: the caller now talks to the target."""
        caller, old, new = call.caller, call.agent, call.consult
        assert caller is not None and old is not None and new is not None
        orig = caller.bridge or Bridge(str(uuid.uuid4()))
        second = new.local1.bridge or Bridge(str(uuid.uuid4()))
        self._emit(call, [("Event", "AttendedTransfer"), ("Result", "Success"),
                          *sc.channel_block(old.local1, "OrigTransferer"), *sc.bridge_block(orig, "OrigBridge"),
                          *sc.channel_block(old.phone, "SecondTransferer"), *sc.bridge_block(second, "SecondBridge"),
                          *sc.channel_block(caller, "Transferee"), ("IsExternal", "No"), ("DestType", "Bridge"),
                          ("DestBridgeUniqueid", orig.uniqueid)])
        self._agent_complete(call, q, old, "transfer", 0)
        for ch in (old.phone, old.local2, old.local1):
            self._hangup_channel(call, ch, 16)
        self._leave_bridge(call, new.local1)
        self._ev(call, "Unhold", caller)
        if caller.bridge is not None:
            self._leave_bridge(call, caller)
        self._bridge(call, new.local1, caller)
        call.agent, call.consult = new, None
        call.agent_channel, call.agent_phone_channel, call.agent_extension = (new.local1.name, new.phone.name,
                                                                             new.extension)

    # ------------------------------------------------------------------------------------- redirect

    def _start_redirect(self, call: SimCall) -> None:
        task = self._spawn(self._run_redirect(call))
        call.side_tasks.add(task)
        task.add_done_callback(call.side_tasks.discard)

    async def _run_redirect(self, call: SimCall) -> None:
        ch = call.caller
        assert ch is not None and call.redirect is not None
        context, exten = call.redirect
        if not ch.alive:
            return
        self._leave_bridge(call, ch)
        ch.context, ch.exten, ch.priority = context, exten, 1
        self._exten(call, ch, ch.app or "Queue", ch.app_data)
        if context == self.config.warning_context:
            call.outcome = "warned"
            self._exten(call, ch, "Playback", f"contactd/warning-{exten}")
            await asyncio.sleep(self._s(WARNING_SECONDS))
            ch.priority = 2
            self._exten(call, ch, "Hangup", "")
            self._hangup_channel(call, ch, 16)
            return
        call.outcome = "redirected"
        self._exten(call, ch, "MusicOnHold", "default")
        self._ev(call, "MusicOnHoldStart", ch, ("Class", "default"))
        call.redirect = None
        while ch.alive:
            moved = False
            for req in self._take(call):
                if req[0] == "hangup" and req[1] is ch:
                    self._ev(call, "MusicOnHoldStop", ch)
                    self._hangup_channel(call, ch, req[2])
                    return
                if req[0] == "redirect" and req[1] is ch:
                    call.redirect = (req[2], req[3])
                    moved = True
            if moved:
                self._ev(call, "MusicOnHoldStop", ch)
                await self._run_redirect(call)
                return
            await self._wait(call, None)

    # ------------------------------------------------------------------------------------- agent/originate

    async def _run_agent_call(self, call: SimCall, phone: Channel, number: str, ring: float,
                              talk: float | None) -> None:
        try:
            self._emit(call, sc.chan_event("Newchannel", phone))
            await self._dial_out(call, phone, number, ring, talk)
        finally:
            self._cleanup_outbound(call)

    async def _dial_out(self, call: SimCall, phone: Channel, number: str, ring: float, talk: float | None) -> None:
        internal = len(number) <= 4
        tech = self.config.channel_tech
        target = f"{tech}/{number}" if internal else f"{tech}/trunk/{number}"
        phone.app, phone.app_data = "Dial", f"{target},60"
        self._exten(call, phone, "Dial", f"{target},60")
        name = f"{tech}/{number}-{self._next_seq():08x}" if internal else f"{tech}/trunk-{self._next_seq():08x}"
        far = self._new_channel(name, context="from-internal" if internal else "contactd-outbound", exten=number,
                                linkedid=call.linkedid, role="outbound", call=call, caller_num=phone.caller_num,
                                caller_name=phone.caller_name, extension=number if internal else "")
        far.connected_num = number
        far.is_cdr_dest = True
        phone.cdr_dest = far
        self._emit(call, sc.chan_event("Newchannel", far))
        self._emit(call, sc.dial_event("DialBegin", phone, far, DialString=target.split("/", 1)[1]))
        self._set_state(call, far, 5)
        self._emit(call, sc.dial_event("DialState", phone, far, DialStatus="RINGING"))
        await self._wait_ring(call, ring)
        for req in self._take(call):
            if req[0] == "hangup":
                self._emit(call, sc.dial_event("DialEnd", phone, far, DialStatus="CANCEL"))
                self._hangup_channel(call, far, 16)
                self._hangup_channel(call, phone, req[2])
                return
        self._set_state(call, far, 6)
        self._emit(call, sc.dial_event("DialEnd", phone, far, DialStatus="ANSWER"))
        self._bridge(call, phone, far)
        call.outcome = "answered"
        deadline = None if talk is None else time.monotonic() + self._s(talk)
        while phone.alive and far.alive:
            for req in self._take(call):
                if req[0] == "hangup":
                    other = far if req[1] is phone else phone
                    self._ev(call, "HangupRequest", req[1], ("Cause", str(req[2])))
                    self._hangup_channel(call, req[1], req[2], soft=False)
                    self._hangup_channel(call, other, 16)
                    return
            if deadline is not None and time.monotonic() >= deadline:
                self._ev(call, "HangupRequest", far, ("Cause", "16"))
                self._hangup_channel(call, far, 16, soft=False)
                self._hangup_channel(call, phone, 16)
                return
            wait = None if deadline is None else (deadline - time.monotonic()) / max(self.time_scale, 1e-6)
            await self._wait(call, wait)

    async def _wait_ring(self, call: SimCall, ring: float) -> None:
        deadline = time.monotonic() + self._s(ring)
        while time.monotonic() < deadline and not call.requests:
            await self._wait(call, (deadline - time.monotonic()) / max(self.time_scale, 1e-6))

    def _cleanup_outbound(self, call: SimCall) -> None:
        for ch in list(self.channels.values()):
            if ch.call is call:
                self._hangup_channel(call, ch, 16)

    async def _run_originate(self, call: SimCall, action_id: str | None, endpoint: str, fields: dict[str, str],
                             ext: str) -> None:
        phone = call.caller
        assert phone is not None
        try:
            self._emit(call, sc.chan_event("Newchannel", phone))
            self._emit(call, sc.dial_event("DialBegin", None, phone, DialString=endpoint.split("/", 1)[1]))
            self._set_state(call, phone, 5)
            deadline = time.monotonic() + self._s(self.originate_ring_seconds)
            answered = False
            while time.monotonic() < deadline:
                reqs = self._take(call)
                if any(r[0] == "answer" for r in reqs):
                    answered = True
                    break
                if any(r[0] == "hangup" for r in reqs):
                    break
                await self._wait(call, (deadline - time.monotonic()) / max(self.time_scale, 1e-6))
            else:
                answered = True
            if not answered:
                self._emit(call, sc.dial_event("DialEnd", None, phone, DialStatus="CANCEL"))
                self._originate_response(action_id, phone, fields, ok=False)
                self._hangup_channel(call, phone, 16)
                return
            self._set_state(call, phone, 6)
            self._emit(call, sc.dial_event("DialEnd", None, phone, DialStatus="ANSWER"))
            self._originate_response(action_id, phone, fields, ok=True)
            if fields.get("Application"):
                self._exten(call, phone, fields["Application"], fields.get("Data", ""))
                await self._wait(call, self.default_talk_seconds)
                for req in self._take(call):
                    if req[0] == "hangup":
                        self._hangup_channel(call, phone, req[2])
                self._hangup_channel(call, phone, 16)
                return
            phone.context, phone.exten = fields.get("Context", ""), fields.get("Exten", "")
            await self._dial_out(call, phone, phone.exten, 1.0, self.default_talk_seconds)
        finally:
            self._cleanup_outbound(call)

    def _originate_response(self, action_id: str | None, ch: Channel, fields: dict[str, str], *, ok: bool) -> None:
        pairs: list[tuple[str, str]] = [("Event", "OriginateResponse")]
        if action_id is not None:
            pairs.append(("ActionID", action_id))
        pairs += [("Response", "Success" if ok else "Failure"), ("Channel", ch.name if ok else fields["Channel"])]
        if fields.get("Application"):
            pairs += [("Application", fields["Application"]), ("Data", fields.get("Data", ""))]
        else:
            pairs += [("Context", fields.get("Context", "")), ("Exten", fields.get("Exten", ""))]
        pairs += [("Reason", "4" if ok else "0"), ("Uniqueid", ch.uniqueid if ok else "<null>"),
                  ("CallerIDNum", sc._cid(ch.caller_num)), ("CallerIDName", sc._cid(ch.caller_name))]
        self._emit(ch.call, pairs)

    # ------------------------------------------------------------------------------------- MixMonitor

    def _start_mixmonitor(self, call: SimCall | None, ch: Channel, file: str) -> None:
        path = Path(file)
        if not path.is_absolute():
            path = self.recordings_dir / path
        old = self.recorders.pop(ch.name, None)
        if old is not None:
            old.close()
        self.recorders[ch.name] = _Recorder(path, self.time_scale)
        self._var(call, ch, "MIXMONITOR_FILENAME", str(path))
        if self._pump_task is None or self._pump_task.done():
            self._pump_task = asyncio.get_running_loop().create_task(self._pump())
        self._ev(call, "MixMonitorStart", ch)

    def _stop_mixmonitor(self, call: SimCall | None, ch: Channel) -> bool:
        rec = self.recorders.pop(ch.name, None)
        if rec is None:
            return False
        rec.close()
        self._ev(call, "MixMonitorStop", ch)
        return True

    async def _pump(self) -> None:
        while self.recorders:
            for rec in list(self.recorders.values()):
                try:
                    rec.pump()
                except OSError:
                    log.exception("simulated MixMonitor: cannot write %s", rec.path)
            await asyncio.sleep(0.05)

    # ------------------------------------------------------------------------------------- actions

    def _register(self) -> None:
        handlers = {
            "Originate": self._a_originate, "Redirect": self._a_redirect, "Hangup": self._a_hangup,
            "BlindTransfer": self._a_blind, "Atxfer": self._a_atxfer, "CancelAtxfer": self._a_cancel_atxfer,
            "QueueAdd": self._a_queue_add, "QueueRemove": self._a_queue_remove, "QueuePause": self._a_queue_pause,
            "QueueStatus": self._a_queue_status, "QueueSummary": self._a_queue_summary,
            "MixMonitor": self._a_mixmonitor, "StopMixMonitor": self._a_stop_mixmonitor,
            "DBPut": self._a_dbput, "DBGet": self._a_dbget, "DBGetTree": self._a_dbgettree, "DBDel": self._a_dbdel,
            "DBDelTree": self._a_dbdeltree, "Getvar": self._a_getvar, "Setvar": self._a_setvar,
            "CoreShowChannels": self._a_core_show_channels, "Status": self._a_status, "PlayDTMF": self._a_playdtmf,
        }
        for name, handler in handlers.items():
            self.ami.register_action(name, handler)
        self.ami.register_command("core show channels", lambda cli: sc.core_show_channels_text(
            [c for c in self.channels.values() if c.alive], self.processed))

    def _a_originate(self, action: AMIAction) -> ActionReply:
        msg = action.message
        endpoint = msg.get("Channel")
        if not endpoint:
            return error("Channel not specified")
        fields = {k: msg.get(k) or "" for k in ("Channel", "Context", "Exten", "Application", "Data")}
        if not fields["Application"] and not fields["Exten"]:
            return error("Exten not specified")
        caller_id = msg.get("CallerID") or ""
        name, num = "", caller_id
        if "<" in caller_id:
            name, _, rest = caller_id.partition("<")
            name, num = name.strip().strip('"'), rest.rstrip(">").strip()
        tech, _, rest = endpoint.partition("/")
        ext = rest.split("@", 1)[0].split("-", 1)[0]
        ch = self._new_channel(f"{tech}/{ext}-{self._next_seq():08x}", context=fields["Context"] or "default",
                               exten=fields["Exten"] or "s", caller_num=num, caller_name=name, role="phone",
                               extension=ext)
        for raw in msg.getall("Variable"):
            key, _, value = raw.partition("=")
            ch.variables[key] = value
        call = SimCall(linkedid=ch.linkedid, caller_channel=ch.name, caller=ch, direction="out",
                       agent_channel=ch.name, agent_phone_channel=ch.name, agent_extension=ext)
        ch.call = call
        self.calls.append(call)
        if ext not in self.agents and not tech.lower().startswith("local"):
            self.channels.pop(ch.name, None)
            ch.alive = False

            async def fail() -> None:
                await asyncio.sleep(self._s(0.1))
                self._originate_response(action.action_id, ch, fields, ok=False)

            call.done = self._spawn(fail())
        else:
            call.done = self._spawn(self._run_originate(call, action.action_id, endpoint, fields, ext))
        return success("Originate successfully queued")

    def _channel_or_error(self, action: AMIAction, missing: str = "No channel specified"
                          ) -> tuple[Channel | None, ActionReply | None]:
        name = action.message.get("Channel")
        if not name:
            return None, error(missing)
        ch = self._find(name)
        if ch is None:
            return None, error(NO_SUCH_CHANNEL)
        return ch, None

    def _a_redirect(self, action: AMIAction) -> ActionReply:
        msg = action.message
        name = msg.get("Channel")
        if not name:
            return error("Channel not specified")
        if not msg.get("Context"):
            return error("Context not specified")
        if not msg.get("Exten"):
            return error("Exten not specified")
        ch = self._find(name)
        if ch is None:
            return error(f"Channel does not exist: {name}")
        extra = self._find(msg.get("ExtraChannel"))
        if msg.get("ExtraChannel") and extra is None:
            return error(f"Channel does not exist: {msg.get('ExtraChannel')}")
        context, exten = msg.get("Context") or "", msg.get("Exten") or ""
        if ch.call is not None and ch is ch.call.caller and ch.call.phase == "ivr" and ch.call.redirect is None:
            # Redirect out of a running AGI: the script gets HANGUP, the channel goes on at the new place.
            ch.call.redirect = (context, exten)
            self._end_agi(ch.call)
            self._start_redirect(ch.call)
        elif ch.call is not None:
            if ch.role == "caller" or ch is ch.call.caller:
                self._request(ch.call, "redirect", ch, context, exten)
            else:
                # An agent leg sent elsewhere leaves the call: for the caller that is the agent hanging up.
                self._request(ch.call, "hangup", ch, 16)
        if extra is not None and extra.call is not None and extra is not ch:
            self._request(extra.call, "hangup", extra, 16)
        return success("Redirect successful")

    def _a_hangup(self, action: AMIAction) -> ActionReply:
        ch, err = self._channel_or_error(action)
        if err is not None:
            return err
        assert ch is not None
        raw = action.message.get("Cause")
        cause = int(raw) if raw and raw.isdigit() else 0
        self._hangup_request(ch, cause)
        return success("Channel Hungup")

    def _hangup_request(self, ch: Channel, cause: int) -> None:
        call = ch.call
        if call is None:
            return
        if ch is call.caller and call.phase == "ivr" and call.redirect is None:
            ch.hangup_cause = cause  # the Hangup event follows when contactd closes the AGI session
            self._end_agi(call)
        else:
            self._request(call, "hangup", ch, cause)

    @staticmethod
    def _end_agi(call: SimCall) -> None:
        if call.behaviour is not None:
            call.behaviour.hangup_after = 0  # HANGUP notice after the next reply, as res_agi sends it

    def _transfer_args(self, action: AMIAction) -> tuple[Channel | None, ActionReply | None, str, str]:
        ch, err = self._channel_or_error(action)
        exten = action.message.get("Exten") or ""
        context = action.message.get("Context") or self.config.agent_context
        if err is None and not exten:
            err = error("No extension specified")
        return ch, err, exten, context

    def _a_blind(self, action: AMIAction) -> ActionReply:
        ch, err, exten, context = self._transfer_args(action)
        if err is not None:
            return err
        assert ch is not None
        call = ch.call
        if call is None or call.agent is None or ch.bridge is None and ch not in call.agent.channels:
            return error("Transfer failed")
        self._request(call, "blind", ch, exten, context)
        return success("Transfer succeeded")

    def _a_atxfer(self, action: AMIAction) -> ActionReply:
        ch, err, exten, context = self._transfer_args(action)
        if err is not None:
            return err
        assert ch is not None
        call = ch.call
        if call is None or call.agent is None or ch not in call.agent.channels:
            return error("No active call to transfer")
        self._request(call, "atxfer", ch, exten, context)
        return success("Atxfer successfully queued")

    def _a_cancel_atxfer(self, action: AMIAction) -> ActionReply:
        ch, err = self._channel_or_error(action)
        if err is not None:
            return err
        assert ch is not None
        if ch.call is None or ch.call.consult is None:
            return error("No attended transfer in progress")
        self._request(ch.call, "cancel_atxfer", ch)
        return success("CancelAtxfer successfully queued")

    # queues ------------------------------------------------------------------------------------------

    def _a_queue_add(self, action: AMIAction) -> ActionReply:
        msg = action.message
        qname, iface = msg.get("Queue") or "", msg.get("Interface") or ""
        if not qname or not iface:
            return error("'Queue' and 'Interface' not specified.")
        q = self.queues.get(qname)
        if q is None:
            return error("Unable to add interface to queue: No such queue")
        if iface in q.members:
            return error("Unable to add interface: Already there")
        penalty = msg.get("Penalty") or "0"
        member = Member(iface, msg.get("MemberName") or iface, msg.get("StateInterface") or iface,
                        membership="dynamic", penalty=int(penalty) if penalty.isdigit() else 0,
                        paused=_truthy(msg.get("Paused")), status=1)
        q.members[iface] = member
        self._emit(None, sc.member_event("QueueMemberAdded", q, member))
        return success("Added interface to queue")

    def _a_queue_remove(self, action: AMIAction) -> ActionReply:
        msg = action.message
        q = self.queues.get(msg.get("Queue") or "")
        iface = msg.get("Interface") or ""
        if q is None:
            return error("Unable to remove interface from queue: No such queue")
        member = q.members.get(iface)
        if member is None:
            return error("Unable to remove interface: Not there")
        if member.membership == "static":
            return error("Unable to remove interface: Static member")
        del q.members[iface]
        self._emit(None, sc.member_event("QueueMemberRemoved", q, member))
        return success("Removed interface from queue")

    def _a_queue_pause(self, action: AMIAction) -> ActionReply:
        msg = action.message
        iface = msg.get("Interface") or ""
        if not iface:
            return error("Need 'Interface' and 'Paused' fields")
        paused = _truthy(msg.get("Paused"))
        queues = [self.queues[msg["Queue"]]] if msg.get("Queue") in self.queues else (
            [] if msg.get("Queue") else list(self.queues.values()))
        found = False
        for q in queues:
            member = q.members.get(iface)
            if member is None:
                continue
            found = True
            member.paused = paused
            member.reason = (msg.get("Reason") or "") if paused else ""
            if paused:
                member.last_pause = int(time.time())
            self._emit(None, sc.member_event("QueueMemberPause", q, member))
        if not found:
            return error("Interface not found")
        return success("Interface paused successfully" if paused else "Interface unpaused successfully")

    def _a_queue_status(self, action: AMIAction) -> ActionReply:
        wanted = action.message.get("Queue")
        events: list[list[tuple[str, str]]] = []
        for q in self.queues.values():
            if wanted and q.name != wanted:
                continue
            events.append(sc.queue_params(q))
            events += [sc.queue_member_item(q, m) for m in q.members.values()]
            events += [sc.queue_entry(q, i, ch) for i, ch in enumerate(q.callers, 1)]
        return list_reply("QueueStatusComplete", events, message="Queue status will follow")

    def _a_queue_summary(self, action: AMIAction) -> ActionReply:
        wanted = action.message.get("Queue")
        events = [sc.queue_summary(q) for q in self.queues.values() if not wanted or q.name == wanted]
        return list_reply("QueueSummaryComplete", events, message="Queue summary will follow")

    # MixMonitor --------------------------------------------------------------------------------------

    def _a_mixmonitor(self, action: AMIAction) -> ActionReply:
        ch, err = self._channel_or_error(action)
        if err is not None:
            return err
        assert ch is not None
        file = action.message.get("File") or f"{ch.uniqueid}.wav"
        try:
            self._start_mixmonitor(ch.call, ch, file)
        except OSError as exc:
            log.warning("simulated MixMonitor: cannot open %s: %s", file, exc)
            return error("Could not start monitoring channel")
        return success()

    def _a_stop_mixmonitor(self, action: AMIAction) -> ActionReply:
        ch, err = self._channel_or_error(action)
        if err is not None:
            return err
        assert ch is not None
        if not self._stop_mixmonitor(ch.call, ch):
            return error("Could not stop monitoring channel")
        return success()

    # AstDB -------------------------------------------------------------------------------------------

    @staticmethod
    def _db_key(family: str, key: str) -> str:
        return f"/{family}/{key}"

    def _a_dbput(self, action: AMIAction) -> ActionReply:
        msg = action.message
        family, key = msg.get("Family"), msg.get("Key")
        if not family:
            return error("No family specified")
        if not key:
            return error("No key specified")
        self.astdb[self._db_key(family, key)] = msg.get("Val") or ""
        return success("Updated database successfully")

    def _a_dbget(self, action: AMIAction) -> ActionReply:
        msg = action.message
        family, key = msg.get("Family"), msg.get("Key")
        if not family:
            return error("No family specified.")
        if not key:
            return error("No key specified.")
        value = self.astdb.get(self._db_key(family, key))
        if value is None:
            return error("Database entry not found")
        return list_reply("DBGetComplete", [[("Event", "DBGetResponse"), ("Family", family), ("Key", key),
                                             ("Val", value), ("ActionID", "")]], message="Result will follow")

    def _a_dbgettree(self, action: AMIAction) -> ActionReply:
        msg = action.message
        family, key = msg.get("Family") or "", msg.get("Key") or ""
        prefix = f"/{family}" + (f"/{key}" if key else "")
        items = [[("Event", "DBGetTreeResponse"), ("Key", k), ("Val", v), ("ActionID", "")]
                 for k, v in sorted(self.astdb.items()) if k == prefix or k.startswith(prefix + "/")]
        return list_reply("DBGetTreeComplete", items, message="Result will follow")

    def _a_dbdel(self, action: AMIAction) -> ActionReply:
        msg = action.message
        family, key = msg.get("Family"), msg.get("Key")
        if not family:
            return error("No family specified.")
        if not key:
            return error("No key specified.")
        if self.astdb.pop(self._db_key(family, key), None) is None:
            return error("Database entry not found")
        return success("Key deleted successfully")

    def _a_dbdeltree(self, action: AMIAction) -> ActionReply:
        msg = action.message
        family, key = msg.get("Family"), msg.get("Key")
        if not family:
            return error("No family specified.")
        prefix = f"/{family}" + (f"/{key}" if key else "")
        doomed = [k for k in self.astdb if k == prefix or k.startswith(prefix + "/")]
        if not doomed:
            return error("Database entry not found")
        for k in doomed:
            del self.astdb[k]
        return success("Key tree deleted successfully")

    # variables ---------------------------------------------------------------------------------------

    def _channel_function(self, ch: Channel, variable: str) -> str:
        upper = variable.upper()
        known = {
            "CHANNEL(STATE)": ch.state_desc, "CHANNEL(NAME)": ch.name, "CHANNEL": ch.name,
            "UNIQUEID": ch.uniqueid, "CHANNEL(LINKEDID)": ch.linkedid, "CALLERID(NUM)": ch.caller_num,
            "CALLERID(NAME)": ch.caller_name, "CONTEXT": ch.context, "EXTEN": ch.exten,
            "CONNECTEDLINE(NUM)": ch.connected_num, "CONNECTEDLINE(NAME)": ch.connected_name,
            "BRIDGEPEER": ch.variables.get("BRIDGEPEER", ""),
        }
        if upper in known:
            return known[upper]
        return ch.variables.get(variable, self.globals.get(variable, ""))

    def _a_getvar(self, action: AMIAction) -> ActionReply:
        msg = action.message
        variable = msg.get("Variable")
        if not variable:
            return error("No variable specified")
        name = msg.get("Channel")
        if name:
            ch = self._find(name)
            if ch is None:
                return error(NO_SUCH_CHANNEL)
            value = self._channel_function(ch, variable)
        else:
            value = self.globals.get(variable, "")
        return success(None, Variable=variable, Value=value)

    def _a_setvar(self, action: AMIAction) -> ActionReply:
        msg = action.message
        variable = msg.get("Variable")
        if not variable:
            return error("No variable specified")
        value = msg.get("Value") or ""
        name = msg.get("Channel")
        if name:
            ch = self._find(name)
            if ch is None:
                return error(NO_SUCH_CHANNEL)
            self._var(ch.call, ch, variable, value)
        else:
            self.globals[variable] = value
        return success("Variable Set")

    # status ------------------------------------------------------------------------------------------

    def _a_core_show_channels(self, action: AMIAction) -> ActionReply:
        events = [sc.core_show_channel(ch) for ch in self.channels.values() if ch.alive]
        return list_reply("CoreShowChannelsComplete", events, message="Channels will follow")

    def _a_status(self, action: AMIAction) -> ActionReply:
        name = action.message.get("Channel")
        if name:
            ch = self._find(name)
            if ch is None:
                return error(NO_SUCH_CHANNEL)
            chans = [ch]
        else:
            chans = [c for c in self.channels.values() if c.alive]
        return list_reply("StatusComplete", [sc.status_item(c) for c in chans], message="Channel status will follow",
                          Items=len(chans))

    def _a_playdtmf(self, action: AMIAction) -> ActionReply:
        ch, err = self._channel_or_error(action, "No channel specified")
        if err is not None:
            return err
        assert ch is not None
        digit = action.message.get("Digit")
        if not digit:
            return error("No digit specified")
        duration = action.message.get("Duration") or "250"
        if _truthy(action.message.get("Receive")):
            self._ev(ch.call, "DTMFEnd", ch, ("Digit", digit), ("DurationMs", "0"), ("Direction", "Received"))
        else:
            peer = next((c for c in (ch.bridge.channels if ch.bridge else []) if c is not ch), ch)
            self._ev(ch.call, "DTMFBegin", peer, ("Digit", digit), ("Direction", "Received"))
            self._ev(ch.call, "DTMFEnd", peer, ("Digit", digit), ("DurationMs", duration), ("Direction", "Received"))
        return success("DTMF successfully queued")
