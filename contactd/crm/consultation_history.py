"""Consultation history (seed 003 §10): search tickets by period, type, agent and keyword; export to Excel.

One query covers at most `max_days` (a month, as in the seed; configurable) so a search stays quick on a
busy shop's database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import or_, select

from ..store.db import Database
from ..store.models import Customer, User
from ..store.models.tickets import Ticket, TicketEntry
from .excel_export import rows_workbook
from .stats import SEOUL, _bounds

STATUS_LABELS = {"received": "접수", "transferred": "이관", "completed": "완료", "temp": "임시저장",
                 "discarded": "폐기"}


class HistoryError(ValueError):
    pass


@dataclass
class HistoryRow:
    ticket: Ticket
    customer_name: str
    agent: str


class ConsultationHistoryService:
    def __init__(self, db: Database, *, max_days: int = 31) -> None:
        self.db = db
        self.max_days = max_days

    async def search(self, *, start: date, end: date, type_id: int | None = None, agent_id: int | None = None,
                     keyword: str = "", limit: int = 1000) -> list[HistoryRow]:
        if end < start:
            raise HistoryError("기간의 끝이 시작보다 빠릅니다 (end before start)")
        if (end - start).days + 1 > self.max_days:
            raise HistoryError(f"상담이력은 한 번에 {self.max_days}일까지 조회할 수 있습니다")
        lower, upper = _bounds(start, end)
        query = (select(Ticket, Customer.name, User.display_name)
                 .outerjoin(Customer, Customer.id == Ticket.customer_id)
                 .outerjoin(User, User.id == Ticket.created_by_id)
                 .where(Ticket.created_at >= lower, Ticket.created_at < upper, Ticket.status != "temp"))
        if type_id is not None:
            query = query.where(or_(Ticket.type1_id == type_id, Ticket.type2_id == type_id,
                                    Ticket.type3_id == type_id))
        if agent_id is not None:
            query = query.where(or_(Ticket.created_by_id == agent_id, Ticket.assignee_id == agent_id))
        if keyword.strip():
            # The keyword is text: "100%" or "_" must not act as LIKE wildcards (autoescape escapes them).
            text = keyword.strip()
            in_entries = select(TicketEntry.ticket_id).where(TicketEntry.body.contains(text, autoescape=True))
            query = query.where(or_(Ticket.title.contains(text, autoescape=True),
                                    Ticket.body.contains(text, autoescape=True), Ticket.id.in_(in_entries)))
        query = query.order_by(Ticket.created_at.desc()).limit(limit)
        async with self.db.session() as session:
            rows = (await session.execute(query)).all()
        return [HistoryRow(ticket, name or "", agent or "") for ticket, name, agent in rows]

    async def export(self, rows: list[HistoryRow], title: str = "상담이력") -> bytes:
        return rows_workbook(title, ["접수번호", "접수일시", "고객명", "상담원", "상태", "제목", "내용"], [
            [r.ticket.number, r.ticket.created_at.astimezone(SEOUL).strftime("%Y-%m-%d %H:%M"), r.customer_name,
             r.agent, STATUS_LABELS.get(r.ticket.status, r.ticket.status), r.ticket.title, r.ticket.body]
            for r in rows])
