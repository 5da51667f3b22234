"""Call and recording history (seed 003 §7 통화내역, §8 녹취내역): search the CDR by period, customer name or
number, agent extension, with or without internal calls, one page at a time.

A search reaches back at most one year from today (the seed's limit; longer needs the paid extension there),
which also keeps the query on the indexed `started_at` range of a busy shop's table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select

from ..store.db import Database
from ..store.models import Call, Customer, utcnow
from .phone import normalize_or_none

SEOUL = ZoneInfo("Asia/Seoul")
MAX_DAYS_BACK = 366  # "당일 기준 1년 이내"
MAX_PER_PAGE = 200


class CallHistoryError(ValueError):
    """A search that cannot be run; `key` is the catalogue key of the message, `params` its values."""

    def __init__(self, key: str, message: str, **params: object) -> None:
        super().__init__(message)
        self.key = key
        self.params = params


@dataclass(frozen=True)
class CallRow:
    call: Call
    customer_name: str


@dataclass(frozen=True)
class CallPage:
    rows: list[CallRow]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, SEOUL).astimezone(UTC)


class CallHistoryService:
    def __init__(self, db: Database, *, clock=utcnow) -> None:  # type: ignore[no-untyped-def]
        self.db = db
        self.clock = clock

    def today(self) -> date:
        return self.clock().astimezone(SEOUL).date()

    def earliest(self) -> date:
        return self.today() - timedelta(days=MAX_DAYS_BACK - 1)

    async def search(self, *, start: date | None = None, end: date | None = None, query: str = "",
                     agent_extension: str | None = None, exclude_internal: bool = False,
                     recorded_only: bool = False, page: int = 1, per_page: int = 50) -> CallPage:
        """Newest first. `start`/`end` are Korea-time dates, both included; default: today only.

        `query` is a customer name, or a number when it holds digits (matched anywhere in either party's number).
        `agent_extension` restricts to one agent's calls (the panel forces it for agents: they see their own).
        """
        today = self.today()
        end = end or today
        start = start or end
        if end < start:
            raise CallHistoryError("history.err.period_order", "기간의 끝이 시작보다 빠릅니다")
        if start < self.earliest():
            raise CallHistoryError("history.err.too_old", "1년 이내만 조회할 수 있습니다",
                                   earliest=self.earliest().isoformat())
        page = max(1, page)
        per_page = max(1, min(per_page, MAX_PER_PAGE))
        conditions = [Call.started_at >= _day_start(start), Call.started_at < _day_start(end + timedelta(days=1))]
        if agent_extension:
            conditions.append(Call.agent_extension == agent_extension)
        if exclude_internal:
            conditions.append(Call.direction != "internal")
        if recorded_only:
            conditions.append(Call.recording_status == "ready")
        text = query.strip()
        if text:
            digits = "".join(ch for ch in text if ch.isdigit())
            if text.startswith("+"):
                # "+82 10-1234-5678" is stored as 01012345678: search the national form, not "8210...".
                digits = normalize_or_none(text) or digits
            if digits and all(ch.isdigit() or ch in "-+ ()" for ch in text):
                conditions.append(or_(Call.from_number.contains(digits, autoescape=True),
                                      Call.to_number.contains(digits, autoescape=True)))
            else:
                conditions.append(or_(Customer.name.contains(text, autoescape=True),
                                      Call.from_name.contains(text, autoescape=True)))
        base = select(Call, Customer.name).outerjoin(Customer, Customer.id == Call.customer_id).where(*conditions)
        count_query = (select(func.count()).select_from(Call).outerjoin(Customer, Customer.id == Call.customer_id)
                       .where(*conditions))
        async with self.db.session() as session:
            total = int(await session.scalar(count_query) or 0)
            result = await session.execute(base.order_by(Call.started_at.desc(), Call.id.desc())
                                           .limit(per_page).offset((page - 1) * per_page))
            rows = [CallRow(call, name or "") for call, name in result.all()]
        return CallPage(rows, total, page, per_page)

    async def get(self, call_id: int) -> Call | None:
        async with self.db.session() as session:
            return await session.get(Call, call_id)


__all__ = ["CallHistoryService", "CallHistoryError", "CallPage", "CallRow", "MAX_DAYS_BACK"]
