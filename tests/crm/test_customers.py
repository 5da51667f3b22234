"""Customer rules on SQLite and PostgreSQL: numbers stored as digits, unique mobiles, search, caller lookup."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contactd.crm.customers import CustomerError, CustomerNotFound, CustomerService
from contactd.store.models import Call


async def test_create_normalizes_numbers_and_flags(any_db) -> None:
    service = CustomerService(any_db)
    customer = await service.create(name=" 홍길동 ", mobile="+82 10-1234-5678", phone="(02) 123-4567", vip="on",
                                    caution=False, sms_opt_out="1", address="서울시 강남구 테헤란로 1")
    again = await service.get(customer.id)
    assert (again.name, again.mobile, again.phone) == ("홍길동", "01012345678", "021234567")
    assert (again.vip, again.caution, again.sms_opt_out) == (True, False, True)


@pytest.mark.parametrize("fields, key", [
    ({"name": "x", "mobile": "02-123-4567"}, "customer.err.mobile_invalid"),
    ({"name": "x", "phone": "abc"}, "customer.err.phone_invalid"),
    ({"memo": "hello"}, "customer.err.empty"),
    ({"name": "x", "nickname": "y"}, "customer.err.unknown_field"),
    ({"name": "가" * 101}, "customer.err.too_long"),
])
async def test_invalid_input_is_refused_with_a_reason(any_db, fields, key) -> None:
    service = CustomerService(any_db)
    with pytest.raises(CustomerError) as caught:
        await service.create(**fields)
    assert caught.value.key == key
    assert await service.count() == 0


async def test_a_mobile_number_belongs_to_one_customer(any_db) -> None:
    service = CustomerService(any_db)
    first = await service.create(name="김철수", mobile="010-1111-2222")
    with pytest.raises(CustomerError) as caught:
        await service.create(name="김영희", mobile="01011112222")
    assert caught.value.key == "customer.err.mobile_taken" and "김철수" in str(caught.value)
    other = await service.create(name="김영희", mobile="010-3333-4444")
    with pytest.raises(CustomerError):
        await service.update(other.id, mobile="010-1111-2222")
    await service.update(first.id, mobile="010-1111-2222", memo="same number again is fine")
    assert (await service.get(first.id)).memo == "same number again is fine"


async def test_update_and_delete(any_db) -> None:
    service = CustomerService(any_db)
    customer = await service.create(name="박민수", phone="031-555-6666")
    await service.update(customer.id, caution=True, address="경기도 성남시")
    changed = await service.get(customer.id)
    assert changed.caution and changed.address == "경기도 성남시" and changed.name == "박민수"
    with pytest.raises(CustomerError):
        await service.update(customer.id, name="", phone="")  # would leave nothing to recognise them by
    await service.delete(customer.id)
    with pytest.raises(CustomerNotFound):
        await service.get(customer.id)
    with pytest.raises(CustomerNotFound):
        await service.delete(customer.id)


async def test_search_by_name_number_and_address(any_db) -> None:
    service = CustomerService(any_db)
    hong = await service.create(name="홍길동", mobile="010-1234-5678", address="서울시 종로구")
    kim = await service.create(name="김철수", phone="02-765-4321", address="부산시 해운대구")
    smith = await service.create(name="John Smith", mobile="010-9999-8888", address="100% Road_1")

    async def ids(query: str, field: str = "all") -> list[int]:
        return sorted(c.id for c in await service.search(query, field=field))

    assert await ids("길동") == [hong.id]
    assert await ids("john") == [smith.id]  # case-insensitive
    assert await ids("1234-5678") == [hong.id]
    assert await ids("7654321") == [kim.id]
    assert await ids("해운대") == [kim.id]
    assert await ids("해운대", "name") == []
    assert await ids("010", "number") == [hong.id, smith.id]
    assert await ids("100%") == [smith.id]  # LIKE wildcards are escaped
    assert await ids("_") == [smith.id]
    assert len(await service.search("")) == 3
    with pytest.raises(CustomerError):
        await service.search("x", field="email")


async def test_find_by_number_for_a_ringing_call_and_recent_calls(any_db) -> None:
    service = CustomerService(any_db)
    plain = await service.create(name="가족1", phone="02-123-4567")
    vip = await service.create(name="가족2", phone="02-123-4567", vip=True)
    found = await service.find_by_number("021234567")
    assert [c.id for c in found] == [vip.id, plain.id]  # VIP first
    assert await service.find_by_number("not a number") == []
    now = datetime.now(UTC)
    async with any_db.transaction() as session:
        for i in range(7):
            session.add(Call(linkedid=f"l{i}", uniqueid=f"u{i}", direction="in", from_number="021234567",
                             started_at=now - timedelta(hours=i)))
        session.add(Call(linkedid="other", uniqueid="o", direction="in", from_number="0299999999", started_at=now))
    calls = await service.recent_calls(customer_id=vip.id, numbers=["021234567"], limit=5)
    assert [c.linkedid for c in calls] == ["l0", "l1", "l2", "l3", "l4"]
