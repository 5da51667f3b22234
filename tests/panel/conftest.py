"""Panel fixtures: the real aiohttp app on a loopback port over a migrated SQLite file (helpers: panel_helpers)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from panel_helpers import Panel, PanelFactory, start_panel

from contactd.bus import Bus
from contactd.store.db import Database


@pytest.fixture
async def make_panel(bus: Bus) -> AsyncIterator[PanelFactory]:
    panels: list[Panel] = []

    async def factory(db: Database, **kwargs: Any) -> Panel:
        panel = await start_panel(db, bus, **kwargs)
        panels.append(panel)
        return panel

    yield factory
    for panel in panels:
        for session in panel.sessions:
            await session.close()
        await panel.server.close()


@pytest.fixture
async def panel(make_panel: PanelFactory, db: Database) -> Panel:
    return await make_panel(db)
