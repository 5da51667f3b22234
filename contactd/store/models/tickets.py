"""CS tickets (접수), their entries and history, and the three-level consultation types (seed 004, 003 §2)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, utcnow

TICKET_STATUSES = ("received", "transferred", "completed", "temp", "discarded")
OPEN_STATUSES = ("received", "transferred")
CHANNELS = ("CALL", "QNA")


class ConsultationType(Base):
    __tablename__ = "consultation_types"
    __table_args__ = (UniqueConstraint("level", "name", name="uq_consultation_types_level_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    level: Mapped[int] = mapped_column(Integer)  # 1, 2 or 3
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("consultation_types.id"), nullable=True, index=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Ticket(Base):
    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)  # T20261124-0001 (Asia/Seoul date)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"), nullable=True,
                                                    index=True)
    order_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    order_line_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    call_linkedid: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    channel: Mapped[str] = mapped_column(String(8), default="CALL")
    type1_id: Mapped[int | None] = mapped_column(ForeignKey("consultation_types.id"), nullable=True)
    type2_id: Mapped[int | None] = mapped_column(ForeignKey("consultation_types.id"), nullable=True)
    type3_id: Mapped[int | None] = mapped_column(ForeignKey("consultation_types.id"), nullable=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    admin_memo: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="received", index=True)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True, index=True)
    transferred_from_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True, index=True)
    parent_ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), nullable=True)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    recall_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    recall_done: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class TicketEntry(Base):
    __tablename__ = "ticket_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class TicketHistory(Base):
    __tablename__ = "ticket_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    action: Mapped[str] = mapped_column(String(32))  # created, saved, transferred, completed, edited, ...
    detail: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
