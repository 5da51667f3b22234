"""Consultation types in three levels (seed 003 §2): no duplicate names within a level; a type already used by a
ticket can be neither renamed nor deleted."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..store.db import Database
from ..store.models.tickets import ConsultationType, Ticket


class ConsultationTypeError(ValueError):
    pass


@dataclass
class TypeNode:
    id: int
    level: int
    name: str
    parent_id: int | None
    used: bool
    children: list[TypeNode]


class ConsultationTypeService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, name: str, *, parent_id: int | None = None) -> ConsultationType:
        name = name.strip()
        if not name:
            raise ConsultationTypeError("유형 이름을 입력하세요 (name required)")
        async with self.db.transaction() as session:
            level = 1
            if parent_id is not None:
                parent = await session.get(ConsultationType, parent_id)
                if parent is None:
                    raise ConsultationTypeError("상위 유형이 없습니다 (parent not found)")
                if parent.level >= 3:
                    raise ConsultationTypeError("상담유형은 3단계까지입니다 (three levels at most)")
                level = parent.level + 1
            await self._refuse_duplicate(session, level, name)
            node = ConsultationType(level=level, parent_id=parent_id, name=name)
            session.add(node)
        return node

    async def rename(self, type_id: int, name: str) -> ConsultationType:
        name = name.strip()
        if not name:
            raise ConsultationTypeError("유형 이름을 입력하세요 (name required)")
        async with self.db.transaction() as session:
            node = await self._get_unused(session, type_id, "수정")
            if name != node.name:
                await self._refuse_duplicate(session, node.level, name)
            node.name = name
        return node

    async def delete(self, type_id: int) -> None:
        async with self.db.transaction() as session:
            node = await self._get_unused(session, type_id, "삭제")
            if await session.scalar(select(func.count()).where(ConsultationType.parent_id == node.id)):
                raise ConsultationTypeError("하위 유형이 있는 유형은 삭제할 수 없습니다 (has sub-types)")
            await session.delete(node)

    async def tree(self) -> list[TypeNode]:
        async with self.db.session() as session:
            rows = list(await session.scalars(select(ConsultationType).order_by(ConsultationType.level,
                                                                                ConsultationType.name)))
            used = await self._used_ids(session)
        nodes = {row.id: TypeNode(row.id, row.level, row.name, row.parent_id, row.id in used, []) for row in rows}
        roots: list[TypeNode] = []
        for node in nodes.values():
            (nodes[node.parent_id].children if node.parent_id in nodes else roots).append(node)
        return roots

    async def _get_unused(self, session: AsyncSession, type_id: int, verb: str) -> ConsultationType:
        node = await session.get(ConsultationType, type_id)
        if node is None:
            raise ConsultationTypeError("유형이 없습니다 (type not found)")
        if type_id in await self._used_ids(session, type_id):
            raise ConsultationTypeError(f"상담에 사용된 유형은 {verb}할 수 없습니다 (type already used by a ticket)")
        return node

    @staticmethod
    async def _used_ids(session: AsyncSession, only: int | None = None) -> set[int]:
        used: set[int] = set()
        for column in (Ticket.type1_id, Ticket.type2_id, Ticket.type3_id):
            query = select(column).where(column.is_not(None)).distinct()
            if only is not None:
                query = query.where(column == only)
            used.update(await session.scalars(query))
        return used

    @staticmethod
    async def _refuse_duplicate(session: AsyncSession, level: int, name: str) -> None:
        clash = await session.scalar(select(ConsultationType.id).where(
            ConsultationType.level == level, or_(ConsultationType.name == name)))
        if clash is not None:
            raise ConsultationTypeError(f"같은 단계에 '{name}' 유형이 이미 있습니다 (duplicate within level {level})")
