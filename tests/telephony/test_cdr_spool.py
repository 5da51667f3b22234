"""No lost CDR: while the database is down the tracker keeps each CDR on disk and writes it once it is back."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select
from tracker_helpers import FakeClock, replay

from contactd.bus import Bus
from contactd.config import PBXConfig
from contactd.store.db import Database
from contactd.store.models import Call
from contactd.telephony.calls import CallTracker

LAB = ("agent-phones",)
TRACE = "ami-originate-inbound-call.txt"  # one IVR call from 홍길동


async def linkedids(db: Database) -> list[str]:
    async with db.session() as session:
        return list(await session.scalars(select(Call.linkedid)))


async def wait_until(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_cdr_survives_a_database_outage(db: Database, bus: Bus, clock: FakeClock, tmp_path: Path) -> None:
    down = Database("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")  # nothing listens: connection refused
    spool = tmp_path / "cdr-spool.jsonl"
    ended = bus.subscribe("call.ended")
    tracker = CallTracker(None, bus, down, PBXConfig(), agent_contexts=LAB, clock=clock, cdr_spool=spool,
                          spool_retry=0.1)
    await tracker.start()
    try:
        replay(tracker, TRACE, clock)
        await tracker.flush(10)
        assert spool.exists() and "홍길동" in spool.read_text(encoding="utf-8")
        assert ended.get_nowait() is None  # nothing announced while nothing is written
        tracker.db = db  # the database is back
        await wait_until(lambda: _has_rows(db))
        assert await linkedids(db) == ["1795385863.0"]
        assert (await ended.get(timeout=5)).payload["linkedid"] == "1795385863.0"
        await wait_until(lambda: _gone(spool))
    finally:
        await tracker.stop()
        await down.close()


async def test_spooled_cdr_is_written_after_a_restart(db: Database, bus: Bus, clock: FakeClock,
                                                      tmp_path: Path) -> None:
    down = Database("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")
    spool = tmp_path / "cdr-spool.jsonl"
    first = CallTracker(None, bus, down, PBXConfig(), agent_contexts=LAB, clock=clock, cdr_spool=spool,
                        spool_retry=60)
    await first.start()
    replay(first, TRACE, clock)
    await first.flush(10)
    await first.stop()  # contactd stops while the database is still down
    await down.close()
    assert spool.exists()

    second = CallTracker(None, bus, db, PBXConfig(), agent_contexts=LAB, clock=clock, cdr_spool=spool)
    await second.start()
    try:
        await wait_until(lambda: _has_rows(db))
        replay(second, TRACE, clock)  # the same events again (a replay after reconnect): still one row
        await second.flush(5)
        assert await linkedids(db) == ["1795385863.0"]
        await wait_until(lambda: _gone(spool))
    finally:
        await second.stop()


async def _has_rows(db: Database) -> bool:
    return bool(await linkedids(db))


async def _gone(path: Path) -> bool:
    return not path.exists()
