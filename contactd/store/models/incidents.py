"""Harassment incidents (민원차단, seed 003 §16): an agent cut a call for abuse or sexual harassment."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, utcnow

INCIDENT_KINDS = ("abuse", "sexual")  # 폭언, 성희롱


class Incident(Base):
    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    call_linkedid: Mapped[str] = mapped_column(String(64), index=True)
    # Digits only (crm.phone.normalize) so counting a repeat caller's incidents is one indexed lookup.
    caller_number: Mapped[str] = mapped_column(String(40), default="", index=True)
    caller_name: Mapped[str] = mapped_column(String(100), default="")
    # SET NULL: the incident outlives a deleted account; the extension column still says where it happened.
    agent_user_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="SET NULL"), nullable=True, index=True)
    agent_extension: Mapped[str | None] = mapped_column(String(4), nullable=True)
    blacklisted: Mapped[bool] = mapped_column(default=False)  # this incident put the number on the blacklist
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
