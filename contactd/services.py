"""The container of running services that `app.py` builds and hands to the panel and the IVR.

It is plain data: `app.py` decides what goes in (explicit wiring, no globals); handlers read what they need.
Fields typed `Any` are filled by feature modules whose classes live in their own packages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .bus import Bus
from .config import Config
from .store.db import Database


@dataclass
class Services:
    config: Config
    db: Database
    bus: Bus
    ami: Any = None  # telephony.ami.AMIClient
    pbx: Any = None  # telephony.pbx.PBX
    tracker: Any = None  # telephony.calls.CallTracker
    agi: Any = None  # telephony.agi.AGIServer
    simulator: Any = None  # simulator.pbx.SimulatedPBX when no real Asterisk is configured
    # Feature services (crm/): filled in app.py as they exist.
    blacklist: Any = None
    callbacks: Any = None
    hours: Any = None
    call_control: Any = None
    harassment: Any = None
    recordings: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
