"""CallHistoryService on SQLite and PostgreSQL: the period bounds (Korea dates), filters and paging."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from contactd.crm.call_history import CallHistoryError, CallHistoryService
from contactd.store.models import Call, Customer

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)  # 12:00 in Seoul


async def test_search_on_both_databases(any_db) -> None:  # type: ignore[no-untyped-def]
    async with any_db.transaction() as session:
        customer = Customer(name="김_철수%", mobile="01012345678")
        session.add(customer)
        await session.flush()
        # 23:30 Seoul on the 23rd = 14:30 UTC: belongs to the 23rd, not the 24th.
        session.add(Call(linkedid="c1", uniqueid="c1", direction="in", from_number="01012345678",
                         started_at=datetime(2026, 11, 23, 14, 30, tzinfo=UTC), customer_id=customer.id,
                         agent_extension="1001"))
        session.add(Call(linkedid="c2", uniqueid="c2", direction="internal", from_number="1001", to_number="1002",
                         started_at=NOW - timedelta(hours=1), agent_extension="1002"))
        session.add(Call(linkedid="c3", uniqueid="c3", direction="out", from_number="15880000",
                         to_number="0212345678", started_at=NOW, agent_extension="1001", recording_status="ready"))
    service = CallHistoryService(any_db, clock=lambda: NOW)
    today = await service.search()
    assert [r.call.linkedid for r in today.rows] == ["c3", "c2"]
    both = await service.search(start=date(2026, 11, 23), end=date(2026, 11, 24), exclude_internal=True)
    assert [r.call.linkedid for r in both.rows] == ["c3", "c1"] and both.rows[1].customer_name == "김_철수%"
    # LIKE wildcards in the query are literal.
    assert [r.call.linkedid for r in (await service.search(start=date(2026, 11, 23), query="_철수%")).rows] == ["c1"]
    assert (await service.search(start=date(2026, 11, 23), query="철%수")).total == 0
    assert [r.call.linkedid for r in (await service.search(start=date(2026, 11, 23), query="02-1234")).rows] == ["c3"]
    assert (await service.search(start=date(2026, 11, 23), agent_extension="1001", recorded_only=True)).total == 1
    paged = await service.search(start=date(2026, 11, 23), per_page=2, page=2)
    assert paged.total == 3 and paged.pages == 2 and [r.call.linkedid for r in paged.rows] == ["c1"]
    with pytest.raises(CallHistoryError):
        await service.search(start=date(2025, 11, 1))
    with pytest.raises(CallHistoryError):
        await service.search(start=date(2026, 11, 24), end=date(2026, 11, 23))
