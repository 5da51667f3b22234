"""Call statistics (seed 003 §11-14), computed by SQL aggregates — never by loading call rows into Python.

Buckets are Asia/Seoul hours and days. Korea keeps no daylight-saving time, so the shift from the stored UTC is a
fixed nine hours, which both SQLite and PostgreSQL can apply inside the query.

Counting rules: inbound = direction 'in'; answered = inbound with an answer time; abandoned = the caller left the
queue unanswered (the queue's own QueueCallerAbandon, stored as `abandoned`), never an answered call; missed =
inbound, unanswered, not abandoned in the queue (hung up in the IVR, no agent); outbound = direction 'out'.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, and_, case, cast, func, literal_column, select
from sqlalchemy.sql.elements import ColumnElement

from ..store.db import Database
from ..store.models import Call
from ..store.models.tickets import ConsultationType, Ticket

SEOUL = ZoneInfo("Asia/Seoul")
SEOUL_OFFSET_HOURS = 9
MAX_PERIOD_DAYS = 366


class StatsError(ValueError):
    pass


@dataclass
class Bucket:
    key: int  # hour 0-23 or day of month 1-31
    inbound: int = 0
    answered: int = 0
    missed: int = 0
    abandoned: int = 0
    outbound: int = 0
    avg_wait: float = 0.0
    avg_talk: float = 0.0


@dataclass
class Report:
    title: str
    start: date
    end: date  # inclusive
    buckets: list[Bucket]
    totals: Bucket = field(default_factory=lambda: Bucket(0))


@dataclass
class AgentRow:
    extension: str
    answered: int
    outbound: int
    talk_seconds: int
    avg_talk: float


@dataclass
class TypeRow:
    level1: str
    level2: str
    level3: str
    count: int


def _bounds(start: date, end_inclusive: date) -> tuple[datetime, datetime]:
    lower = datetime.combine(start, time.min, SEOUL).astimezone(UTC)
    upper = datetime.combine(end_inclusive + timedelta(days=1), time.min, SEOUL).astimezone(UTC)
    return lower, upper


def _local_part(db: Database, part: str) -> ColumnElement[int]:
    """Hour or day-of-month of `started_at` in Asia/Seoul, as SQL."""
    if db.is_sqlite:
        fmt = "%H" if part == "hour" else "%d"
        return cast(func.strftime(fmt, Call.started_at, f"+{SEOUL_OFFSET_HOURS} hours"), Integer)
    shifted = Call.started_at + literal_column(f"interval '{SEOUL_OFFSET_HOURS} hours'")
    return cast(func.extract("hour" if part == "hour" else "day", shifted), Integer)


def _measures() -> list[ColumnElement[object]]:
    inbound = Call.direction == "in"
    answered = and_(inbound, Call.answered_at.is_not(None))
    return [
        func.count().filter(inbound).label("inbound"),
        func.count().filter(answered).label("answered"),
        func.count().filter(and_(inbound, Call.answered_at.is_(None), Call.abandoned.is_(False))).label("missed"),
        func.count().filter(and_(inbound, Call.answered_at.is_(None), Call.abandoned.is_(True))).label("abandoned"),
        func.count().filter(Call.direction == "out").label("outbound"),
        func.avg(case((answered, Call.wait_seconds))).label("avg_wait"),
        func.avg(case((Call.answered_at.is_not(None), Call.billsec))).label("avg_talk"),
    ]


def _bucket(key: int, row) -> Bucket:  # type: ignore[no-untyped-def]
    return Bucket(key, row.inbound, row.answered, row.missed, row.abandoned, row.outbound,
                  round(float(row.avg_wait or 0), 1), round(float(row.avg_talk or 0), 1))


class StatsService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def _report(self, title: str, start: date, end: date, part: str, keys: range) -> Report:
        lower, upper = _bounds(start, end)
        bucket_col = _local_part(self.db, part).label("bucket")
        where = and_(Call.started_at >= lower, Call.started_at < upper)
        async with self.db.session() as session:
            rows = (await session.execute(select(bucket_col, *_measures()).where(where).group_by(bucket_col))).all()
            total = (await session.execute(select(*_measures()).where(where))).one()
        by_key = {int(row.bucket): _bucket(int(row.bucket), row) for row in rows}
        return Report(title, start, end, [by_key.get(k, Bucket(k)) for k in keys], _bucket(0, total))

    async def daily(self, day: date) -> Report:
        """One day in hourly buckets."""
        return await self._report(f"{day.isoformat()} 일별 통계", day, day, "hour", range(24))

    async def monthly(self, year: int, month: int) -> Report:
        """One month in daily buckets."""
        first = date(year, month, 1)
        last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        return await self._report(f"{year}-{month:02d} 월별 통계", first, last, "day", range(1, last.day + 1))

    async def bucket_calls(self, day: date, hour: int, limit: int = 500) -> list[Call]:
        """The calls behind one hourly bucket (click a bar to list them)."""
        lower = datetime.combine(day, time(hour), SEOUL).astimezone(UTC)
        async with self.db.session() as session:
            return list(await session.scalars(select(Call).where(
                Call.started_at >= lower, Call.started_at < lower + timedelta(hours=1))
                .order_by(Call.started_at).limit(limit)))

    async def per_agent(self, start: date, end: date) -> list[AgentRow]:
        self._check_period(start, end)
        lower, upper = _bounds(start, end)
        answered = and_(Call.direction == "in", Call.answered_at.is_not(None))
        query = (select(Call.agent_extension,
                        func.count().filter(answered),
                        func.count().filter(Call.direction == "out"),
                        func.coalesce(func.sum(case((Call.answered_at.is_not(None), Call.billsec), else_=0)), 0),
                        func.avg(case((Call.answered_at.is_not(None), Call.billsec))))
                 .where(Call.started_at >= lower, Call.started_at < upper, Call.agent_extension.is_not(None))
                 .group_by(Call.agent_extension).order_by(Call.agent_extension))
        async with self.db.session() as session:
            rows = (await session.execute(query)).all()
        return [AgentRow(ext, a, o, int(t), round(float(avg or 0), 1)) for ext, a, o, t, avg in rows]

    async def per_type(self, start: date, end: date) -> list[TypeRow]:
        self._check_period(start, end)
        lower, upper = _bounds(start, end)
        t1, t2, t3 = (ConsultationType.__table__.alias(name) for name in ("t1", "t2", "t3"))
        query = (select(t1.c.name, t2.c.name, t3.c.name, func.count())
                 .select_from(Ticket)
                 .outerjoin(t1, t1.c.id == Ticket.type1_id).outerjoin(t2, t2.c.id == Ticket.type2_id)
                 .outerjoin(t3, t3.c.id == Ticket.type3_id)
                 .where(Ticket.created_at >= lower, Ticket.created_at < upper, Ticket.status != "discarded")
                 .group_by(t1.c.name, t2.c.name, t3.c.name).order_by(func.count().desc()))
        async with self.db.session() as session:
            rows = (await session.execute(query)).all()
        return [TypeRow(a or "미분류", b or "", c or "", n) for a, b, c, n in rows]

    @staticmethod
    def _check_period(start: date, end: date) -> None:
        if end < start:
            raise StatsError("기간의 끝이 시작보다 빠릅니다 (end before start)")
        if (end - start).days >= MAX_PERIOD_DAYS:
            raise StatsError("기간은 1년까지 조회할 수 있습니다 (one year at most)")
