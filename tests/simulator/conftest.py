"""Fixtures for the simulated PBX: a SimulatedAMIServer + SimulatedPBX + a tiny FastAGI IVR + a logged-in AMIClient."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from contactd.simulator.ami_server import SimulatedAMIServer
from contactd.simulator.pbx import SimulatedPBX
from contactd.telephony.agi import AGIServer, AGISession
from contactd.telephony.ami import AMIClient, AMIMessage

SCALE = 0.02

# trace_reader.py lives in tests/telephony (no packages under tests/): make it importable from here.
_TELEPHONY_TESTS = str(Path(__file__).resolve().parent.parent / "telephony")
if _TELEPHONY_TESTS not in sys.path:
    sys.path.append(_TELEPHONY_TESTS)


@dataclass
class Rig:
    server: SimulatedAMIServer
    sim: SimulatedPBX
    agi: AGIServer
    ami: AMIClient
    events: list[AMIMessage] = field(default_factory=list)
    recordings: Path = Path()

    def names(self, linkedid: str | None = None) -> list[str]:
        return [m.event or "" for m in self.events if linkedid is None or _linked(m) == linkedid]

    async def wait_event(self, name: str, timeout: float = 3.0, **match: str) -> AMIMessage:
        async with asyncio.timeout(timeout):
            while True:
                for m in self.events:
                    if m.event == name and all(m.get(k) == v for k, v in match.items()):
                        return m
                await asyncio.sleep(0.01)


def _linked(m: AMIMessage) -> str | None:
    return m.get("Linkedid") or m.get("DestLinkedid")


async def _inbound_ivr(session: AGISession) -> None:
    """The smallest IVR: answer, then send the caller to the support queue (as contactd's flow ends)."""
    await session.answer()
    await session.exec("Queue", "support", "", "", "", "300")


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    server = SimulatedAMIServer(username="contactd", secret="s3cret", port=0)
    await server.start()
    agi = AGIServer("127.0.0.1", 0)
    agi.route("inbound", _inbound_ivr)
    await agi.start()
    sim = SimulatedPBX(server, agi_host="127.0.0.1", agi_port=agi.port, recordings_dir=tmp_path / "rec",
                       time_scale=SCALE)
    ami = AMIClient("127.0.0.1", server.port, "contactd", "s3cret", ping_interval=60.0, action_timeout=3.0)
    r = Rig(server, sim, agi, ami, recordings=tmp_path / "rec")
    ami.subscribe(r.events.append)
    await ami.start()
    await ami.wait_connected(3.0)
    try:
        yield r
    finally:
        await sim.close()
        await ami.close()
        await agi.stop(timeout=1.0)
        await server.stop()
