"""Benchmark: daily and monthly call statistics over 1,000,000 calls in PostgreSQL.

Goal (issue 5): under 300 ms each. Loads the calls with COPY into a scratch database (created and dropped here),
then times StatsService.daily and .monthly (best and median of 5 runs each, after one warm-up).
Run: .venv/bin/python bench/stats.py [calls]   (BENCH_PG_URL=postgresql://postgres@127.0.0.1:5432/test)
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta

import asyncpg

from contactd.crm.stats import StatsService
from contactd.store.db import Database

CALLS = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
START = datetime(2026, 1, 1, tzinfo=UTC)


def rows(n: int):  # type: ignore[no-untyped-def]
    rng = random.Random(7)
    span = 330 * 86400  # ~11 months: ~3,000 calls a day
    for i in range(n):
        started = START + timedelta(seconds=rng.randrange(span))
        direction = rng.choices(("in", "out", "internal"), (70, 25, 5))[0]
        answered = rng.random() < 0.8
        abandoned = direction == "in" and not answered and rng.random() < 0.6
        billsec = rng.randrange(10, 600) if answered else 0
        wait = rng.randrange(0, 120) if direction == "in" else None
        naive = started.replace(tzinfo=None)
        yield {"linkedid": f"L{i}", "uniqueid": f"U{i}", "direction": direction,
               "from_number": f"010{i % 100000000:08d}", "from_name": "", "to_number": "",
               "agent_extension": f"{1001 + i % 20}", "started_at": naive,
               "answered_at": naive + timedelta(seconds=wait or 1) if answered else None,
               "ended_at": naive + timedelta(seconds=billsec + 30), "duration": billsec + 30, "billsec": billsec,
               "wait_seconds": wait, "disposition": "ANSWERED" if answered else "NO ANSWER",
               "abandoned": abandoned, "transferred": False, "recording_status": "none",
               "created_at": datetime.now(UTC).replace(tzinfo=None)}


async def main() -> None:
    name = f"contactd_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    db = Database(url)
    try:
        await db.migrate()
        conn = await asyncpg.connect(url)
        columns = [r["column_name"] for r in await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'calls' AND column_name <> 'id' "
            "ORDER BY ordinal_position")]
        t0 = time.perf_counter()
        records = (tuple(row.get(c) for c in columns) for row in rows(CALLS))
        await conn.copy_records_to_table("calls", records=records, columns=columns)
        await conn.execute("ANALYZE calls")
        await conn.close()
        print(f"loaded {CALLS:,} calls in {time.perf_counter() - t0:.1f} s")
        stats = StatsService(db)
        day, month = date(2026, 6, 15), (2026, 6)
        for label, run in (("daily  (24 hourly buckets)", lambda: stats.daily(day)),
                           ("monthly (30 daily buckets)", lambda: stats.monthly(*month))):
            await run()
            times = []
            for _ in range(5):
                t = time.perf_counter()
                report = await run()
                times.append((time.perf_counter() - t) * 1000)
            print(f"{label}: best {min(times):.1f} ms, median {statistics.median(times):.1f} ms "
                  f"(goal < 300 ms; {report.totals.inbound:,} inbound calls in the period)")
    finally:
        await db.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
