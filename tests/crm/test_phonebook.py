"""The shared phonebook on SQLite and PostgreSQL."""

import pytest

from contactd.crm.phonebook import PhonebookError, PhonebookService
from contactd.store.db import Database


async def test_entries_speed_dials_and_search(any_db: Database) -> None:
    book = PhonebookService(any_db)
    courier = await book.save("CJ대한통운 고객센터", "1588-1255", group="택배", speed_dial="1")
    await book.save("우체국택배", "1588-1300", group="택배")
    with pytest.raises(PhonebookError, match="이미"):
        await book.save("다른 곳", "02-123-4567", speed_dial="1")
    with pytest.raises(PhonebookError, match="전화번호"):
        await book.save("번호 없음", "모름")
    assert [e.name for e in await book.search("1588-1255")] == ["CJ대한통운 고객센터"]
    assert [e.name for e in await book.search("우체국")] == ["우체국택배"]
    assert len(await book.search(group="택배")) == 2
    moved = await book.save(courier.name, courier.number, group="택배", speed_dial="2", entry_id=courier.id)
    assert (await book.by_speed_dial("2")).id == moved.id and await book.by_speed_dial("1") is None
    await book.delete(courier.id)
    assert [e.name for e in await book.search()] == ["우체국택배"]
