"""Demo traffic for `contactd run` without a PBX: a varied inbound call every few seconds on the simulated PBX."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

from contactd.simulator.agi_caller import CallerBehaviour
from contactd.simulator.pbx import SimCall, SimulatedPBX

log = logging.getLogger(__name__)

CALLER_NAMES = ("홍길동", "김태희", "이순신", "유관순", "장보고", "신사임당", "세종대왕", "박지성", "김연아", "")
# What a caller presses in the IVR: menu choices (1 order, 2 delivery, 3 returns, 0 agent) and sometimes nothing.
MENU_KEYS = (["1"], ["2"], ["3"], ["0"], ["1", "2"], [])


def random_mobile(rng: random.Random) -> str:
    return f"010{rng.randint(1000, 9999)}{rng.randint(1000, 9999)}"


def random_call_plan(rng: random.Random, agents: tuple[str, ...]) -> dict[str, object]:
    """One caller's story: who, which keys, answered by whom (or abandoned), how long they talk."""
    answered = rng.random() < 0.75
    return {
        "caller_number": random_mobile(rng),
        "caller_name": rng.choice(CALLER_NAMES),
        # After hours the same keys leave a callback: the menu key is too short for a number (asked again),
        # then "#" = call me back on this number, "1" = confirm. In hours the menu takes the first key.
        "behaviour": CallerBehaviour(keys=list(rng.choice(MENU_KEYS)) + (["#", "1"] if rng.random() < 0.6 else [])),
        "answer_by": rng.choice(agents[:2] or agents) if answered and agents else None,
        "ring_seconds": rng.uniform(2.0, 6.0),
        "talk_seconds": rng.uniform(5.0, 40.0),
        "hangup_by": rng.choice(("caller", "caller", "agent")),
    }


async def run_demo_calls(sim: SimulatedPBX, *, interval: float, stop: asyncio.Event,
                         seed: int | None = None, max_live: int = 5) -> None:
    """Place a varied inbound call every `interval` seconds until `stop` is set; waits for running calls to end."""
    rng = random.Random(seed)
    calls: set[asyncio.Task[None]] = set()
    try:
        while not stop.is_set():
            live = sum(1 for t in calls if not t.done())
            if live < max_live:
                plan = random_call_plan(rng, sim.agents)
                try:
                    call: SimCall = await sim.inbound_call(**plan)  # type: ignore[arg-type]
                except Exception:
                    log.exception("demo: could not place a call")
                else:
                    if call.done is not None:
                        calls.add(call.done)
                        call.done.add_done_callback(calls.discard)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await stop.wait()
    finally:
        pending = [t for t in calls if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=5.0)
