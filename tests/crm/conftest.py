"""Fixtures for the blacklist/callback/business-hours tests: a simulated Asterisk AstDB behind real AMI + PBX."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from astdb_sim import AstDB, start_astdb, stop_astdb


@pytest.fixture
async def astdb() -> AsyncIterator[AstDB]:
    sim = await start_astdb()
    try:
        yield sim
    finally:
        await stop_astdb(sim)
