"""Business hours in Asia/Seoul: weekdays, weekends, holidays, overnight ranges, admin overrides (SQLite + PG)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone

import pytest

from contactd.config import HoursConfig
from contactd.crm.business_hours import BusinessHours, BusinessHoursError
from contactd.store.db import Database

KST = timezone(timedelta(hours=9))


def kst(y: int, m: int, d: int, hh: int, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=KST)


async def test_default_weekday_hours_in_seoul(any_db: Database) -> None:
    hours = BusinessHours(any_db, HoursConfig())
    # Wednesday 2026-11-25
    assert await hours.is_open(kst(2026, 11, 25, 9, 0))
    assert await hours.is_open(kst(2026, 11, 25, 17, 59))
    assert not await hours.is_open(kst(2026, 11, 25, 8, 59))
    assert not await hours.is_open(kst(2026, 11, 25, 18, 0))  # closing time itself is closed
    # 10:00 Seoul expressed in UTC (01:00) is open; 10:00 UTC (19:00 Seoul) is not.
    assert await hours.is_open(datetime(2026, 11, 25, 1, 0, tzinfo=UTC))
    assert not await hours.is_open(datetime(2026, 11, 25, 10, 0, tzinfo=UTC))
    with pytest.raises(BusinessHoursError):
        await hours.is_open(datetime(2026, 11, 25, 10, 0))  # naive


async def test_weekend_closed_by_default_and_open_after_override(any_db: Database) -> None:
    hours = BusinessHours(any_db, HoursConfig())
    saturday = kst(2026, 11, 28, 11, 0)
    assert not await hours.is_open(saturday)
    day = await hours.set_day("sat", "10:00", "14:00")
    assert (day.open, day.close, day.closed, day.source) == (time(10), time(14), False, "db")
    assert await hours.is_open(saturday)
    assert not await hours.is_open(kst(2026, 11, 28, 14, 30))
    await hours.set_day(2, closed=True)  # Wednesdays off
    assert not await hours.is_open(kst(2026, 11, 25, 11, 0))
    schedule = await hours.get_schedule()
    assert [d.label() for d in schedule] == ["09:00-18:00", "09:00-18:00", "", "09:00-18:00", "09:00-18:00",
                                             "10:00-14:00", ""]
    await hours.reset_day("wed")
    assert await hours.is_open(kst(2026, 11, 25, 11, 0))


async def test_holidays_from_db_and_config(any_db: Database) -> None:
    hours = BusinessHours(any_db, HoursConfig(holidays=["2026-12-25"]))
    assert not await hours.is_open(kst(2026, 12, 25, 11, 0))  # Friday, Christmas from the config file
    await hours.add_holiday(date(2026, 11, 25), "창립기념일")
    assert not await hours.is_open(kst(2026, 11, 25, 11, 0))
    assert await hours.is_open(kst(2026, 11, 26, 11, 0))
    with pytest.raises(BusinessHoursError, match="already a holiday"):
        await hours.add_holiday(date(2026, 11, 25), "again")
    listed = await hours.list_holidays()
    assert [(h.date, h.name, h.source) for h in listed] == [(date(2026, 11, 25), "창립기념일", "db"),
                                                             (date(2026, 12, 25), "", "config")]
    assert await hours.remove_holiday(date(2026, 11, 25)) is True
    assert await hours.is_open(kst(2026, 11, 25, 11, 0))
    assert await hours.remove_holiday(date(2026, 11, 25)) is False
    with pytest.raises(BusinessHoursError, match="configuration file"):
        await hours.remove_holiday(date(2026, 12, 25))


async def test_overnight_range_runs_into_the_next_day(any_db: Database) -> None:
    config = HoursConfig(mon="22:00-02:00", tue="", wed="", thu="", fri="", sat="", sun="")
    hours = BusinessHours(any_db, config)
    assert not await hours.is_open(kst(2026, 11, 23, 21, 59))  # Monday
    assert await hours.is_open(kst(2026, 11, 23, 22, 0))
    assert await hours.is_open(kst(2026, 11, 23, 23, 59))
    assert await hours.is_open(kst(2026, 11, 24, 1, 59))  # Tuesday, tail of Monday's night
    assert not await hours.is_open(kst(2026, 11, 24, 2, 0))
    assert not await hours.is_open(kst(2026, 11, 24, 23, 0))  # Tuesday night is closed
    assert not await hours.is_open(kst(2026, 11, 23, 1, 0))  # Sunday night was closed
    # A holiday on Monday cancels the night that starts on Monday, tail included.
    await hours.add_holiday(date(2026, 11, 23))
    assert not await hours.is_open(kst(2026, 11, 23, 23, 0))
    assert not await hours.is_open(kst(2026, 11, 24, 1, 0))


async def test_overnight_override_and_round_the_clock(any_db: Database) -> None:
    hours = BusinessHours(any_db, HoursConfig())
    await hours.set_day("fri", "20:00", "24:00")
    assert await hours.is_open(kst(2026, 11, 27, 23, 59))
    assert not await hours.is_open(kst(2026, 11, 28, 0, 0))
    await hours.set_day("sun", "00:00", "00:00")  # all day
    assert await hours.is_open(kst(2026, 11, 29, 0, 0))
    assert await hours.is_open(kst(2026, 11, 29, 23, 59))
    assert not await hours.is_open(kst(2026, 11, 30, 8, 0))  # Monday before opening


async def test_invalid_input_is_refused_with_a_clear_error(any_db: Database) -> None:
    hours = BusinessHours(any_db, HoursConfig())
    with pytest.raises(BusinessHoursError, match="HH:MM"):
        await hours.set_day("mon", "9", "18:00")
    with pytest.raises(BusinessHoursError, match="both"):
        await hours.set_day("mon", "09:00")
    with pytest.raises(BusinessHoursError, match="weekday"):
        await hours.set_day("xyz", "09:00", "18:00")
    with pytest.raises(BusinessHoursError, match="same"):
        await hours.set_day(0, "09:00", "09:00")
    with pytest.raises(BusinessHoursError, match="hours.sat"):
        BusinessHours(any_db, HoursConfig(sat="10-14"))
    with pytest.raises(BusinessHoursError, match="ISO date"):
        BusinessHours(any_db, HoursConfig(holidays=["25/12/2026"]))
