"""Event templates of the simulated PBX: the AMI events Asterisk 22 sends, header for header.

Every builder returns a list of (header, value) pairs in the order the traces in /work/shared/asterisk-traces
show them (ami-actions-misc.txt, ami-queue-and-actions.txt, ami-blind-and-attended-transfer.txt). The
server adds ``Privilege`` after ``Event``. State (channels, bridges, queues) lives in `contactd.simulator.pbx`;
this module only knows how to print it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Pairs = list[tuple[str, str]]

STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}
CAUSE_TEXT = {0: "Unknown", 16: "Normal Clearing", 17: "User busy", 19: "No user responding",
              21: "Call Rejected", 127: "Interworking, unspecified"}

_uniqueid_seq = 0


def next_uniqueid() -> str:
    """Asterisk's `epoch.seq` uniqueids; the sequence is process-wide like Asterisk's."""
    global _uniqueid_seq
    _uniqueid_seq += 1
    return f"{int(time.time())}.{_uniqueid_seq}"


def _cid(value: str) -> str:
    return value if value else "<unknown>"


@dataclass(eq=False)
class Channel:
    name: str
    uniqueid: str
    linkedid: str
    context: str
    exten: str
    caller_num: str = ""
    caller_name: str = ""
    connected_num: str = ""
    connected_name: str = ""
    state: int = 0
    priority: int = 1
    app: str = ""
    app_data: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    bridge: Bridge | None = None
    alive: bool = True
    extension: str = ""  # the agent extension for agent legs
    role: str = ""  # caller | local1 | local2 | phone | outbound
    call: Any = None  # the SimCall it belongs to
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started_mono: float = field(default_factory=time.monotonic)
    answered_at: datetime | None = None
    answered_mono: float | None = None
    cdr_dest: Channel | None = None  # DestinationChannel of this channel's CDR
    is_cdr_dest: bool = False  # another channel's CDR names this one: no CDR of its own (as Asterisk)
    hangup_cause: int = 16
    created_real: float = field(default_factory=time.monotonic)

    @property
    def state_desc(self) -> str:
        return STATE_DESC.get(self.state, "Unknown")


@dataclass(eq=False)
class Bridge:
    uniqueid: str
    channels: list[Channel] = field(default_factory=list)


def channel_block(ch: Channel, prefix: str = "") -> Pairs:
    return [
        (f"{prefix}Channel", ch.name),
        (f"{prefix}ChannelState", str(ch.state)),
        (f"{prefix}ChannelStateDesc", ch.state_desc),
        (f"{prefix}CallerIDNum", _cid(ch.caller_num)),
        (f"{prefix}CallerIDName", _cid(ch.caller_name)),
        (f"{prefix}ConnectedLineNum", _cid(ch.connected_num)),
        (f"{prefix}ConnectedLineName", _cid(ch.connected_name)),
        (f"{prefix}Language", "en"),
        (f"{prefix}AccountCode", ""),
        (f"{prefix}Context", ch.context),
        (f"{prefix}Exten", ch.exten),
        (f"{prefix}Priority", str(ch.priority)),
        (f"{prefix}Uniqueid", ch.uniqueid),
        (f"{prefix}Linkedid", ch.linkedid),
    ]


def bridge_block(bridge: Bridge, prefix: str = "Bridge") -> Pairs:
    return [
        (f"{prefix}Uniqueid", bridge.uniqueid),
        (f"{prefix}Type", "basic"),
        (f"{prefix}Technology", "simple_bridge"),
        (f"{prefix}Creator", "<unknown>"),
        (f"{prefix}Name", "<unknown>"),
        (f"{prefix}NumChannels", str(len(bridge.channels))),
        (f"{prefix}VideoSourceMode", "none"),
    ]


def chan_event(name: str, ch: Channel, *extra: tuple[str, str]) -> Pairs:
    return [("Event", name), *channel_block(ch), *extra]


def newexten(ch: Channel, app: str, data: str) -> Pairs:
    return chan_event("Newexten", ch, ("Extension", ch.exten), ("Application", app), ("AppData", data))


def varset(ch: Channel, variable: str, value: str) -> Pairs:
    return chan_event("VarSet", ch, ("Variable", variable), ("Value", value))


def dial_event(name: str, caller: Channel | None, dest: Channel, **extra: str) -> Pairs:
    pairs: Pairs = [("Event", name)]
    if caller is not None:
        pairs += channel_block(caller)
    pairs += channel_block(dest, "Dest")
    pairs += [(k, v) for k, v in extra.items()]
    return pairs


def local_bridge(one: Channel, two: Channel) -> Pairs:
    return [("Event", "LocalBridge"), *channel_block(one, "LocalOne"), *channel_block(two, "LocalTwo"),
            ("Context", one.context), ("Exten", one.exten), ("LocalOptimization", "Yes")]


def bridge_event(name: str, bridge: Bridge, ch: Channel | None = None, **extra: str) -> Pairs:
    pairs: Pairs = [("Event", name), *bridge_block(bridge)]
    if ch is not None:
        pairs += channel_block(ch)
    pairs += [(k, v) for k, v in extra.items()]
    return pairs


def hangup_event(ch: Channel, cause: int) -> Pairs:
    return chan_event("Hangup", ch, ("Cause", str(cause)), ("Cause-txt", CAUSE_TEXT.get(cause, "Unknown")))


def _cdr_time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


def cdr_event(ch: Channel, ended: datetime, ended_mono: float) -> Pairs:
    duration = int(ended_mono - ch.started_mono)
    billsec = int(ended_mono - ch.answered_mono) if ch.answered_mono is not None else 0
    name = ch.caller_name
    return [
        ("Event", "Cdr"),
        ("AccountCode", ""),
        ("Source", ch.caller_num),
        ("Destination", ch.exten),
        ("DestinationContext", ch.context),
        ("CallerID", f'"{name}" <{ch.caller_num}>'),
        ("Channel", ch.name),
        ("DestinationChannel", ch.cdr_dest.name if ch.cdr_dest is not None else ""),
        ("LastApplication", ch.app),
        ("LastData", ch.app_data),
        ("StartTime", _cdr_time(ch.started_at)),
        ("AnswerTime", _cdr_time(ch.answered_at)),
        ("EndTime", _cdr_time(ended)),
        ("Duration", str(duration)),
        ("BillableSeconds", str(billsec)),
        ("Disposition", "ANSWERED" if ch.answered_at is not None else "NO ANSWER"),
        ("AMAFlags", "DOCUMENTATION"),
        ("UniqueID", ch.uniqueid),
        ("UserField", ""),
    ]


@dataclass
class Member:
    interface: str
    name: str
    state_interface: str
    membership: str = "static"
    penalty: int = 0
    calls_taken: int = 0
    last_call: int = 0
    last_pause: int = 0
    login_time: int = field(default_factory=lambda: int(time.time()))
    in_call: int = 0
    status: int = 1  # 1 = not in use, 2 = in use, 6 = ringing
    paused: bool = False
    reason: str = ""
    wrapup: int = 0


@dataclass
class Queue:
    name: str
    members: dict[str, Member] = field(default_factory=dict)
    callers: list[Channel] = field(default_factory=list)
    completed: int = 0
    abandoned: int = 0


def member_fields(m: Member, *, location_key: str = "Interface", name_key: str = "MemberName",
                  ringinuse: bool = True) -> Pairs:
    pairs: Pairs = [(name_key, m.name), (location_key, m.interface), ("StateInterface", m.state_interface),
                    ("Membership", m.membership), ("Penalty", str(m.penalty)), ("CallsTaken", str(m.calls_taken)),
                    ("LastCall", str(m.last_call)), ("LastPause", str(m.last_pause)),
                    ("LoginTime", str(m.login_time)), ("InCall", str(m.in_call)), ("Status", str(m.status)),
                    ("Paused", "1" if m.paused else "0"), ("PausedReason", m.reason)]
    if ringinuse:
        pairs.append(("Ringinuse", "0"))
    pairs.append(("Wrapuptime", str(m.wrapup)))
    return pairs


def member_event(name: str, queue: Queue, m: Member) -> Pairs:
    return [("Event", name), ("Queue", queue.name), *member_fields(m)]


def queue_params(q: Queue) -> Pairs:
    return [("Event", "QueueParams"), ("Queue", q.name), ("Max", "0"), ("Strategy", "ringall"),
            ("Calls", str(len(q.callers))), ("Holdtime", "0"), ("TalkTime", "0"), ("Completed", str(q.completed)),
            ("Abandoned", str(q.abandoned)), ("ServiceLevel", "0"), ("ServicelevelPerf", "0.0"),
            ("ServicelevelPerf2", "0.0"), ("Weight", "0")]


def queue_member_item(q: Queue, m: Member) -> Pairs:
    return [("Event", "QueueMember"), ("Queue", q.name),
            *member_fields(m, location_key="Location", name_key="Name", ringinuse=False)]


def queue_entry(q: Queue, position: int, ch: Channel) -> Pairs:
    return [("Event", "QueueEntry"), ("Queue", q.name), ("Position", str(position)), ("Channel", ch.name),
            ("Uniqueid", ch.uniqueid), ("CallerIDNum", _cid(ch.caller_num)), ("CallerIDName", _cid(ch.caller_name)),
            ("ConnectedLineNum", _cid(ch.connected_num)), ("ConnectedLineName", _cid(ch.connected_name)),
            ("Wait", str(int(time.monotonic() - ch.created_real))), ("Priority", "0")]


def queue_summary(q: Queue) -> Pairs:
    logged = len(q.members)
    available = sum(1 for m in q.members.values() if not m.paused and m.status == 1)
    return [("Event", "QueueSummary"), ("Queue", q.name), ("LoggedIn", str(logged)), ("Available", str(available)),
            ("Callers", str(len(q.callers))), ("HoldTime", "0"), ("TalkTime", "0"), ("LongestHoldTime", "0")]


def _duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def core_show_channel(ch: Channel) -> Pairs:
    return [("Event", "CoreShowChannel"), *channel_block(ch), ("Application", ch.app),
            ("ApplicationData", ch.app_data), ("Duration", _duration(time.monotonic() - ch.created_real)),
            ("BridgeId", ch.bridge.uniqueid if ch.bridge else "")]


def status_item(ch: Channel) -> Pairs:
    return [("Event", "Status"), *channel_block(ch), ("Type", ch.name.split("/", 1)[0]), ("DNID", ""),
            ("EffectiveConnectedLineNum", _cid(ch.connected_num)),
            ("EffectiveConnectedLineName", _cid(ch.connected_name)), ("TimeToHangup", "0"),
            ("BridgeID", ch.bridge.uniqueid if ch.bridge else ""), ("Application", ch.app), ("Data", ch.app_data),
            ("Nativeformats", "(ulaw)"), ("Readformat", "ulaw"), ("Readtrans", ""), ("Writeformat", "ulaw"),
            ("Writetrans", ""), ("Callgroup", "0"), ("Pickupgroup", "0"),
            ("Seconds", str(int(time.monotonic() - ch.created_real)))]


def core_show_channels_text(channels: list[Channel], processed: int) -> list[str]:
    lines = [f"{'Channel':<64} {'Location':<32} {'State':<7} {'Application(Data)':<30}"]
    for ch in channels:
        location = f"{ch.exten}@{ch.context}:{ch.priority}"
        app = f"{ch.app}({ch.app_data})" if ch.app else "(None)"
        lines.append(f"{ch.name:<64} {location:<32} {ch.state_desc:<7} {app:<30}")
    calls = len({ch.linkedid for ch in channels})
    lines += [f"{len(channels)} active channel{'s' if len(channels) != 1 else ''}",
              f"{calls} active call{'s' if calls != 1 else ''}",
              f"{processed} call{'s' if processed != 1 else ''} processed"]
    return lines
