"""Fixtures shared by the whole suite: real databases (SQLite file, PostgreSQL), real Redis, an in-process bus.

PostgreSQL and Redis tests run when the servers answer (CONTACTD_TEST_PG_URL / CONTACTD_TEST_REDIS_URL, defaulting to
the local servers). Without them those tests are skipped with a reason; `.ci/run` fails the build on any such skip.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from service_checks import unavailable

from contactd.bus import Bus
from contactd.store.db import Database, upgrade_to_head

PG_ADMIN_URL = os.environ.get("CONTACTD_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("CONTACTD_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _off_loop(fn, *args):  # type: ignore[no-untyped-def]
    """Run blocking set-up (asyncio.run inside) in a thread: async fixtures may request these lazily."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result()


def _tcp_open(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session; dropped afterwards."""
    if not _tcp_open(PG_ADMIN_URL, 5432):
        unavailable(f"PostgreSQL not reachable at {PG_ADMIN_URL} (postgres test)")
    import asyncpg

    name = f"contactd_test_{uuid.uuid4().hex[:10]}"
    admin = PG_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://")

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    _off_loop(asyncio.run, run(f'CREATE DATABASE "{name}"'))
    base = admin.rsplit("/", 1)[0]
    url = f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1)
    _off_loop(upgrade_to_head, url)
    yield url
    _off_loop(asyncio.run, run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrate once per session, copy per test: Alembic on every test would dominate the suite's time."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite3"
    _off_loop(upgrade_to_head, f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, _sqlite_template: Path) -> str:
    path = tmp_path / "contactd.sqlite3"
    path.write_bytes(_sqlite_template.read_bytes())
    return f"sqlite+aiosqlite:///{path}"


async def _truncate_all(db: Database) -> None:
    from sqlalchemy import text

    from contactd.store.models import Base

    async with db.engine.begin() as conn:
        names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def any_db(request: pytest.FixtureRequest) -> AsyncIterator[Database]:
    """The same test on SQLite and on PostgreSQL (each test starts with empty tables)."""
    if request.param == "sqlite":
        db = Database(request.getfixturevalue("sqlite_url"))
    else:
        db = Database(request.getfixturevalue("pg_url"))
        await _truncate_all(db)
    yield db
    await db.close()


@pytest.fixture
async def db(sqlite_url: str) -> AsyncIterator[Database]:
    """A migrated SQLite database in tmp_path."""
    database = Database(sqlite_url)
    yield database
    await database.close()


@pytest.fixture
async def pg_db(pg_url: str) -> AsyncIterator[Database]:
    database = Database(pg_url)
    await _truncate_all(database)
    yield database
    await database.close()


@pytest.fixture
def redis_url() -> str:
    if not _tcp_open(REDIS_URL, 6379):
        unavailable(f"Redis not reachable at {REDIS_URL} (redis test)")
    return REDIS_URL


@pytest.fixture
async def bus() -> AsyncIterator[Bus]:
    b = Bus()
    await b.start()
    yield b
    await b.close()
