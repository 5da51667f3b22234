"""FastAGI concurrency benchmark: N simultaneous simulated calls against the real AGIServer on 127.0.0.1.

Usage: .venv/bin/python bench/agi_concurrency.py [--calls 2000] [--in-process]

Each call runs an 8-command script (ANSWER, GET VARIABLE, STREAM FILE, GET DATA, SET VARIABLE, SAY DIGITS,
EXEC, HANGUP). The simulated Asterisk (contactd.simulator.agi_caller) answers at once and by default runs in a
child process, as a real PBX would, so the server's event loop is measured alone. Printed figures:

- completed/failed sessions (server counters) and caller-side outcomes;
- per-command overhead measured in the server: command written → reply parsed (p50/p99/max);
- memory per live session: tracemalloc growth with all N sessions open at once, divided by N (a second run,
  because tracemalloc slows everything down).
Goal from the brief: all calls complete, p99 < 2 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import statistics
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from contactd.simulator.agi_caller import CallerBehaviour, place_agi_call  # noqa: E402
from contactd.telephony.agi import AGIServer, AGISession  # noqa: E402


def raise_fd_limit(needed: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft < needed:
        print(f"warning: fd limit {soft} < {needed} needed; expect failures", file=sys.stderr)
    return soft


def make_script(think: float) -> Callable[[AGISession], Awaitable[None]]:
    """The 8-command call; `think` > 0 spaces the commands by uniform(0, 2*think) s, standing in for prompt
    playback and caller reaction time so that the calls overlap the way live calls do."""

    async def pause() -> None:
        if think:
            await asyncio.sleep(random.uniform(0, 2 * think))

    async def script(session: AGISession) -> None:
        await pause()
        await session.answer()
        await pause()
        name = await session.get_variable("CALLERID(num)")
        await pause()
        await session.stream_file("welcome", "12")
        await pause()
        digits, _ = await session.get_data("menu", 3000, 4)
        await pause()
        await session.set_variable("CONTACTD_STATE", f"menu {digits} {name}")
        await pause()
        await session.say_digits(digits or "0")
        await pause()
        await session.exec("Queue", "support", "", "", "", "300")
        await pause()
        await session.hangup()

    return script


async def run_callers(port: int, calls: int, timeout: float) -> dict[str, object]:
    async def one(i: int) -> str:
        t = await place_agi_call("127.0.0.1", port, callerid=f"010{i:08d}", uniqueid=f"bench.{i}",
                                 behaviour=CallerBehaviour(keys=["", "12#"]), timeout=timeout)
        ok = t.closed_by == "server" and len(t.commands) == 8
        return "ok" if ok else f"{t.closed_by}:{len(t.commands)}"

    started = time.perf_counter()
    outcomes = await asyncio.gather(*(one(i) for i in range(calls)), return_exceptions=True)
    elapsed = time.perf_counter() - started
    return {"outcomes": dict(Counter(o if isinstance(o, str) else type(o).__name__ for o in outcomes)),
            "elapsed": elapsed}


async def callers_subprocess(port: int, calls: int, timeout: float) -> dict[str, object]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--role", "callers", "--port", str(port), "--calls", str(calls),
        "--timeout", str(timeout), stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout + 60)
    return json.loads(out.decode())


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def latency_run(calls: int, in_process: bool, timeout: float, think: float) -> None:
    server = AGIServer(port=0, backlog=4096, latency_samples=calls * 10)
    server.route("inbound", make_script(think))
    await server.start()
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, server.active_sessions)
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch())
    try:
        if in_process:
            result = await run_callers(server.port, calls, timeout)
        else:
            result = await callers_subprocess(server.port, calls, timeout)
        # No wait needed: a session's counters are final before its socket closes, and callers end on EOF.
    finally:
        watcher.cancel()
        await server.stop()
    lat = [x * 1000 for x in server.command_latencies]
    where = "same process" if in_process else "child process"
    mode = f"paced, think time uniform(0, {2 * think:g}) s between commands" if think else "burst, no pauses"
    print(f"-- {calls} calls, {mode}; simulated Asterisk in a {where}")
    print(f"   server: completed {server.sessions_completed}, failed {server.sessions_failed}, "
          f"dropped connections {server.connections_dropped}, peak live sessions {peak}")
    print(f"   callers: {result['outcomes']} in {result['elapsed']:.2f} s "
          f"({len(lat) / result['elapsed']:.0f} commands/s)")
    if lat:
        print(f"   per-command overhead (write → reply parsed, {len(lat)} commands): "
              f"p50 {statistics.median(lat):.3f} ms, p99 {pct(lat, 0.99):.3f} ms, max {max(lat):.3f} ms")


async def memory_run(calls: int, timeout: float) -> None:
    """Hold all sessions open at once (after ANSWER) and measure what they cost the server."""
    gate = asyncio.Event()
    release = asyncio.Event()
    server = AGIServer(port=0, backlog=4096, latency_samples=1)

    async def held(session: AGISession) -> None:
        await session.answer()
        if server.active_sessions >= calls:
            gate.set()
        await release.wait()
        await session.hangup()

    server.route("inbound", held)
    await server.start()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    proc = asyncio.create_task(callers_subprocess(server.port, calls, timeout))
    try:
        await asyncio.wait_for(gate.wait(), timeout)
        held_bytes = tracemalloc.get_traced_memory()[0] - base
        release.set()
        await proc
    finally:
        tracemalloc.stop()
        release.set()
        await server.stop()
    print(f"memory: {held_bytes / calls / 1024:.1f} KiB per live session (tracemalloc, {calls} sessions open "
          f"at once, server side incl. transport buffers' Python objects)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--in-process", action="store_true", help="run the simulated callers in this process")
    parser.add_argument("--think", type=float, default=0.5, help="mean pause between commands, paced run")
    parser.add_argument("--role", default="bench", choices=["bench", "callers"])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    raise_fd_limit(args.calls * 2 + 256)
    if args.role == "callers":
        print(json.dumps(asyncio.run(run_callers(args.port, args.calls, args.timeout))))
        return
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, fd limit "
          f"{resource.getrlimit(resource.RLIMIT_NOFILE)[0]}")
    asyncio.run(latency_run(args.calls, args.in_process, args.timeout, think=0.0))
    asyncio.run(latency_run(args.calls, args.in_process, args.timeout, think=args.think))
    asyncio.run(memory_run(args.calls, args.timeout))


if __name__ == "__main__":
    main()
