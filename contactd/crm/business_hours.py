"""When the shop answers the phone: a weekly schedule plus holidays, in the shop's time zone (Asia/Seoul).

The configuration file (`[hours]`) gives the defaults; admins override single weekdays and add holidays in
the database (tables business_hours and holidays) from the panel. A range belongs to the day it starts on:
"22:00-02:00" on Monday is open from Monday 22:00 to Tuesday 02:00, and a holiday closes the ranges that
start on that date (the tail of the previous night's range still runs into it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select

from ..config import HoursConfig
from ..store.db import Database
from ..store.models.hours import BusinessDay, Holiday

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_MIDNIGHT = time(0, 0)


class BusinessHoursError(ValueError):
    pass


@dataclass(frozen=True)
class DaySchedule:
    weekday: int  # 0 = Monday
    open: time | None
    close: time | None  # `None` with open set never happens; close <= open means "into the next day"
    closed: bool
    source: str  # "config" | "db"

    @property
    def name(self) -> str:
        return WEEKDAYS[self.weekday]

    @property
    def overnight(self) -> bool:
        return not self.closed and self.open is not None and self.close is not None and self.close <= self.open

    def label(self) -> str:
        if self.closed or self.open is None or self.close is None:
            return ""
        close = "24:00" if self.close == _MIDNIGHT and self.open != _MIDNIGHT else self.close.strftime("%H:%M")
        return f"{self.open.strftime('%H:%M')}-{close}"

    def window(self, day: date, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
        """The open interval of this schedule on `day` as aware datetimes, or None when closed."""
        if self.closed or self.open is None or self.close is None:
            return None
        start = datetime.combine(day, self.open, tz)
        end_day = day + timedelta(days=1) if self.close <= self.open else day
        return start, datetime.combine(end_day, self.close, tz)


@dataclass(frozen=True)
class HolidayEntry:
    date: date
    name: str
    source: str  # "config" (read-only here) | "db"


def parse_hhmm(text: str) -> time:
    """"09:00" → time(9, 0); "24:00" is accepted as a closing time and becomes midnight (next day)."""
    raw = (text or "").strip()
    hh, sep, mm = raw.partition(":")
    if not sep or not hh.isdigit() or not mm.isdigit() or len(mm) != 2 or len(hh) > 2:
        raise BusinessHoursError(f"not a time of day (HH:MM): {text!r}")
    hour, minute = int(hh), int(mm)
    if (hour, minute) == (24, 0):
        return _MIDNIGHT
    if hour > 23 or minute > 59:
        raise BusinessHoursError(f"not a time of day (HH:MM): {text!r}")
    return time(hour, minute)


def parse_range(text: str) -> tuple[time, time] | None:
    """"09:00-18:00" → (open, close); "" → None (closed all day)."""
    raw = (text or "").strip()
    if not raw:
        return None
    start, sep, end = raw.partition("-")
    if not sep:
        raise BusinessHoursError(f"not an opening range (HH:MM-HH:MM): {text!r}")
    opens, closes = parse_hhmm(start), parse_hhmm(end)
    if opens == closes and not (start.strip() in ("00:00", "0:00") and end.strip() == "24:00"):
        raise BusinessHoursError(f"opening and closing time are the same: {text!r}")
    return opens, closes


def weekday_index(weekday: int | str) -> int:
    if isinstance(weekday, str):
        key = weekday.strip().lower()[:3]
        if key not in WEEKDAYS:
            raise BusinessHoursError(f"unknown weekday {weekday!r} (use mon..sun or 0..6)")
        return WEEKDAYS.index(key)
    if not 0 <= weekday <= 6:
        raise BusinessHoursError(f"weekday must be 0 (Monday) .. 6 (Sunday), got {weekday}")
    return weekday


def _as_time(value: time | str | None) -> time | None:
    if value is None or isinstance(value, time):
        return value
    return parse_hhmm(value)


class BusinessHours:
    def __init__(self, db: Database, config: HoursConfig) -> None:
        self.db = db
        self.config = config
        self.tz = ZoneInfo(config.timezone)
        self._defaults = [self._config_day(i) for i in range(7)]
        self._config_holidays: dict[date, str] = {}
        for raw in config.holidays:
            try:
                self._config_holidays[date.fromisoformat(raw.strip())] = ""
            except ValueError:
                raise BusinessHoursError(f"hours.holidays: not an ISO date: {raw!r}") from None

    def _config_day(self, weekday: int) -> DaySchedule:
        raw = getattr(self.config, WEEKDAYS[weekday])
        try:
            rng = parse_range(raw)
        except BusinessHoursError as exc:
            raise BusinessHoursError(f"hours.{WEEKDAYS[weekday]}: {exc}") from None
        if rng is None:
            return DaySchedule(weekday, None, None, True, "config")
        return DaySchedule(weekday, rng[0], rng[1], False, "config")

    # ----------------------------------------------------------------------------------------- reading

    async def get_schedule(self) -> list[DaySchedule]:
        """Seven days, Monday first; a database row wins over the configuration."""
        async with self.db.session() as session:
            rows = {row.weekday: row for row in await session.scalars(select(BusinessDay))}
        days = []
        for i in range(7):
            row = rows.get(i)
            if row is None:
                days.append(self._defaults[i])
            elif row.closed or not row.open or not row.close:
                days.append(DaySchedule(i, None, None, True, "db"))
            else:
                days.append(DaySchedule(i, parse_hhmm(row.open), parse_hhmm(row.close), False, "db"))
        return days

    async def list_holidays(self) -> list[HolidayEntry]:
        async with self.db.session() as session:
            rows = list(await session.scalars(select(Holiday)))
        entries = {d: HolidayEntry(d, name, "config") for d, name in self._config_holidays.items()}
        for row in rows:
            entries[row.date] = HolidayEntry(row.date, row.name, "db")
        return sorted(entries.values(), key=lambda e: e.date)

    async def is_open(self, at: datetime) -> bool:
        if at.tzinfo is None:
            raise BusinessHoursError("is_open needs a timezone-aware datetime")
        local = at.astimezone(self.tz)
        schedule = await self.get_schedule()
        holidays = {entry.date for entry in await self.list_holidays()}
        # The range that started yesterday may still run (overnight), and today's own range.
        for day in (local.date() - timedelta(days=1), local.date()):
            if day in holidays:
                continue
            window = schedule[day.weekday()].window(day, self.tz)
            if window is not None and window[0] <= local < window[1]:
                return True
        return False

    # ----------------------------------------------------------------------------------------- editing

    async def set_day(self, weekday: int | str, open: time | str | None = None, close: time | str | None = None,
                      *, closed: bool = False) -> DaySchedule:
        """Override one weekday: `set_day("sat", "10:00", "14:00")` or `set_day(5, closed=True)`."""
        index = weekday_index(weekday)
        opens, closes = _as_time(open), _as_time(close)
        if not closed:
            if opens is None or closes is None:
                raise BusinessHoursError("an open day needs both an opening and a closing time")
            if opens == closes and opens != _MIDNIGHT:
                raise BusinessHoursError("opening and closing time are the same")
        async with self.db.transaction() as session:
            row = await session.get(BusinessDay, index)
            if row is None:
                row = BusinessDay(weekday=index)
                session.add(row)
            row.closed = closed
            row.open = None if closed else opens.strftime("%H:%M")  # type: ignore[union-attr]
            row.close = None if closed else closes.strftime("%H:%M")  # type: ignore[union-attr]
        return (await self.get_schedule())[index]

    async def reset_day(self, weekday: int | str) -> None:
        """Drop a weekday's override: the configuration's value applies again."""
        index = weekday_index(weekday)
        async with self.db.transaction() as session:
            await session.execute(delete(BusinessDay).where(BusinessDay.weekday == index))

    async def add_holiday(self, day: date, name: str = "") -> HolidayEntry:
        if isinstance(day, datetime) or not isinstance(day, date):
            raise BusinessHoursError(f"a holiday is a calendar date, got {day!r}")
        name = (name or "").strip()[:100]
        async with self.db.transaction() as session:
            existing = await session.scalar(select(Holiday).where(Holiday.date == day))
            if existing is not None:
                raise BusinessHoursError(f"{day.isoformat()} is already a holiday ({existing.name or 'no name'})")
            session.add(Holiday(date=day, name=name))
        return HolidayEntry(day, name, "db")

    async def remove_holiday(self, day: date) -> bool:
        """True when removed; False when it was not a holiday. Holidays from the config file cannot be removed."""
        async with self.db.transaction() as session:
            result = await session.execute(delete(Holiday).where(Holiday.date == day))
            removed = bool(result.rowcount)
        if not removed and day in self._config_holidays:
            raise BusinessHoursError(f"{day.isoformat()} is a holiday in the configuration file ([hours] holidays); "
                                     "remove it there")
        return removed


__all__ = ["BusinessHours", "BusinessHoursError", "DaySchedule", "HolidayEntry", "WEEKDAYS", "parse_range"]
