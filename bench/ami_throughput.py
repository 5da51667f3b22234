"""AMI event throughput: contactd's parser + dispatch vs panoramisk 1.4's, on the same trace-shaped bytes.

Builds >= 100,000 events from the real Asterisk 22 event blocks in /work/shared/asterisk-traces (each
repetition gets fresh Uniqueid/Linkedid values), cuts the byte stream into 64 KiB reads like a socket would
deliver them, and pushes the reads through each library's data_received path with one subscriber for all
events. Prints events/s for both and the ratio, for three subscribers: one that only counts, one that reads
one header (Uniqueid) and one that walks every header (contactd splits headers lazily, on first access, so
the first two measure framing + routing and the third a full parse). Not a test.

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


# What the one subscriber does with each event: count it; read one header (Uniqueid, as the call tracker
# does); or walk every header (forces contactd's deferred header split, for a like-for-like full parse).
MODES = ("count", "one-header", "all-headers")


async def run_contactd(chunks: list[bytes], mode: str) -> tuple[float, int]:
    client = AMIClient("127.0.0.1", 1, "bench", "x")
    counted = [0]

    def on_event(message: AMIMessage) -> None:
        counted[0] += 1
        if mode == "one-header":
            message.get("Uniqueid")
        elif mode == "all-headers":
            for _key, _value in message.headers:
                pass

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
        counted[0] += 1
        if mode == "one-header":
            message.get("Uniqueid")
        elif mode == "all-headers":
            for _key, _value in message.items():
                pass

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
        best: dict[str, float] = {}
        for _ in range(args.rounds):
            for name, runner in (("contactd", run_contactd), ("panoramisk 1.4", run_panoramisk)):
                gc.collect()
                elapsed, counted = await runner(chunks, mode)
                if counted != n:
                    raise SystemExit(f"{name} dispatched {counted} events, expected {n}")
                best[name] = min(best.get(name, float("inf")), elapsed)
        print(f"subscriber: {mode}")
        for name, elapsed in best.items():
            print(f"  {name:>15}: {n / elapsed:>12,.0f} events/s  ({elapsed:.3f} s, best of {args.rounds})")
        print(f"  {'ratio':>15}: {best['panoramisk 1.4'] / best['contactd']:.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
