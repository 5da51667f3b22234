"""The shop's shared phonebook (seed 003 §26): name, number, group, speed dial, memo."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, utcnow


class PhonebookEntry(Base):
    __tablename__ = "phonebook"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), index=True)
    number: Mapped[str] = mapped_column(String(20), index=True)  # digits only
    group: Mapped[str] = mapped_column(String(50), default="", index=True)
    speed_dial: Mapped[str | None] = mapped_column(String(3), unique=True, nullable=True)
    memo: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
