"""The store on SQLite and PostgreSQL: migrations, UTC round trips, the one-row-per-call rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from contactd.store.db import Database
from contactd.store.models import Call, Customer, User


async def test_migrated_schema_round_trips_hangul_and_aware_times(any_db: Database) -> None:
    seoul = timezone(timedelta(hours=9))
    started = datetime(2026, 11, 24, 19, 30, tzinfo=seoul)
    async with any_db.transaction() as session:
        session.add(Customer(name="홍길동", mobile="01012345678", vip=True))
        session.add(Call(linkedid="1795385863.1", uniqueid="1795385863.1", direction="in", from_number="0212345678",
                         from_name="홍길동", started_at=started))
    async with any_db.session() as session:
        call = await session.scalar(select(Call))
        customer = await session.scalar(select(Customer))
    assert call.from_name == "홍길동" and customer.vip
    assert call.started_at == started and call.started_at.tzinfo == UTC


async def test_linkedid_is_unique(any_db: Database) -> None:
    now = datetime.now(UTC)
    async with any_db.transaction() as session:
        session.add(Call(linkedid="L1", uniqueid="U1", direction="in", started_at=now))
    with pytest.raises(IntegrityError):
        async with any_db.transaction() as session:
            session.add(Call(linkedid="L1", uniqueid="U2", direction="in", started_at=now))
    async with any_db.session() as session:
        assert len((await session.scalars(select(Call))).all()) == 1


async def test_naive_datetimes_are_refused(any_db: Database) -> None:
    with pytest.raises(Exception, match="naive"):
        async with any_db.transaction() as session:
            session.add(User(username="x", password_hash="h", role="agent", created_at=datetime(2026, 1, 1)))


async def test_migrate_is_idempotent(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path}/twice.sqlite3")
    await db.migrate()
    await db.migrate()
    assert await db.ping()
    await db.close()
