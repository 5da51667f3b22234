"""Callbacks (seed 003 §19): capture, list, mark one done, mark all of a customer's done (SQLite + PG)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contactd.bus import Bus
from contactd.crm.callbacks import CallbackError, CallbackService
from contactd.store.db import Database
from contactd.store.models import Customer, User

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


async def make_customer(db: Database, **fields) -> Customer:  # type: ignore[no-untyped-def]
    customer = Customer(**fields)
    async with db.transaction() as session:
        session.add(customer)
    return customer


async def make_user(db: Database) -> User:
    user = User(username="agent1", display_name="상담원1", password_hash="x", role="agent")
    async with db.transaction() as session:
        session.add(user)
    return user


async def test_capture_publishes_and_lists_newest_first(any_db: Database, bus: Bus) -> None:
    service = CallbackService(any_db, bus)
    sub = bus.subscribe("callback.*")
    first = await service.capture("010-1111-2222", "01011112222", "1.1", None, at=T0)
    second = await service.capture("0212345678", "", "1.2", None, at=T0 + timedelta(minutes=5))
    event = await sub.get(2.0)
    assert event.topic == "callback.captured"
    assert (event.payload["id"], event.payload["number"], event.payload["captured_at"]) == (
        first.id, "01011112222", T0.isoformat())
    assert [cb.id for cb in await service.list()] == [second.id, first.id]
    assert first.number == "01011112222" and second.caller_id == ""
    assert [cb.id for cb in await service.list(since=T0 + timedelta(minutes=1))] == [second.id]
    with pytest.raises(CallbackError):
        await service.capture("abc", "", "1.3")


async def test_mark_done_hides_it_from_the_open_list(any_db: Database, bus: Bus) -> None:
    service = CallbackService(any_db, bus)
    user = await make_user(any_db)
    cb = await service.capture("01011112222", "01011112222", "1.1", None, at=T0)
    other = await service.capture("01033334444", "01033334444", "1.2", None, at=T0)
    done = await service.mark_done(cb.id, user.id)
    assert done.done and done.done_by == user.id and done.done_at is not None
    assert [c.id for c in await service.list()] == [other.id]
    assert [c.id for c in await service.list(done=True)] == [cb.id]
    assert len(await service.list(done=None)) == 2
    assert await service.open_count() == 1
    with pytest.raises(CallbackError, match="no callback"):
        await service.mark_done(9999)


async def test_mark_done_for_customer_closes_all_of_theirs(any_db: Database, bus: Bus) -> None:
    service = CallbackService(any_db, bus)
    customer = await make_customer(any_db, name="홍길동", mobile="01011112222", phone="0212345678")
    linked = await service.capture("01011112222", "01011112222", "1.1", customer.id, at=T0)
    from_landline = await service.capture("0212345678", "0212345678", "1.2", None, at=T0)  # not linked, their number
    stranger = await service.capture("01099998888", "01099998888", "1.3", None, at=T0)
    assert [c.id for c in await service.list(customer_id=customer.id)] == [linked.id]
    assert await service.mark_done_for_customer(customer.id) == 2
    assert [c.id for c in await service.list()] == [stranger.id]
    assert {c.id for c in await service.list(done=True)} == {linked.id, from_landline.id}
    assert await service.mark_done_for_customer(customer.id) == 0


async def test_mark_done_by_number(any_db: Database, bus: Bus) -> None:
    service = CallbackService(any_db, bus)
    await service.capture("01011112222", "", "1.1", None, at=T0)
    await service.capture("01055556666", "01011112222", "1.2", None, at=T0)  # left from that phone
    keep = await service.capture("01033334444", "", "1.3", None, at=T0)
    assert await service.mark_done_for_customer("010-1111-2222") == 2
    assert [c.id for c in await service.list()] == [keep.id]
