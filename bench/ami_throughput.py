"""AMI event throughput: contactd's parser + dispatch vs panoramisk 1.4's, on the same trace-shaped bytes.

Builds >= 100,000 events from the real Asterisk 22 event blocks in /work/shared/asterisk-traces (each
repetition gets fresh Uniqueid/Linkedid values), cuts the byte stream into 64 KiB reads like a socket would
deliver them, and pushes the reads through each library's data_received path with one subscriber for all
events. Prints events/s for both and the ratio, for four subscribers: one that only counts, one that reads
one header (Uniqueid), one shaped like the call tracker (subscribed to the tracker's events only, reading the
headers its handler reads for each) and one that walks every header (contactd splits headers lazily, on first
access, so the first three measure framing + routing + a few lookups and the last a full parse). Not a test.

    .venv/bin/python bench/ami_throughput.py [--events 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "telephony"))
from trace_reader import server_bytes  # noqa: E402

from contactd.telephony.ami import AMIClient, AMIMessage, AMIParser, _Link  # noqa: E402
from contactd.telephony.calls import TRACKED_EVENTS  # noqa: E402

TRACES = ["ami-originate-inbound-call.txt", "ami-blind-and-attended-transfer.txt", "ami-actions-misc.txt"]
BANNER = b"Asterisk Call Manager/11.0.0\r\n"
READ_SIZE = 65536
_IDS = re.compile(rb"^((?:Uniqueid|Linkedid|DestUniqueid|DestLinkedid): )(\d+)\.(\d+)", re.M)


def event_blocks() -> list[bytes]:
    """Every event Asterisk sent in the traces (not list items or responses), as its exact bytes."""
    blocks: list[bytes] = []
    for name in TRACES:
        for block in server_bytes(name).split(b"\r\n\r\n"):
            block = block.removeprefix(BANNER)
            if block.startswith(b"Event: ") and b"\r\nActionID: " not in block:
                blocks.append(block + b"\r\n\r\n")
    return blocks


def build_stream(n_events: int) -> tuple[bytes, int]:
    blocks = event_blocks()
    parts = [BANNER]
    count = 0
    rep = 0
    while count < n_events:
        rep += 1
        for block in blocks:
            parts.append(_IDS.sub(lambda m, r=rep: m.group(1) + m.group(2) + b"." + str(r).encode(), block))
        count += len(blocks)
    return b"".join(parts), count


def reads(data: bytes) -> list[bytes]:
    return [data[i : i + READ_SIZE] for i in range(0, len(data), READ_SIZE)]


# What the one subscriber does with each event: count it; read one header (Uniqueid); read what the call
# tracker reads; or walk every header (forces contactd's deferred header split, for a like-for-like full parse).
MODES = ("count", "one-header", "tracker-like", "all-headers")

# The headers contactd/telephony/calls.py reads per event it subscribes to, in its order (a leg seen for the
# first time, as Newchannel is, also reads Channel/Linkedid/ChannelState/Exten/Context/CallerID*). VarSet reads
# Uniqueid and Value only for the two variables the tracker cares about; Newexten reads AppData only for
# MixMonitor. Timestamp is looked up (and missed: the traces have no timestampevents) where the tracker stamps.
_LEG = ("Uniqueid", "Channel", "Linkedid", "ChannelState", "Exten", "Context", "CallerIDNum", "CallerIDName")
TRACKER_READS: dict[str, tuple[str, ...]] = {
    "Newchannel": _LEG + ("Timestamp",),
    "Newstate": ("Uniqueid", "CallerIDNum", "CallerIDName", "ChannelState"),
    "NewCallerid": ("Uniqueid", "CallerIDNum", "CallerIDName"),
    "Newexten": ("Uniqueid", "Application", "Context"),
    "VarSet": ("Variable",),
    "Rename": ("Uniqueid", "Newname"),
    "DialBegin": ("Uniqueid", "DestUniqueid", "DestChannel", "DialString", "DestExten"),
    "DialState": ("DialStatus", "Uniqueid", "DestUniqueid", "DestChannel"),
    "DialEnd": ("Uniqueid", "DestUniqueid", "DestChannel", "DialStatus"),
    "OriginateResponse": ("Uniqueid", "Context", "Exten"),
    "QueueCallerJoin": ("Uniqueid", "Queue", "Timestamp"),
    "QueueCallerAbandon": ("Uniqueid", "Timestamp"),
    "AgentCalled": ("Uniqueid", "DestChannel", "Interface", "Queue"),
    "AgentConnect": ("Uniqueid", "Queue", "HoldTime", "DestChannel", "DestUniqueid", "Timestamp"),
    "BridgeEnter": ("BridgeUniqueid", "Uniqueid"),
    "BridgeLeave": ("BridgeUniqueid", "Uniqueid"),
    "BridgeMerge": ("FromBridgeUniqueid", "ToBridgeUniqueid"),
    "BlindTransfer": ("Result", "TransfererUniqueid", "TransfereeUniqueid", "Context", "Extension",
                      "TransfererChannel", "TransfereeChannel"),
    "AttendedTransfer": ("Result", "OrigTransfererUniqueid", "TransfereeUniqueid", "SecondTransfererUniqueid",
                         "TransferTargetUniqueid", "OrigTransfererChannel", "DestBridgeUniqueid"),
    "MixMonitorStart": ("Uniqueid",),
    "Hangup": ("Uniqueid", "Cause", "Timestamp"),
}
_VARSET_MORE = ("Uniqueid", "Value")
_TRACKED_VARIABLES = ("CONTACTD_IVR_CHOICE", "MIXMONITOR_FILENAME")


def tracker_reads(message: Any) -> None:
    """Read what the call tracker reads of this event (same calls for both libraries' message objects)."""
    name = message.get("Event")
    get = message.get
    for key in TRACKER_READS.get(name, ()):
        get(key)
    if name == "VarSet" and get("Variable") in _TRACKED_VARIABLES:
        for key in _VARSET_MORE:
            get(key)
    elif name == "Newexten" and (get("Application") or "").lower() == "mixmonitor":
        get("AppData")


def expected_count(data: bytes, mode: str, total: int) -> int:
    if mode != "tracker-like":
        return total
    names = re.findall(rb"(?:^|\r\n\r\n)Event: ([^\r]*)", data)
    wanted = {n.encode() for n in TRACKED_EVENTS}
    return sum(1 for n in names if n in wanted)


async def run_contactd(chunks: list[bytes], mode: str) -> tuple[float, int]:
    client = AMIClient("127.0.0.1", 1, "bench", "x")
    counted = [0]

    def on_event(message: AMIMessage) -> None:
        counted[0] += 1
        if mode == "one-header":
            message.get("Uniqueid")
        elif mode == "tracker-like":
            tracker_reads(message)
        elif mode == "all-headers":
            for _key, _value in message.headers:
                pass

    if mode == "tracker-like":
        client.subscribe(on_event, *TRACKED_EVENTS)
    else:
        client.subscribe(on_event)
    link = _Link(client, AMIParser())
    client._link = link  # feed the real data_received → parse → dispatch path without a socket
    start = time.perf_counter()
    for chunk in chunks:
        link.data_received(chunk)
    return time.perf_counter() - start, counted[0]


async def run_panoramisk(chunks: list[bytes], mode: str) -> tuple[float, int]:
    from panoramisk import Manager
    from panoramisk.ami_protocol import AMIProtocol

    manager = Manager(loop=asyncio.get_running_loop())
    counted = [0]

    def on_event(manager: object, message: Any) -> None:
        if mode == "tracker-like" and message.get("Event") not in tracked:
            return
        counted[0] += 1
        if mode == "one-header":
            message.get("Uniqueid")
        elif mode == "tracker-like":
            tracker_reads(message)
        elif mode == "all-headers":
            for _key, _value in message.items():
                pass

    # Not one register_event per tracked name: panoramisk matches every event against every registered pattern
    # (21 regexes), which is twice as slow as one "*" and a set lookup; the bench gives it its fastest way.
    tracked = frozenset(TRACKED_EVENTS)
    manager.register_event("*", on_event)
    protocol = AMIProtocol()
    protocol.connection_made(transport=None)
    protocol.factory = manager
    protocol.encoding = "utf-8"  # its default is ascii with errors ignored, which would drop Hangul
    start = time.perf_counter()
    for chunk in chunks:
        protocol.data_received(chunk)
    elapsed = time.perf_counter() - start
    # panoramisk's own FullyBooted handler is registered too; count only ours.
    return elapsed, counted[0]


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    logging.disable(logging.CRITICAL)  # neither library may pay for log formatting here

    data, n = build_stream(args.events)
    chunks = reads(data)
    print(f"stream: {n} events, {len(data) / 1e6:.1f} MB, {len(chunks)} reads of {READ_SIZE} bytes")

    for mode in MODES:
        wanted = expected_count(data, mode, n)
        best: dict[str, float] = {}
        for _ in range(args.rounds):
            for name, runner in (("contactd", run_contactd), ("panoramisk 1.4", run_panoramisk)):
                gc.collect()
                elapsed, counted = await runner(chunks, mode)
                if counted != wanted:
                    raise SystemExit(f"{name} dispatched {counted} {mode} events, expected {wanted}")
                best[name] = min(best.get(name, float("inf")), elapsed)
        print(f"subscriber: {mode}" + (f" ({wanted} of the events)" if wanted != n else ""))
        for name, elapsed in best.items():
            print(f"  {name:>15}: {n / elapsed:>12,.0f} events/s  ({elapsed:.3f} s, best of {args.rounds})")
        print(f"  {'ratio':>15}: {best['panoramisk 1.4'] / best['contactd']:.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
