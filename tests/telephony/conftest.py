"""Fixtures for telephony tests. The root tests/conftest.py provides `db` (migrated SQLite in tmp_path),
`any_db` (the same test on SQLite and PostgreSQL), `pg_url` and `bus` (in-process)."""

from __future__ import annotations

import pytest
from tracker_helpers import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
