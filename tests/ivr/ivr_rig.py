"""IVR test rig: the inbound flow served by a real FastAGI server on 127.0.0.1, called by the simulator's caller."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from contactd.bus import Bus
from contactd.config import Config
from contactd.crm.blacklist import BlacklistService
from contactd.crm.business_hours import BusinessHours
from contactd.crm.callbacks import CallbackService
from contactd.ivr.inbound import InboundFlow
from contactd.services import Services
from contactd.simulator.agi_caller import AGICallTranscript, CallerBehaviour, place_agi_call
from contactd.store.db import Database
from contactd.telephony.agi import AGIServer

# Wednesday 2026-11-25 10:00 and 20:00 in Seoul (UTC+9); config default hours are Mon-Fri 09:00-18:00.
OPEN_TIME = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
CLOSED_TIME = datetime(2026, 11, 25, 11, 0, tzinfo=UTC)


class FakeTracker:
    """Stands in for telephony.calls.CallTracker: records what the IVR hands it."""

    def __init__(self) -> None:
        self.choices: dict[str, str] = {}

    def set_ivr_choice(self, uniqueid: str, choice: str) -> None:
        self.choices[uniqueid] = choice


@dataclass
class IVRRig:
    services: Services
    flow: InboundFlow
    agi: AGIServer
    tracker: FakeTracker
    now: list[datetime]
    execs: list[tuple[str, str]] = field(default_factory=list)
    queue_status: str | None = None

    async def call(self, keys: list[str] | None = None, *, callerid: str = "01012345678", calleridname: str = "",
                   uniqueid: str = "1795385863.1", hangup_during: str | None = None,
                   on_exec: Callable[[str, str], Awaitable[str | None]] | None = None,
                   **behaviour: Any) -> AGICallTranscript:
        variables = {"QUEUESTATUS": self.queue_status} if self.queue_status else {}

        async def record_exec(app: str, args: str) -> str | None:
            self.execs.append((app, args))
            return await on_exec(app, args) if on_exec is not None else None

        return await place_agi_call("127.0.0.1", self.agi.port, callerid=callerid, calleridname=calleridname,
                                    uniqueid=uniqueid, channel="PJSIP/pstn-00000001",
                                    behaviour=CallerBehaviour(keys=list(keys or []), hangup_during=hangup_during,
                                                              **behaviour),
                                    exec_handler=record_exec, variables=variables, timeout=10.0)


def make_services(db: Database, bus: Bus, config: Config | None = None) -> Services:
    config = config or Config()
    services = Services(config=config, db=db, bus=bus)
    services.hours = BusinessHours(db, config.hours)
    services.blacklist = BlacklistService(db, None, config.pbx)
    services.callbacks = CallbackService(db, bus)
    return services


async def start_rig(db: Database, bus: Bus) -> tuple[IVRRig, AGIServer]:
    services = make_services(db, bus)
    tracker = FakeTracker()
    services.tracker = tracker
    now = [OPEN_TIME]
    flow = InboundFlow(services, clock=lambda: now[0])
    agi = AGIServer("127.0.0.1", 0, command_timeout=5.0, idle_timeout=10.0)
    agi.route("inbound", flow)
    await agi.start()
    services.agi = agi
    return IVRRig(services, flow, agi, tracker, now), agi
