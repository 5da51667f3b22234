"""The call tracker: folds AMI events into live calls, publishes call.* domain events, writes one CDR per call.

A call is everything that shares one Asterisk ``Linkedid``: both halves of Local channels (``;1``/``;2``),
queue member legs, transfer targets. What the folding relies on (asterisk-traces/, Asterisk 22):

- the caller's first channel has ``Uniqueid == Linkedid``; it and its Local twin are the *originator side*;
  every other leg is a *far* leg (an agent phone, a dialled number);
- agent legs are recognised by channel name: ``PJSIP/1001-0000000a``, ``SIP/1001-...``,
  ``Local/1001@<agent context>-00000004;1`` (queue members, ``Interface: Local/1001@agent-phones/n``);
  the ``Exten`` of a Local agent ``;1`` half changes to the caller's (``Exten: 200``): trust the name;
- ringing = ``AgentCalled`` / ``DialBegin`` / ``DialState RINGING`` / ``Newstate 5`` on a far agent leg;
  answered = a far leg going ``Up``, ``AgentConnect`` or a bridge joining both sides;
- ``QueueCallerLeave`` happens for answered calls too: only ``QueueCallerAbandon`` means abandoned;
- one ``Cdr`` event per channel and ``Cdr``s still arrive after the last ``Hangup``: the row is written
  when the last leg of the Linkedid hangs up, never per Cdr event;
- ``BlindTransfer`` names the target as ``Context``/``Extension``; ``AttendedTransfer`` does not name it:
  the target is the leg left in ``DestBridgeUniqueid`` (after ``BridgeMerge``) beside the transferee.
  With Atxfer the consult legs inherit the transferer's Linkedid; with phones doing their own attended
  transfer the consult call has its own Linkedid: `AttendedTransfer` then merges that second call into
  the original one (legs re-homed, the second Linkedid aliased), so a transfer yields ONE CDR whose agent is
  the final agent;
- ``MIXMONITOR_FILENAME`` is reliable for AMI ``MixMonitor`` (absolute File:), but for a dialplan
  ``MixMonitor(relative.wav)`` Asterisk 22 set it to the directory (``/var/lib/asterisk``): then the
  ``Newexten`` AppData file name is kept instead.

Disposition is the contact-center view: ANSWERED means a person answered (an agent for inbound, the far
party for outbound/internal); a caller who only heard the IVR is NO ANSWER even though Asterisk's own CDR
says ANSWERED. billsec counts from that answer.

The AMI handler is synchronous and does no I/O; bus publishing and CDR writes happen in the tracker's own two
tasks (one per lane, so a stalled database never delays a screen-pop), the publishes fed through a bounded outbox
(beyond it they are dropped and counted in `overflows`; CDR rows are never dropped). `call.ended` goes out from the
CDR lane once the row is written.

Several nodes on one Asterisk (telephony/leadership.py): every node's tracker folds every event, so call control
works anywhere, but only the leader publishes and writes CDRs. A follower keeps the rows of calls that ended
for a while; on promotion it re-syncs and writes those the old leader never wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select

from contactd.config import PBXConfig
from contactd.store.models.calls import Call
from contactd.store.models.customers import Customer
from contactd.store.spool import RowSpool

log = logging.getLogger(__name__)

# Events the tracker folds; everything else (CEL, Newexten noise, DeviceStateChange...) is never dispatched to us
# except Newexten, which we need for dialplan MixMonitor and click-to-call contexts.
TRACKED_EVENTS = (
    "Newchannel", "Newstate", "NewCallerid", "Newexten", "VarSet", "Rename",
    "DialBegin", "DialState", "DialEnd", "OriginateResponse",
    "QueueCallerJoin", "QueueCallerAbandon", "AgentCalled", "AgentConnect",
    "BridgeEnter", "BridgeLeave", "BridgeMerge", "BlindTransfer", "AttendedTransfer",
    "MixMonitorStart", "Hangup",
)

IVR_CHOICE_VARIABLE = "CONTACTD_IVR_CHOICE"
STATE_RINGING = 5
STATE_UP = 6
BUSY_CAUSES = frozenset({17})
# unallocated number, no route, out of order, congestion, network out of order, temporary failure...
FAILED_CAUSES = frozenset({1, 2, 3, 27, 28, 34, 38, 41, 42, 44, 58, 88})
EXTENSION_RE = re.compile(r"^\d{1,4}$")
_UNKNOWN = ("", "<unknown>", "<Unknown>")


def _now() -> datetime:
    return datetime.now(UTC)


def _clean(value: str | None) -> str:
    return "" if value is None or value in _UNKNOWN else value


def normalize_number(raw: str | None) -> str:
    """Digits only (the design's storage form); `+82 10...` becomes `010...`; SIP user names stay as they are."""
    value = _clean(raw).strip()
    if not value or not re.fullmatch(r"[+\d\s().-]+", value):
        return value
    digits = re.sub(r"\D", "", value)
    if value.startswith("+82"):
        return "0" + digits[2:].lstrip("0")
    return digits


def local_base(channel: str) -> str | None:
    """`Local/1001@ctx-00000004;1` -> `Local/1001@ctx-00000004` (the pair's common name), else None."""
    if channel.startswith("Local/") and len(channel) > 2 and channel[-2] == ";" and channel[-1] in "12":
        return channel[:-2]
    return None


class AgentChannels:
    """Tells which channel names (and queue member interfaces) belong to agent phones."""

    def __init__(self, agent_contexts: Iterable[str]) -> None:
        contexts = "|".join(re.escape(c) for c in agent_contexts)
        self._direct = re.compile(r"^(?:PJSIP|SIP|IAX2|DAHDI)/(\d{1,4})(?:-[0-9a-fA-F]+)?$")
        self._local = re.compile(rf"^Local/(\d{{1,4}})@(?:{contexts})(?:-[0-9a-fA-F]+;[12]|/n)?$") if contexts \
            else None

    def extension(self, channel: str | None) -> str | None:
        if not channel:
            return None
        m = self._direct.match(channel)
        if m is None and self._local is not None:
            m = self._local.match(channel)
        return m.group(1) if m else None


@dataclass
class Leg:
    uniqueid: str
    channel: str
    linkedid: str
    extension: str | None  # agent extension when this is an agent phone's leg
    originator: bool  # the caller's first channel or its Local twin
    state: int = 0
    exten: str = ""
    context: str = ""
    caller_number: str = ""
    caller_name: str = ""
    up: bool = False
    seq: int = 0  # tracker event counter when last touched (re-sync ordering)


@dataclass
class LiveCall:
    linkedid: str
    uniqueid: str  # the first (caller's) channel
    started_at: datetime
    direction: str = "in"
    caller_number: str = ""
    caller_name: str = ""
    dialed: str = ""  # DID for inbound, the dialled number/extension otherwise
    agent_extension: str | None = None
    agent_channel: str | None = None
    originator_extension: str | None = None  # the agent whose phone placed an out/internal call
    answered_at: datetime | None = None
    queue: str | None = None
    queued_at: datetime | None = None
    wait_seconds: int | None = None
    abandoned: bool = False
    transferred: bool = False
    ivr_choice: str | None = None
    recording_path: str | None = None
    recordings: list[str] = field(default_factory=list)
    legs: dict[str, Leg] = field(default_factory=dict)
    caller_leg: str | None = None  # uniqueid of the caller leg that sits in queue/bridge (Redirect target)
    ringing_sent: set[str] = field(default_factory=set)
    answered_sent: set[str] = field(default_factory=set)
    transfer_keys: set[tuple[str, ...]] = field(default_factory=set)
    awaiting_transfer_answer: bool = False
    dial_statuses: list[str] = field(default_factory=list)
    far_causes: list[int] = field(default_factory=list)
    pending_recording: str | None = None
    adopted: bool = False  # rebuilt from CoreShowChannels after a (re)connect

    @property
    def caller_channel(self) -> str | None:
        if self.caller_leg and self.caller_leg in self.legs:
            return self.legs[self.caller_leg].channel
        originators = [leg for leg in self.legs.values() if leg.originator]
        # The ;2 half of a Local pair is the one running our dialplan (queue, AGI): prefer it.
        for leg in originators:
            if leg.channel.endswith(";2"):
                return leg.channel
        return originators[0].channel if originators else None

    @property
    def answered(self) -> bool:
        return self.answered_at is not None


class CallTracker:
    """Folds AMI events into `live_calls` (Linkedid -> LiveCall); see the module docstring."""

    def __init__(self, ami: Any, bus: Any, db: Any, pbx_config: PBXConfig | None = None, *,
                 agent_contexts: Iterable[str] | None = None, outbox_size: int = 10000,
                 clock: Callable[[], datetime] = _now, remember_ended: int = 10000,
                 publish_timeout: float = 5.0, leadership: Any = None, standby_keep: float = 600.0,
                 cdr_spool: str | Path | None = None, spool_retry: float = 5.0) -> None:
        self.ami = ami
        self.bus = bus
        self.db = db
        self.config = pbx_config or PBXConfig()
        contexts = tuple(agent_contexts) if agent_contexts is not None else (self.config.agent_context,)
        self.agents = AgentChannels(contexts)
        self.clock = clock
        self.outbox_size = outbox_size
        self.publish_timeout = publish_timeout
        # Several nodes on one Asterisk (telephony/leadership.py): every node folds every event, but only the
        # leader publishes call.* and writes CDRs. None = always the leader (one node).
        self.leadership = leadership
        self.standby_keep = standby_keep
        # Follower only: CDR rows of calls that ended here, kept for `standby_keep` seconds. On promotion the
        # ones the old leader never wrote (it died before their hang-up) are written; linkedid keeps it idempotent.
        self._standby: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._takeover_task: asyncio.Task[None] | None = None
        self._leadership_hooked = False
        # CDRs the database refused through every retry wait here, on disk, and are written when it is back.
        self.spool = RowSpool(cdr_spool) if cdr_spool is not None else None
        self.spool_retry = spool_retry
        self._spool_task: asyncio.Task[None] | None = None
        self.live_calls: dict[str, LiveCall] = {}
        self.overflows = 0
        self.errors = 0
        self.cdrs_written = 0
        self._leg_call: dict[str, LiveCall] = {}  # uniqueid -> call
        self._alias: dict[str, str] = {}  # merged Linkedid -> Linkedid it was folded into
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._dead: OrderedDict[str, None] = OrderedDict()  # uniqueids that hung up
        self._remember = remember_ended
        self._bridges: dict[str, set[str]] = {}
        self._pending_ivr: OrderedDict[str, str] = OrderedDict()
        self._seq = 0
        self._outbox: deque[tuple[str, Any]] = deque()
        self._queued_publishes = 0
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._worker: asyncio.Task[None] | None = None
        # CDR rows have their own lane: a stalled database must never hold back screen-pops queued after a row.
        self._cdr_outbox: deque[tuple[str, Any]] = deque()
        self._cdr_wakeup = asyncio.Event()
        self._cdr_idle = asyncio.Event()
        self._cdr_idle.set()
        self._cdr_worker: asyncio.Task[None] | None = None
        self._resync_task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], Any] | None = None
        self._handlers: dict[str, Callable[[Any], None]] = {
            "Newchannel": self._on_newchannel, "Newstate": self._on_newstate,
            "NewCallerid": self._on_newcallerid, "Newexten": self._on_newexten, "VarSet": self._on_varset,
            "Rename": self._on_rename, "DialBegin": self._on_dialbegin, "DialState": self._on_dialstate,
            "DialEnd": self._on_dialend, "OriginateResponse": self._on_originate_response,
            "QueueCallerJoin": self._on_queue_join, "QueueCallerAbandon": self._on_queue_abandon,
            "AgentCalled": self._on_agent_called, "AgentConnect": self._on_agent_connect,
            "BridgeEnter": self._on_bridge_enter, "BridgeLeave": self._on_bridge_leave,
            "BridgeMerge": self._on_bridge_merge, "BlindTransfer": self._on_blind_transfer,
            "AttendedTransfer": self._on_attended_transfer, "MixMonitorStart": self._on_mixmonitor_start,
            "Hangup": self._on_hangup,
        }

    # ------------------------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Subscribe to the AMI client and start the writer task; re-sync runs after every (re)login."""
        if self._worker is None:
            self._worker = asyncio.create_task(self._run_worker(self._outbox, self._wakeup, self._idle),
                                               name="call-tracker-publisher")
        if self._cdr_worker is None:
            self._cdr_worker = asyncio.create_task(
                self._run_worker(self._cdr_outbox, self._cdr_wakeup, self._cdr_idle), name="call-tracker-writer")
        if self.spool is not None and self._spool_task is None:
            self._spool_task = asyncio.create_task(self._run_spool(), name="call-tracker-cdr-spool")
        if self.leadership is not None and not self._leadership_hooked:
            self._leadership_hooked = True  # Leadership has no way to remove a callback: register once
            self.leadership.on_change(self._on_leadership)
        if self.ami is not None and self._unsubscribe is None:
            self._unsubscribe = self.ami.subscribe(self.handle, *TRACKED_EVENTS)
            self.ami.add_connect_listener(self._on_connect)
            if getattr(self.ami, "connected", False):
                await self.resync()

    async def stop(self, timeout: float = 5.0) -> None:
        if self._unsubscribe is not None:
            with contextlib.suppress(Exception):
                self._unsubscribe()
            self._unsubscribe = None
        with contextlib.suppress(asyncio.TimeoutError):
            await self.flush(timeout)
        for task in (self._worker, self._cdr_worker, self._resync_task, self._takeover_task, self._spool_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._spool_task = None
        self._worker = None
        self._cdr_worker = None
        self._resync_task = None
        self._takeover_task = None

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait until everything queued so far is published/written (tests, shutdown)."""
        async def drained() -> None:
            while self._outbox or self._cdr_outbox or not self._idle.is_set() or not self._cdr_idle.is_set():
                await self._idle.wait()
                await self._cdr_idle.wait()
                await asyncio.sleep(0)
        await asyncio.wait_for(drained(), timeout)

    @property
    def leading(self) -> bool:
        """True when this node publishes call.* events and writes CDRs (the AMI stream's owner)."""
        return self.leadership is None or bool(self.leadership.is_leader)

    async def _on_leadership(self, leading: bool) -> None:
        if not leading or self._worker is None:
            return  # stepping down needs nothing: _publish/_end look at the flag; a stopped tracker ignores it
        log.info("call tracker: this node now owns the AMI stream; re-syncing live calls")
        # Held so stop() can cancel it; the leadership task awaiting us is cancelled on its own stop().
        self._takeover_task = asyncio.current_task()  # type: ignore[assignment]
        try:
            await self.resync()
            await self._write_standby()
        finally:
            self._takeover_task = None

    async def _write_standby(self) -> None:
        """Write the CDRs of calls that ended while no node was leading (the old leader died first)."""
        self._prune_standby()
        if not self._standby:
            return
        rows = [row for _, row in self._standby.values()]
        self._standby.clear()
        linkedids = [row["linkedid"] for row in rows]
        async with self.db.session() as session:
            written = set(await session.scalars(select(Call.linkedid).where(Call.linkedid.in_(linkedids))))
        for row in rows:
            if row["linkedid"] not in written:
                log.info("call tracker: writing CDR of %s, which ended during the leader change", row["linkedid"])
                self._enqueue(("cdr", row), droppable=False)

    def _prune_standby(self) -> None:
        horizon = time.monotonic() - self.standby_keep
        while self._standby:
            first = next(iter(self._standby.values()))
            if first[0] >= horizon and len(self._standby) <= self._remember:
                break
            self._standby.popitem(last=False)

    async def _on_connect(self, *_: Any) -> None:
        # The AMI client has no way to remove a connect listener: a stopped tracker just ignores it.
        if self._unsubscribe is not None:
            await self.resync()

    # ------------------------------------------------------------------------------------------- public API

    def get(self, linkedid_or_uniqueid: str) -> LiveCall | None:
        call = self._leg_call.get(linkedid_or_uniqueid)
        if call is not None:
            return call
        return self.live_calls.get(self._alias.get(linkedid_or_uniqueid, linkedid_or_uniqueid))

    def call_for_extension(self, extension: str) -> LiveCall | None:
        """The live call this agent is on: answered by them first, else one ringing on their phone."""
        ringing = None
        for call in self.live_calls.values():
            if call.agent_extension == extension and call.answered:
                return call
            if ringing is None and any(leg.extension == extension and not leg.originator
                                       for leg in call.legs.values()):
                ringing = call
            if ringing is None and call.agent_extension == extension:
                ringing = call
        return ringing

    def set_ivr_choice(self, uniqueid: str, choice: str) -> None:
        call = self.get(uniqueid)
        if call is None:
            # The AGI session may run before we saw the channel's first event: apply when it shows up.
            self._pending_ivr[uniqueid] = choice
            while len(self._pending_ivr) > 1000:
                self._pending_ivr.popitem(last=False)
            return
        call.ivr_choice = choice

    # ------------------------------------------------------------------------------------------- dispatch

    def handle(self, msg: Any) -> None:
        """Synchronous AMI handler: fast, no I/O; one bad event never breaks the others."""
        handler = self._handlers.get(msg.event or "")
        if handler is None:
            return
        self._seq += 1
        try:
            handler(msg)
        except Exception:
            self.errors += 1
            log.exception("call tracker: failed to fold %s event", msg.event)

    def _event_time(self, msg: Any) -> datetime:
        # manager.conf `timestampevents = yes` adds `Timestamp: <epoch>`: more exact than our arrival time.
        stamp = msg.get("Timestamp")
        if stamp:
            with contextlib.suppress(ValueError, OverflowError, OSError):
                return datetime.fromtimestamp(float(stamp), UTC)
        return self.clock()

    def _remember_ended(self, linkedid: str) -> None:
        self._ended[linkedid] = None
        while len(self._ended) > self._remember:
            self._ended.popitem(last=False)

    def _mark_dead(self, uniqueid: str) -> None:
        self._dead[uniqueid] = None
        while len(self._dead) > self._remember * 4:
            self._dead.popitem(last=False)

    def _leg(self, msg: Any, *, create: bool = True) -> tuple[LiveCall, Leg] | None:
        """The call and leg of a channel event, creating them on first sight (never for a finished call)."""
        uniqueid = msg.get("Uniqueid")
        if not uniqueid:
            return None
        call = self._leg_call.get(uniqueid)
        if call is not None:
            leg = call.legs[uniqueid]
            leg.seq = self._seq
            return call, leg
        if not create or uniqueid in self._dead:
            return None
        channel = msg.get("Channel") or ""
        linkedid = msg.get("Linkedid") or uniqueid
        linkedid = self._alias.get(linkedid, linkedid)
        call = self.live_calls.get(linkedid)
        if call is None:
            if linkedid in self._ended:
                return None
            call = LiveCall(linkedid=linkedid, uniqueid=linkedid, started_at=self._event_time(msg))
            self.live_calls[linkedid] = call
        leg = self._add_leg(call, uniqueid, channel, msg)
        return call, leg

    def _add_leg(self, call: LiveCall, uniqueid: str, channel: str, msg: Any) -> Leg:
        base = local_base(channel)
        originator = uniqueid == call.linkedid or (
            base is not None and any(local_base(o.channel) == base for o in call.legs.values() if o.originator))
        leg = Leg(uniqueid=uniqueid, channel=channel, linkedid=call.linkedid,
                  extension=self.agents.extension(channel), originator=originator, seq=self._seq)
        try:
            leg.state = int(msg.get("ChannelState") or 0)
        except ValueError:
            leg.state = 0
        leg.exten = _clean(msg.get("Exten"))
        leg.context = msg.get("Context") or ""
        call.legs[uniqueid] = leg
        self._leg_call[uniqueid] = call
        self._update_callerid(call, leg, msg)
        if originator and uniqueid == call.linkedid:
            self._init_originator(call, leg)
        pending = self._pending_ivr.pop(uniqueid, None)
        if pending is not None:
            call.ivr_choice = pending
        return leg

    def _init_originator(self, call: LiveCall, leg: Leg) -> None:
        if leg.extension is not None:
            call.direction = "internal"
            call.originator_extension = leg.extension
            call.agent_extension = call.agent_extension or leg.extension
            # An agent phone dialling a long number is an outbound call (PJSIP/1001 -> Exten 01012345678).
            digits = normalize_number(leg.exten)
            if len(digits) > 4 and digits.isdigit():
                call.direction = "out"
                call.dialed = digits
        else:
            call.direction = "in"
            if leg.exten and leg.exten != "s":
                call.dialed = leg.exten
        if leg.context == self.config.click_to_call_context:
            call.direction = "out"

    def _update_callerid(self, call: LiveCall, leg: Leg, msg: Any) -> None:
        number = _clean(msg.get("CallerIDNum"))
        name = _clean(msg.get("CallerIDName"))
        if number:
            leg.caller_number = number
        if name:
            leg.caller_name = name
        if leg.originator and leg.uniqueid == call.linkedid:
            if number:
                call.caller_number = number
            if name:
                call.caller_name = name

    # ------------------------------------------------------------------------------------------- channel events

    def _on_newchannel(self, msg: Any) -> None:
        self._leg(msg)

    def _on_newcallerid(self, msg: Any) -> None:
        found = self._leg(msg)
        if found:
            self._update_callerid(found[0], found[1], msg)

    def _on_newstate(self, msg: Any) -> None:
        found = self._leg(msg)
        if not found:
            return
        call, leg = found
        self._update_callerid(call, leg, msg)
        try:
            leg.state = int(msg.get("ChannelState") or 0)
        except ValueError:
            return
        if leg.originator:
            return
        if leg.state == STATE_RINGING and leg.extension:
            self._ringing(call, leg.extension)
        elif leg.state == STATE_UP and not leg.up:
            leg.up = True
            self._answered(call, leg, self._event_time(msg))

    def _on_newexten(self, msg: Any) -> None:
        uniqueid = msg.get("Uniqueid")
        call = self._leg_call.get(uniqueid or "")
        if call is None:
            return
        leg = call.legs[uniqueid]
        app = msg.get("Application") or ""
        if app.lower() == "mixmonitor":
            filename = (msg.get("AppData") or "").split(",", 1)[0].strip()
            if filename:
                call.pending_recording = filename
        if leg.originator and (msg.get("Context") or "") == self.config.click_to_call_context:
            self._mark_outbound(call, msg.get("Exten"))

    def _mark_outbound(self, call: LiveCall, exten: str | None) -> None:
        call.direction = "out"
        number = normalize_number(exten)
        if number and number != "s":
            call.dialed = number

    def _on_varset(self, msg: Any) -> None:
        variable = msg.get("Variable") or ""
        if variable not in (IVR_CHOICE_VARIABLE, "MIXMONITOR_FILENAME"):
            return
        found = self._leg(msg)
        if not found:
            return
        call = found[0]
        value = msg.get("Value") or ""
        if variable == IVR_CHOICE_VARIABLE:
            if value:
                call.ivr_choice = value
        elif "." in value.rsplit("/", 1)[-1]:
            call.pending_recording = value

    def _on_rename(self, msg: Any) -> None:
        call = self._leg_call.get(msg.get("Uniqueid") or "")
        new = msg.get("Newname")
        if call is not None and new:
            leg = call.legs[msg["Uniqueid"]]
            if call.agent_channel == leg.channel:
                call.agent_channel = new  # else the agent's buttons act on a name that no longer exists
            leg.channel = new
            leg.extension = self.agents.extension(new) or leg.extension

    def _on_originate_response(self, msg: Any) -> None:
        call = self._leg_call.get(msg.get("Uniqueid") or "")
        if call is not None and (msg.get("Context") or "") == self.config.click_to_call_context:
            self._mark_outbound(call, msg.get("Exten"))

    def _on_mixmonitor_start(self, msg: Any) -> None:
        found = self._leg(msg)
        if not found:
            return
        call = found[0]
        if call.pending_recording:
            call.recording_path = call.pending_recording
            if call.pending_recording not in call.recordings:
                call.recordings.append(call.pending_recording)
            call.pending_recording = None

    # ------------------------------------------------------------------------------------------- dialling

    def _dest_leg(self, call: LiveCall, msg: Any) -> Leg | None:
        uid = msg.get("DestUniqueid")
        if uid and uid in call.legs:
            return call.legs[uid]
        dest = msg.get("DestChannel")
        for leg in call.legs.values():
            if leg.channel == dest:
                return leg
        return None

    def _dial_call(self, msg: Any) -> LiveCall | None:
        found = self._leg(msg) if msg.get("Uniqueid") else None
        if found:
            return found[0]
        uid = msg.get("DestUniqueid")
        if uid:
            return self._leg_call.get(uid)
        return None

    def _on_dialbegin(self, msg: Any) -> None:
        call = self._dial_call(msg)
        if call is None:
            return
        dest = self._dest_leg(call, msg)
        if dest is not None and dest.originator:
            return  # an Originate ringing the caller's own first leg
        dest_channel = msg.get("DestChannel") or ""
        ext = dest.extension if dest is not None else self.agents.extension(dest_channel)
        source = call.legs.get(msg.get("Uniqueid") or "")
        if source is not None and source.originator and call.direction != "in":
            if ext:
                call.direction = "internal" if call.direction != "out" else "out"
                call.dialed = call.dialed or ext
            else:
                number = _dialled_number(msg.get("DialString") or "") or normalize_number(msg.get("DestExten"))
                if len(number) > 4:
                    call.direction = "out"
                    call.dialed = number
        if ext:
            self._ringing(call, ext)

    def _on_dialstate(self, msg: Any) -> None:
        if (msg.get("DialStatus") or "").upper() != "RINGING":
            return
        call = self._dial_call(msg)
        if call is None:
            return
        dest = self._dest_leg(call, msg)
        ext = dest.extension if dest is not None else self.agents.extension(msg.get("DestChannel"))
        if ext and not (dest is not None and dest.originator):
            self._ringing(call, ext)

    def _on_dialend(self, msg: Any) -> None:
        call = self._dial_call(msg)
        if call is None:
            return
        dest = self._dest_leg(call, msg)
        if dest is not None and dest.originator:
            return
        status = (msg.get("DialStatus") or "").upper()
        if status:
            call.dial_statuses.append(status)

    # ------------------------------------------------------------------------------------------- queues

    def _queue_leg(self, msg: Any) -> LiveCall | None:
        """The call a queue event (QueueCallerJoin, AgentCalled, AgentConnect) is about, noting its queue and,
        when the event names the caller's own leg, that leg as the caller's."""
        found = self._leg(msg)
        if not found:
            return None
        call, leg = found
        call.queue = msg.get("Queue") or call.queue
        if leg.originator:
            call.caller_leg = leg.uniqueid
        return call

    def _on_queue_join(self, msg: Any) -> None:
        call = self._queue_leg(msg)
        if call is not None and call.queued_at is None:
            call.queued_at = self._event_time(msg)

    def _on_queue_abandon(self, msg: Any) -> None:
        found = self._leg(msg)
        if found and not found[0].answered:
            found[0].abandoned = True

    def _member_extension(self, msg: Any) -> str | None:
        return self.agents.extension(msg.get("DestChannel")) or self.agents.extension(msg.get("Interface")) \
            or self.agents.extension(msg.get("StateInterface"))

    def _on_agent_called(self, msg: Any) -> None:
        call = self._queue_leg(msg)
        if call is None:
            return
        ext = self._member_extension(msg)
        if ext:
            self._ringing(call, ext)

    def _on_agent_connect(self, msg: Any) -> None:
        call = self._queue_leg(msg)
        if call is None:
            return
        with contextlib.suppress(TypeError, ValueError):
            call.wait_seconds = int(msg.get("HoldTime"))
        ext = self._member_extension(msg)
        dest = self._dest_leg(call, msg)
        now = self._event_time(msg)
        if dest is not None:
            dest.up = True
        self._answered(call, dest, now, extension=ext, agent_channel=msg.get("DestChannel"), authoritative=True)

    # ------------------------------------------------------------------------------------------- bridges

    def _on_bridge_enter(self, msg: Any) -> None:
        bridge = msg.get("BridgeUniqueid")
        found = self._leg(msg)
        if not bridge or not found:
            return
        call, leg = found
        members = self._bridges.setdefault(bridge, set())
        members.add(leg.uniqueid)
        legs = [call.legs[u] for u in members if u in call.legs]
        callers = [m for m in legs if m.originator]
        far = [m for m in legs if not m.originator]
        if callers and far:
            if call.caller_leg is None:
                call.caller_leg = callers[0].uniqueid
            agent = next((m for m in far if m.extension), far[0])
            self._answered(call, agent, self._event_time(msg))

    def _on_bridge_leave(self, msg: Any) -> None:
        members = self._bridges.get(msg.get("BridgeUniqueid") or "")
        if members is not None:
            members.discard(msg.get("Uniqueid") or "")
            if not members:
                self._bridges.pop(msg.get("BridgeUniqueid") or "", None)

    def _on_bridge_merge(self, msg: Any) -> None:
        moved = self._bridges.pop(msg.get("FromBridgeUniqueid") or "", set())
        if moved:
            self._bridges.setdefault(msg.get("ToBridgeUniqueid") or "", set()).update(moved)

    # ------------------------------------------------------------------------------------------- transfers

    def _on_blind_transfer(self, msg: Any) -> None:
        if (msg.get("Result") or "").lower() != "success":
            return
        call = self.get(msg.get("TransfererUniqueid") or "") or self.get(msg.get("TransfereeUniqueid") or "") \
            or self.get(msg.get("TransfererLinkedid") or "")
        if call is None:
            return
        context = msg.get("Context") or ""
        exten = msg.get("Extension") or ""
        from_ext = self.agents.extension(msg.get("TransfererChannel"))
        to_ext = exten if EXTENSION_RE.match(exten) and self._is_agent_context(context) else None
        self._transferred(call, "blind", from_ext, to_ext or exten,
                          key=("blind", msg.get("TransfererUniqueid") or "", context, exten))
        if to_ext:
            call.agent_extension = to_ext
            # The Transferee is the customer, not the target: the target's leg is learnt when it answers. Keeping
            # the customer here made the new agent's hangup/transfer/harassment buttons act on the customer.
            call.agent_channel = None
        else:
            call.awaiting_transfer_answer = True

    def _is_agent_context(self, context: str) -> bool:
        return self.agents.extension(f"Local/1@{context}-0;1") is not None

    def _on_attended_transfer(self, msg: Any) -> None:
        if (msg.get("Result") or "").lower() != "success":
            return
        call = self.get(msg.get("OrigTransfererUniqueid") or "") or self.get(msg.get("TransfereeUniqueid") or "") \
            or self.get(msg.get("OrigTransfererLinkedid") or "")
        if call is None:
            return
        second = self.get(msg.get("SecondTransfererUniqueid") or "") \
            or self.get(msg.get("SecondTransfererLinkedid") or "")
        if second is not None and second is not call:
            self._merge(second, into=call)
        transferers = {msg.get("OrigTransfererUniqueid"), msg.get("SecondTransfererUniqueid")}
        excluded = set(transferers)
        for uid in list(transferers):
            leg = call.legs.get(uid or "")
            base = local_base(leg.channel) if leg else None
            if base:
                excluded.update(u for u, other in call.legs.items() if local_base(other.channel) == base)
        excluded.add(msg.get("TransfereeUniqueid"))
        target: Leg | None = None
        target_uid = msg.get("TransferTargetUniqueid")
        if target_uid and target_uid in call.legs:
            target = call.legs[target_uid]
        for bridge_key in ("DestBridgeUniqueid", "OrigBridgeUniqueid", "SecondBridgeUniqueid"):
            if target is not None:
                break
            for uid in self._bridges.get(msg.get(bridge_key) or "", ()):
                leg = call.legs.get(uid)
                if leg is not None and uid not in excluded and leg.extension:
                    target = leg
                    break
        if target is None:
            # Last resort: the most recently answered far agent leg that is not the transferer's.
            candidates = [leg for leg in call.legs.values() if leg.up and leg.extension and leg.uniqueid
                          not in excluded and not leg.originator]
            target = candidates[-1] if candidates else None
        from_ext = self.agents.extension(msg.get("OrigTransfererChannel"))
        to_ext = target.extension if target is not None else None
        self._transferred(call, "attended", from_ext, to_ext,
                          key=("attended", msg.get("OrigTransfererUniqueid") or "",
                               msg.get("SecondTransfererUniqueid") or ""))
        if target is not None:
            call.agent_extension = to_ext
            call.agent_channel = target.channel
        else:
            call.awaiting_transfer_answer = True

    def _merge(self, second: LiveCall, *, into: LiveCall) -> None:
        """Fold a consult call (own Linkedid) into the original call: one call, one CDR."""
        for uid, leg in second.legs.items():
            leg.originator = False  # the consult call's caller is our agent, not the customer
            leg.linkedid = into.linkedid
            into.legs[uid] = leg
            self._leg_call[uid] = into
        into.ivr_choice = into.ivr_choice or second.ivr_choice
        for path in second.recordings:
            if path not in into.recordings:
                into.recordings.append(path)
        into.recording_path = into.recording_path or second.recording_path
        self.live_calls.pop(second.linkedid, None)
        self._alias[second.linkedid] = into.linkedid
        for old, new in list(self._alias.items()):
            if new == second.linkedid:
                self._alias[old] = into.linkedid
        self._remember_ended(second.linkedid)

    def _transferred(self, call: LiveCall, kind: str, from_ext: str | None, to_ext: str | None,
                     key: tuple[str, ...]) -> None:
        call.transferred = True
        if key in call.transfer_keys:
            return
        call.transfer_keys.add(key)
        self._publish("call.transferred", {"linkedid": call.linkedid, "from_extension": from_ext,
                                           "to_extension": to_ext, "kind": kind})

    # ------------------------------------------------------------------------------------------- ringing/answer

    def _ringing(self, call: LiveCall, extension: str) -> None:
        if extension in call.ringing_sent:
            return
        call.ringing_sent.add(extension)
        self._publish("call.ringing", {
            "linkedid": call.linkedid, "uniqueid": call.uniqueid,
            "caller_number": self._from_number(call), "caller_name": self._from_name(call),
            "extension": extension, "queue": call.queue, "ivr_choice": call.ivr_choice,
            "direction": call.direction,
        })

    def _answered(self, call: LiveCall, leg: Leg | None, when: datetime, *, extension: str | None = None,
                  agent_channel: str | None = None, authoritative: bool = False) -> None:
        ext = extension or (leg.extension if leg is not None else None)
        channel = agent_channel or (leg.channel if leg is not None else None)
        if call.answered_at is None:
            call.answered_at = when
            if call.queued_at is not None and call.wait_seconds is None:
                call.wait_seconds = max(0, int((when - call.queued_at).total_seconds()))
        if call.direction == "out":
            # The agent is the one who placed the call; the far leg is the customer.
            if ext and call.agent_extension is None:
                call.agent_extension = ext
        elif ext and (call.agent_extension is None or authoritative or call.awaiting_transfer_answer
                      or call.direction == "internal" and call.agent_extension == self._originator_ext(call)):
            call.agent_extension = ext
            call.agent_channel = channel
            call.awaiting_transfer_answer = False
        elif ext == call.agent_extension and channel and (call.agent_channel is None or authoritative):
            call.agent_channel = channel
        if call.direction == "out":
            announce = call.agent_extension  # the customer picked up: tell the agent who dialled
        elif ext is not None:
            announce = ext if ext == call.agent_extension else None
            if announce is None:
                return  # e.g. a consult target answering before the transfer completes
        else:
            announce = call.agent_extension
        if (announce or "") not in call.answered_sent:
            call.answered_sent.add(announce or "")
            self._publish("call.answered", {"linkedid": call.linkedid, "extension": announce,
                                            "answered_at": when.isoformat()})

    def _originator_ext(self, call: LiveCall) -> str | None:
        return call.originator_extension

    # ------------------------------------------------------------------------------------------- hangup / CDR

    def _on_hangup(self, msg: Any) -> None:
        uniqueid = msg.get("Uniqueid") or ""
        call = self._leg_call.pop(uniqueid, None)
        self._mark_dead(uniqueid)
        if call is None:
            return
        leg = call.legs.pop(uniqueid, None)
        if leg is not None and not leg.originator:
            with contextlib.suppress(TypeError, ValueError):
                call.far_causes.append(int(msg.get("Cause") or 0))
        for members in self._bridges.values():
            members.discard(uniqueid)
        if leg is not None and leg.channel == call.agent_channel:
            # Local channel optimisation (queue members without /n) hangs up the Local pair while the agent's
            # phone stays on the call: the buttons must move to the agent's remaining leg, the phone first.
            rest = [other for other in call.legs.values()
                    if not other.originator and other.extension and other.extension == call.agent_extension]
            rest.sort(key=lambda other: other.channel.startswith("Local/"))
            call.agent_channel = rest[0].channel if rest else None
        if not call.legs:
            self._end(call, self._event_time(msg))

    def _end(self, call: LiveCall, when: datetime) -> None:
        self.live_calls.pop(call.linkedid, None)
        for uid in list(call.legs):
            self._leg_call.pop(uid, None)
            self._mark_dead(uid)
        self._remember_ended(call.linkedid)
        for old in [old for old, new in self._alias.items() if new == call.linkedid]:
            del self._alias[old]
        row = self._cdr_row(call, when)
        if self.leading:
            self._enqueue(("cdr", row), droppable=False)
        else:
            self._standby[call.linkedid] = (time.monotonic(), row)
            self._prune_standby()

    def _disposition(self, call: LiveCall) -> str:
        if call.answered:
            return "ANSWERED"
        if "BUSY" in call.dial_statuses or BUSY_CAUSES.intersection(call.far_causes):
            return "BUSY"
        if {"CHANUNAVAIL", "CONGESTION", "INVALIDARGS"}.intersection(call.dial_statuses) \
                or FAILED_CAUSES.intersection(call.far_causes):
            return "FAILED"
        return "NO ANSWER"

    def _from_number(self, call: LiveCall) -> str:
        if call.direction == "in":
            return normalize_number(call.caller_number)
        return self._originator_ext(call) or call.agent_extension or normalize_number(call.caller_number)

    def _from_name(self, call: LiveCall) -> str:
        if call.direction == "in":
            return call.caller_name
        # An outbound Originate often puts the customer's number in CallerID: only trust the phone's own name.
        first = call.legs.get(call.uniqueid)
        if first is not None and first.caller_number == first.extension:
            return call.caller_name
        return ""

    def _cdr_row(self, call: LiveCall, ended_at: datetime) -> dict[str, Any]:
        ended_at = max(ended_at, call.started_at)
        answered_at = call.answered_at
        wait = call.wait_seconds
        if call.abandoned and wait is None and call.queued_at is not None:
            wait = max(0, int((ended_at - call.queued_at).total_seconds()))
        to_number = call.dialed
        if call.direction == "in" and not to_number:
            to_number = call.agent_extension or ""
        return {
            "linkedid": call.linkedid,
            "uniqueid": call.uniqueid,
            "direction": call.direction,
            "from_number": self._from_number(call)[:40],
            "from_name": self._from_name(call)[:100],
            "to_number": to_number[:40],
            "agent_extension": call.agent_extension,
            "queue": call.queue,
            "ivr_choice": call.ivr_choice,
            "started_at": call.started_at,
            "queued_at": call.queued_at,
            "answered_at": answered_at,
            "ended_at": ended_at,
            "duration": int((ended_at - call.started_at).total_seconds()),
            "billsec": int((ended_at - answered_at).total_seconds()) if answered_at else 0,
            "wait_seconds": wait,
            "disposition": self._disposition(call),
            "abandoned": call.abandoned and not call.answered,
            "transferred": call.transferred,
            "recording_path": call.recording_path,
            "recording_status": "recording" if call.recording_path else "none",
        }

    # ------------------------------------------------------------------------------------------- re-sync

    async def resync(self, timeout: float = 10.0) -> None:
        """Rebuild live calls from CoreShowChannels; close calls whose channels vanished while we were away."""
        from contactd.telephony.pbx import PBX  # local: pbx.py is an action layer, not a dependency at import

        seq_at_start = self._seq
        try:
            channels = await asyncio.wait_for(PBX(self.ami, self.config).channels(), timeout)
        except Exception as exc:
            log.warning("call tracker: re-sync failed (%s); live calls kept as they were", exc)
            return
        self.apply_channel_list(channels, seq_at_start)

    def apply_channel_list(self, channels: Iterable[Any], seq_at_start: int | None = None) -> None:
        """Fold a CoreShowChannels snapshot (pbx.LiveChannel items) taken when `_seq` was `seq_at_start`."""
        seq_at_start = self._seq if seq_at_start is None else seq_at_start
        now = self.clock()
        alive = {ch.uniqueid: ch for ch in channels}
        # Legs we saw no event for since the snapshot was requested and that are not in it hung up meanwhile.
        for call in list(self.live_calls.values()):
            for uid, leg in list(call.legs.items()):
                if uid not in alive and leg.seq <= seq_at_start:
                    del call.legs[uid]
                    self._leg_call.pop(uid, None)
                    self._mark_dead(uid)
            if not call.legs:
                log.info("call tracker: call %s ended while AMI was down; closing it", call.linkedid)
                self._end(call, now)
        ordered = sorted(alive.values(), key=lambda ch: (ch.uniqueid != ch.linkedid, ch.uniqueid))
        for ch in ordered:
            known = self._leg_call.get(ch.uniqueid)
            if known is not None:
                # A ringing leg answered while we were away (AgentConnect lost): without this the call stayed
                # unanswered for good (NO ANSWER, billsec 0, no recording). Events newer than the snapshot win.
                leg = known.legs.get(ch.uniqueid)
                if leg is not None and leg.seq <= seq_at_start and ch.state == STATE_UP and not leg.up:
                    leg.state, leg.up = STATE_UP, True
                    if not leg.originator and (ch.bridge_id or leg.extension):
                        self._answered(known, leg, now)
                continue
            if ch.uniqueid in self._dead:
                continue
            linkedid = self._alias.get(ch.linkedid, ch.linkedid)
            if linkedid in self._ended:
                continue
            call = self.live_calls.get(linkedid)
            started = now - timedelta(seconds=_duration(ch))
            if call is None:
                call = LiveCall(linkedid=linkedid, uniqueid=linkedid, started_at=started, adopted=True)
                self.live_calls[linkedid] = call
            call.started_at = min(call.started_at, started)
            snapshot = _SnapshotMessage(ch)
            leg = self._add_leg(call, ch.uniqueid, ch.channel, snapshot)
            leg.up = ch.state == STATE_UP
            if not leg.originator and leg.up and (ch.bridge_id or leg.extension):
                self._answered(call, leg, started)
        for call in self.live_calls.values():
            if call.adopted:
                # Adopted calls were already announced before the restart: do not re-pop screens.
                call.ringing_sent.update(leg.extension for leg in call.legs.values() if leg.extension)

    # ------------------------------------------------------------------------------------------- writer task

    def _publish(self, topic: str, payload: dict[str, Any]) -> None:
        if not self.leading:
            return  # the leader announces it; a follower's copy would pop every screen twice
        self._enqueue(("publish", (topic, payload)), droppable=True)

    def _enqueue(self, item: tuple[str, Any], *, droppable: bool) -> None:
        if droppable:
            if self._queued_publishes >= self.outbox_size:
                self.overflows += 1
                if self.overflows == 1 or self.overflows % 1000 == 0:
                    log.warning("call tracker outbox full: %d bus events dropped so far", self.overflows)
                return
            self._queued_publishes += 1
            outbox, idle, wakeup = self._outbox, self._idle, self._wakeup
        else:
            outbox, idle, wakeup = self._cdr_outbox, self._cdr_idle, self._cdr_wakeup
        outbox.append(item)
        idle.clear()
        wakeup.set()

    async def _run_worker(self, outbox: deque[tuple[str, Any]], wakeup: asyncio.Event, idle: asyncio.Event) -> None:
        while True:
            await wakeup.wait()
            wakeup.clear()
            while outbox:
                kind, data = outbox.popleft()
                if kind == "publish":
                    self._queued_publishes -= 1
                try:
                    if kind in ("publish", "ended"):
                        await self._send(*data)
                    else:
                        await self._write_cdr(data)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self.errors += 1
                    log.exception("call tracker: %s failed", kind)
            idle.set()

    async def _send(self, topic: str, payload: dict[str, Any]) -> None:
        try:
            await asyncio.wait_for(self.bus.publish(topic, payload), self.publish_timeout)
        except TimeoutError:
            self.overflows += 1
            log.warning("call tracker: bus publish of %s timed out; event dropped", topic)

    async def _write_cdr(self, row: dict[str, Any], attempts: int = 3) -> None:
        call_id: int | None = None
        for attempt in range(attempts):
            try:
                call_id = await self._insert_cdr(row)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if attempt == attempts - 1:
                    if self.spool is None:
                        log.error("call tracker: CDR for %s not written: %s", row["linkedid"], exc)
                        raise
                    await asyncio.to_thread(self.spool.append, row)
                    log.error("call tracker: database unavailable (%s); CDR for %s kept in %s until it is back",
                              type(exc).__name__, row["linkedid"], self.spool.path)
                    return
                await asyncio.sleep(0.2 * (attempt + 1))
        await self._announce_cdr(row, call_id)

    async def _run_spool(self) -> None:
        """Write spooled CDRs (also those left by a previous run) once the database takes them again."""
        assert self.spool is not None
        while True:
            rows = await asyncio.to_thread(self.spool.load)
            written: set[str] = set()
            for row in rows:
                try:
                    call_id = await self._insert_cdr(row)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    break  # still down: try again later, oldest first
                written.add(row["linkedid"])
                await self._announce_cdr(row, call_id)
            if written:
                await asyncio.to_thread(self.spool.remove, written)
                log.info("call tracker: %d spooled CDR(s) written", len(written))
            await asyncio.sleep(self.spool_retry)

    async def _announce_cdr(self, row: dict[str, Any], call_id: int | None) -> None:
        self.cdrs_written += 1
        # Through the publish lane, never dropped: call.ended must not overtake the call's ringing/answered.
        self._outbox.append(("ended", ("call.ended", {
            "linkedid": row["linkedid"], "disposition": row["disposition"], "billsec": row["billsec"],
            "call_id": call_id, "direction": row["direction"], "from_number": row["from_number"],
            "agent_extension": row["agent_extension"], "recording_path": row["recording_path"],
            "transferred": row["transferred"], "abandoned": row["abandoned"],
        })))
        self._idle.clear()
        self._wakeup.set()

    async def _insert_cdr(self, row: dict[str, Any]) -> int | None:
        if self.db.is_sqlite:
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert  # type: ignore[assignment]
        async with self.db.transaction() as session:
            if row.get("customer_id") is None:
                row = {**row, "customer_id": await _customer_for(session, row)}
            stmt = insert(Call).values(**row).on_conflict_do_nothing(index_elements=["linkedid"])
            await session.execute(stmt)
            result = await session.execute(select(Call.id).where(Call.linkedid == row["linkedid"]))
            return result.scalar_one_or_none()


async def _customer_for(session: Any, row: dict[str, Any]) -> int | None:
    """The customer on the other end (the caller of an inbound call, the callee of an outbound one), by number,
    so call history, the customer's calls tab and search by name find the call."""
    number = row["to_number"] if row["direction"] == "out" else row["from_number"]
    if not number or not number.isdigit() or len(number) <= 4:
        return None
    found = await session.execute(select(Customer.id).where(
        or_(Customer.mobile == number, Customer.phone == number)).order_by(Customer.id).limit(1))
    return found.scalar_one_or_none()


class _SnapshotMessage:
    """Presents a pbx.LiveChannel as the `.get()` of a channel event, for `_add_leg`."""

    def __init__(self, ch: Any) -> None:
        self._values = {"ChannelState": str(ch.state), "Exten": ch.exten, "Context": ch.context,
                        "CallerIDNum": ch.caller_number, "CallerIDName": ch.caller_name}

    def get(self, key: str, default: str | None = None) -> str | None:
        return self._values.get(key, default)


def _duration(ch: Any) -> int:
    try:
        return int(ch.duration_seconds)
    except (AttributeError, TypeError, ValueError):
        return 0


def _dialled_number(dial_string: str) -> str:
    """`trunk/01012345678` or `PJSIP/01012345678@trunk` -> `01012345678`."""
    target = dial_string.rsplit("/", 1)[-1].split("@", 1)[0]
    return normalize_number(target)


__all__ = ["CallTracker", "LiveCall", "Leg", "AgentChannels", "TRACKED_EVENTS", "normalize_number"]
