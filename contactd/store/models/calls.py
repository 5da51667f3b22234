"""The CDR: one row per call, a call being everything that shares one Asterisk Linkedid."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, utcnow

DIRECTIONS = ("in", "out", "internal")
DISPOSITIONS = ("ANSWERED", "NO ANSWER", "BUSY", "FAILED")


class Call(Base):
    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Linkedid identifies the call; unique so a replayed event can never make a second row.
    linkedid: Mapped[str] = mapped_column(String(64), unique=True)
    uniqueid: Mapped[str] = mapped_column(String(64), index=True)  # the first (caller's) channel
    direction: Mapped[str] = mapped_column(String(8))
    from_number: Mapped[str] = mapped_column(String(40), default="", index=True)
    from_name: Mapped[str] = mapped_column(String(100), default="")
    to_number: Mapped[str] = mapped_column(String(40), default="")
    agent_extension: Mapped[str | None] = mapped_column(String(4), nullable=True, index=True)
    customer_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    queue: Mapped[str | None] = mapped_column(String(64), nullable=True)
    ivr_choice: Mapped[str | None] = mapped_column(String(16), nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    duration: Mapped[int] = mapped_column(Integer, default=0)  # seconds, start to end
    billsec: Mapped[int] = mapped_column(Integer, default=0)  # seconds, answer to end
    wait_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)  # queue wait before answer
    disposition: Mapped[str] = mapped_column(String(16), default="NO ANSWER")
    abandoned: Mapped[bool] = mapped_column(default=False)  # caller left the queue unanswered
    transferred: Mapped[bool] = mapped_column(default=False)
    recording_path: Mapped[str | None] = mapped_column(String(512), nullable=True)
    recording_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    recording_seconds: Mapped[float | None] = mapped_column(nullable=True)
    # none | recording | ready | empty (header-only) | missing | deleted (retention)
    recording_status: Mapped[str] = mapped_column(String(16), default="none")
    harassment_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
