"""Business hours edited by admins: per-weekday overrides of `[hours]` and extra holiday dates."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Boolean, Date, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


class BusinessDay(Base):
    """A weekday's override; a weekday without a row uses the configuration file's value."""

    __tablename__ = "business_hours"

    weekday: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)  # 0 = Monday
    open: Mapped[str | None] = mapped_column(String(5), nullable=True)  # "HH:MM" local time
    close: Mapped[str | None] = mapped_column(String(5), nullable=True)  # "HH:MM"; before open = overnight
    closed: Mapped[bool] = mapped_column(Boolean, default=False)


class Holiday(Base):
    __tablename__ = "holidays"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    date: Mapped[date] = mapped_column(Date, unique=True)
    name: Mapped[str] = mapped_column(String(100), default="")
