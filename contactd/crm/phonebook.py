"""The shared phonebook (seed 003 §26): entries with a group, an optional speed dial and a memo."""

from __future__ import annotations

import re

from sqlalchemy import or_, select

from ..store.db import Database
from ..store.models import PhonebookEntry
from .phone import PhoneNumberError, normalize

SPEED_DIAL_RE = re.compile(r"^\d{1,3}$")


class PhonebookError(ValueError):
    pass


class PhonebookService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def save(self, name: str, number: str, *, group: str = "", speed_dial: str | None = None, memo: str = "",
                   entry_id: int | None = None) -> PhonebookEntry:
        if not name.strip():
            raise PhonebookError("이름을 입력하세요 (name required)")
        try:
            digits = normalize(number)
        except PhoneNumberError:
            raise PhonebookError(f"전화번호가 올바르지 않습니다: {number!r}") from None
        speed_dial = (speed_dial or "").strip() or None
        if speed_dial is not None and not SPEED_DIAL_RE.match(speed_dial):
            raise PhonebookError("단축번호는 1~3자리 숫자입니다 (speed dial: 1-3 digits)")
        async with self.db.transaction() as session:
            if speed_dial is not None:
                holder = await session.scalar(select(PhonebookEntry).where(PhonebookEntry.speed_dial == speed_dial))
                if holder is not None and holder.id != entry_id:
                    raise PhonebookError(f"단축번호 {speed_dial}은(는) 이미 {holder.name}에게 지정되어 있습니다")
            entry = await session.get(PhonebookEntry, entry_id) if entry_id else PhonebookEntry()
            if entry is None:
                raise PhonebookError("항목이 없습니다 (no such entry)")
            entry.name, entry.number, entry.group = name.strip(), digits, group.strip()
            entry.speed_dial, entry.memo = speed_dial, memo
            session.add(entry)
        return entry

    async def delete(self, entry_id: int) -> None:
        async with self.db.transaction() as session:
            entry = await session.get(PhonebookEntry, entry_id)
            if entry is not None:
                await session.delete(entry)

    async def search(self, query: str = "", *, group: str | None = None) -> list[PhonebookEntry]:
        stmt = select(PhonebookEntry).order_by(PhonebookEntry.group, PhonebookEntry.name)
        if query.strip():
            digits = re.sub(r"\D", "", query)
            conditions = [PhonebookEntry.name.like(f"%{query.strip()}%")]
            if digits:
                conditions.append(PhonebookEntry.number.like(f"%{digits}%"))
            stmt = stmt.where(or_(*conditions))
        if group is not None:
            stmt = stmt.where(PhonebookEntry.group == group)
        async with self.db.session() as session:
            return list(await session.scalars(stmt))

    async def by_speed_dial(self, code: str) -> PhonebookEntry | None:
        async with self.db.session() as session:
            return await session.scalar(select(PhonebookEntry).where(PhonebookEntry.speed_dial == code))
