"""IVR fixtures: `rig` (SQLite) and `any_rig` (SQLite + PostgreSQL), see ivr_rig.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from ivr_rig import IVRRig, start_rig

from contactd.bus import Bus
from contactd.store.db import Database


@pytest.fixture
async def rig(db: Database, bus: Bus) -> AsyncIterator[IVRRig]:
    r, agi = await start_rig(db, bus)
    try:
        yield r
    finally:
        await agi.stop()


@pytest.fixture
async def any_rig(any_db: Database, bus: Bus) -> AsyncIterator[IVRRig]:
    r, agi = await start_rig(any_db, bus)
    try:
        yield r
    finally:
        await agi.stop()
