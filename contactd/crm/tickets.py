"""CS tickets (seed 004): received → transferred → completed, temp-save and resume, discard, additional tickets.

Every action writes one history row (who, what, when) in the same transaction as the change itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ..bus import Bus
from ..store.db import Database
from ..store.models import Call, User, utcnow
from ..store.models.callbacks import Callback
from ..store.models.tickets import CHANNELS, OPEN_STATUSES, Ticket, TicketEntry, TicketHistory

SEOUL = ZoneInfo("Asia/Seoul")
OVERDUE_AFTER = timedelta(days=3)  # seed 004: red 3 days after it was received
ENTRY_EDIT_WINDOW = timedelta(days=1)  # seed 003 §23-4: the author may delete an entry within 1 day
# Two agents saving in the same instant read the same last number; the loser retries with the next one.
NUMBER_ATTEMPTS = 20

EDITABLE_FIELDS = ("customer_id", "order_id", "order_line_id", "call_linkedid", "channel", "type1_id", "type2_id",
                   "type3_id", "title", "body", "admin_memo", "due_at", "recall_at")


class TicketError(ValueError):
    """A ticket action that cannot be done; the message says why (shown to the agent)."""


class TicketNotFound(TicketError):
    pass


class TicketForbidden(TicketError):
    pass


@dataclass(frozen=True)
class InboxCounts:
    todays_calls: int
    received_transfers: int
    sent_transfers: int
    my_open_tickets: int
    callbacks: int

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def is_overdue(ticket: Ticket, now: datetime) -> bool:
    """Shown red: its due date has passed, or it was received more than 3 days ago and is still open."""
    if ticket.status not in OPEN_STATUSES:
        return False
    if ticket.due_at is not None and ticket.due_at < now:
        return True
    return ticket.created_at + OVERDUE_AFTER < now


def seoul_day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, SEOUL).astimezone(UTC)
    return start, start + timedelta(days=1)


class TicketService:
    def __init__(self, db: Database, bus: Bus | None = None, *, clock=utcnow) -> None:  # type: ignore[no-untyped-def]
        self.db = db
        self.bus = bus
        self.clock = clock

    # ---- creation -------------------------------------------------------------------------------------------
    async def create(self, user: User, *, temp: bool = False,
                     also: Callable[[AsyncSession, Ticket], Awaitable[None]] | None = None, **fields: Any) -> Ticket:
        """Save a new ticket as received (F4), or temp-save it (F12) to resume later.

        `also` runs inside the ticket's transaction (e.g. a return setting its order lines' status), so both are
        saved together or neither is.
        """
        values = self._clean(fields)
        if not temp and not (values.get("title") or values.get("body")):
            raise TicketError("제목이나 내용을 입력하세요 (title or body required)")
        for attempt in range(NUMBER_ATTEMPTS):
            try:
                async with self.db.transaction() as session:
                    ticket = Ticket(number=await self._next_number(session), status="temp" if temp else "received",
                                    created_by_id=user.id, assignee_id=user.id, **values)
                    ticket.created_at = ticket.updated_at = self.clock()
                    session.add(ticket)
                    await session.flush()
                    self._log(session, ticket, user, "temp_saved" if temp else "created")
                    if also is not None:
                        await also(session, ticket)
                break
            except IntegrityError:
                # The number was taken between our read and our insert (the unique index refused it). Any other
                # integrity error fails the same way every time and is raised after the last attempt.
                if attempt == NUMBER_ATTEMPTS - 1:
                    raise
        await self._publish("ticket.created", ticket)
        return ticket

    async def additional(self, user: User, ticket_id: int, **fields: Any) -> Ticket:
        """A further ticket for the same customer, order and types (F8)."""
        async with self.db.session() as session:
            origin = await self._get(session, ticket_id)
        carried = {name: getattr(origin, name) for name in ("customer_id", "order_id", "order_line_id", "channel",
                                                            "type1_id", "type2_id", "type3_id", "call_linkedid")}
        carried.update(fields)
        ticket = await self.create(user, **carried)
        async with self.db.transaction() as session:
            fresh = await self._get(session, ticket.id)
            fresh.parent_ticket_id = origin.id
            self._log(session, fresh, user, "additional", f"from {origin.number}")
        ticket.parent_ticket_id = origin.id
        return ticket

    # ---- state changes --------------------------------------------------------------------------------------
    async def save(self, user: User, ticket_id: int, **fields: Any) -> Ticket:
        """Save (F4): a temp-saved ticket is resumed as received; the fields given are updated."""
        return await self._change(user, ticket_id, fields, action="saved", status="received",
                                  allowed_from=("temp", "received"))

    async def edit(self, user: User, ticket_id: int, **fields: Any) -> Ticket:
        """Edit the contents only; the state stays as it is."""
        return await self._change(user, ticket_id, fields, action="edited", status=None,
                                  allowed_from=("received", "transferred", "temp", "completed"))

    async def temp_save(self, user: User, ticket_id: int, **fields: Any) -> Ticket:
        return await self._change(user, ticket_id, fields, action="temp_saved", status="temp", allowed_from=("temp",))

    async def transfer(self, user: User, ticket_id: int, assignee_id: int | None, note: str = "") -> Ticket:
        """Transfer (F5) to another agent; the assignee is required."""
        if not assignee_id:
            raise TicketError("이관 담당자를 선택하세요 (an assignee is required to transfer)")
        async with self.db.transaction() as session:
            assignee = await session.get(User, assignee_id)
            if assignee is None or not assignee.active:
                raise TicketError("이관 담당자가 없습니다 (no such active user)")
            ticket = await self._get(session, ticket_id)
            self._require_state(ticket, ("received", "transferred", "temp"))
            ticket.transferred_from_id = user.id
            ticket.assignee_id = assignee.id
            ticket.status = "transferred"
            ticket.updated_at = self.clock()
            self._log(session, ticket, user, "transferred",
                      f"→ {assignee.display_name or assignee.username}" + (f": {note}" if note else ""))
        await self._publish("ticket.transferred", ticket, assignee_id=assignee.id, from_user_id=user.id)
        return ticket

    async def complete(self, user: User, ticket_id: int) -> Ticket:
        ticket = await self._change(user, ticket_id, {}, action="completed", status="completed",
                                    allowed_from=("received", "transferred", "temp"))
        return ticket

    async def discard(self, user: User, ticket_id: int, reason: str = "") -> Ticket:
        return await self._change(user, ticket_id, {}, action="discarded", status="discarded",
                                  allowed_from=("received", "transferred", "temp"), detail=reason)

    async def mark_recall_done(self, user: User, ticket_id: int) -> Ticket:
        async with self.db.transaction() as session:
            ticket = await self._get(session, ticket_id)
            ticket.recall_done = True
            ticket.updated_at = self.clock()
            self._log(session, ticket, user, "recall_done")
        return ticket

    # ---- entries ---------------------------------------------------------------------------------------------
    async def add_entry(self, user: User, ticket_id: int, body: str) -> TicketEntry:
        if not body.strip():
            raise TicketError("내용을 입력하세요 (entry body required)")
        async with self.db.transaction() as session:
            ticket = await self._get(session, ticket_id)
            entry = TicketEntry(ticket_id=ticket.id, author_id=user.id, body=body.strip(), created_at=self.clock())
            session.add(entry)
            ticket.updated_at = self.clock()
            self._log(session, ticket, user, "entry_added")
        return entry

    async def edit_entry(self, user: User, entry_id: int, body: str) -> TicketEntry:
        async with self.db.transaction() as session:
            entry = await self._entry_for_change(session, user, entry_id)
            entry.body = body.strip()
            entry.updated_at = self.clock()
            self._log(session, await self._get(session, entry.ticket_id), user, "entry_edited", str(entry.id))
        return entry

    async def delete_entry(self, user: User, entry_id: int) -> None:
        async with self.db.transaction() as session:
            entry = await self._entry_for_change(session, user, entry_id)
            ticket = await self._get(session, entry.ticket_id)
            await session.delete(entry)
            self._log(session, ticket, user, "entry_deleted", str(entry_id))

    async def _entry_for_change(self, session: AsyncSession, user: User, entry_id: int) -> TicketEntry:
        entry = await session.get(TicketEntry, entry_id)
        if entry is None:
            raise TicketNotFound(f"entry {entry_id} not found")
        if user.can_edit_consultations:
            return entry
        if entry.author_id != user.id:
            raise TicketForbidden("다른 상담원의 상담내용은 수정/삭제할 수 없습니다 (not your entry)")
        if entry.created_at + ENTRY_EDIT_WINDOW < self.clock():
            raise TicketForbidden("작성 후 1일이 지난 상담내용은 수정/삭제할 수 없습니다 (older than 1 day)")
        return entry

    # ---- reading ---------------------------------------------------------------------------------------------
    async def get(self, ticket_id: int) -> Ticket:
        async with self.db.session() as session:
            return await self._get(session, ticket_id)

    async def entries(self, ticket_id: int) -> list[TicketEntry]:
        async with self.db.session() as session:
            rows = await session.scalars(select(TicketEntry).where(TicketEntry.ticket_id == ticket_id)
                                         .order_by(TicketEntry.created_at, TicketEntry.id))
            return list(rows)

    async def history(self, ticket_id: int) -> list[TicketHistory]:
        async with self.db.session() as session:
            rows = await session.scalars(select(TicketHistory).where(TicketHistory.ticket_id == ticket_id)
                                         .order_by(TicketHistory.at, TicketHistory.id))
            return list(rows)

    async def list(self, *, tab: str = "my_open", user: User | None = None, customer_id: int | None = None,
                   order_id: int | None = None, limit: int = 200) -> list[Ticket]:
        """Inbox tabs: my_open, received_transfers, sent_transfers, unfinished, recall, temp, customer, order."""
        query = select(Ticket)
        uid = user.id if user else None
        if tab == "my_open":
            query = query.where(Ticket.assignee_id == uid, Ticket.status.in_(OPEN_STATUSES))
        elif tab == "received_transfers":
            query = query.where(Ticket.assignee_id == uid, Ticket.status == "transferred")
        elif tab == "sent_transfers":
            query = query.where(Ticket.transferred_from_id == uid, Ticket.status == "transferred")
        elif tab == "temp":
            query = query.where(Ticket.created_by_id == uid, Ticket.status == "temp")
        elif tab == "unfinished":
            query = query.where(Ticket.status.in_(OPEN_STATUSES))
        elif tab == "recall":
            query = query.where(Ticket.recall_at.is_not(None), Ticket.recall_done.is_(False),
                                Ticket.status != "discarded")
        elif tab == "customer":
            query = query.where(Ticket.customer_id == customer_id, Ticket.status != "discarded")
        elif tab == "order":
            query = query.where(Ticket.order_id == order_id, Ticket.status != "discarded")
        else:
            raise TicketError(f"unknown list {tab!r}")
        if tab == "recall":
            query = query.order_by(Ticket.recall_at.asc(), Ticket.id)
        else:
            query = query.order_by(Ticket.created_at.desc(), Ticket.id.desc())
        async with self.db.session() as session:
            return list(await session.scalars(query.limit(limit)))

    async def inbox_counts(self, user: User, *, today: date | None = None) -> InboxCounts:
        """The per-agent tab counts, computed by SQL aggregates in one round trip each."""
        day = today or self.clock().astimezone(SEOUL).date()
        start, end = seoul_day_bounds(day)
        async with self.db.session() as session:
            ticket_counts = (await session.execute(select(
                func.count().filter(and_(Ticket.assignee_id == user.id, Ticket.status == "transferred")),
                func.count().filter(and_(Ticket.transferred_from_id == user.id, Ticket.status == "transferred")),
                func.count().filter(and_(Ticket.assignee_id == user.id, Ticket.status.in_(OPEN_STATUSES))),
            ))).one()
            todays_calls = 0
            if user.extension:
                todays_calls = await session.scalar(select(func.count()).select_from(Call).where(
                    Call.agent_extension == user.extension, Call.started_at >= start, Call.started_at < end)) or 0
            callbacks = await _open_callbacks(session)
        return InboxCounts(todays_calls, ticket_counts[0], ticket_counts[1], ticket_counts[2], callbacks)

    # ---- helpers ---------------------------------------------------------------------------------------------
    async def _change(self, user: User, ticket_id: int, fields: dict[str, Any], *, action: str, status: str | None,
                      allowed_from: tuple[str, ...], detail: str = "") -> Ticket:
        values = self._clean(fields)
        async with self.db.transaction() as session:
            ticket = await self._get(session, ticket_id)
            self._require_state(ticket, allowed_from)
            changed = [name for name, value in values.items() if getattr(ticket, name) != value]
            for name, value in values.items():
                setattr(ticket, name, value)
            if status is not None:
                ticket.status = status
                if status == "completed":
                    ticket.completed_at = self.clock()
            ticket.updated_at = self.clock()
            self._log(session, ticket, user, action, detail or ", ".join(changed))
        await self._publish(f"ticket.{action}", ticket)
        return ticket

    @staticmethod
    def _require_state(ticket: Ticket, allowed: tuple[str, ...]) -> None:
        if ticket.status not in allowed:
            raise TicketError(f"이 접수는 '{ticket.status}' 상태라 할 수 없습니다 (ticket is {ticket.status})")

    @staticmethod
    def _clean(fields: dict[str, Any]) -> dict[str, Any]:
        unknown = set(fields) - set(EDITABLE_FIELDS)
        if unknown:
            raise TicketError(f"unknown ticket fields: {', '.join(sorted(unknown))}")
        if "channel" in fields and fields["channel"] not in CHANNELS:
            raise TicketError(f"channel must be one of {', '.join(CHANNELS)}")
        for name in ("due_at", "recall_at"):
            value = fields.get(name)
            if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
                raise TicketError(f"{name}: a time with a time zone is required")
        return dict(fields)

    async def _get(self, session: AsyncSession, ticket_id: int) -> Ticket:
        ticket = await session.get(Ticket, ticket_id)
        if ticket is None:
            raise TicketNotFound(f"접수 {ticket_id}번이 없습니다 (ticket not found)")
        return ticket

    async def _next_number(self, session: AsyncSession) -> str:
        prefix = "T" + self.clock().astimezone(SEOUL).strftime("%Y%m%d") + "-"
        last = await session.scalar(select(func.max(Ticket.number)).where(Ticket.number.like(prefix + "%")))
        seq = int(last.rsplit("-", 1)[1]) + 1 if last else 1
        return f"{prefix}{seq:04d}"

    def _log(self, session: AsyncSession, ticket: Ticket, user: User | None, action: str, detail: str = "") -> None:
        session.add(TicketHistory(ticket_id=ticket.id, user_id=user.id if user else None, action=action,
                                  detail=detail, at=self.clock()))

    async def _publish(self, topic: str, ticket: Ticket, **extra: Any) -> None:
        if self.bus is not None:
            await self.bus.publish(topic, {"ticket_id": ticket.id, "number": ticket.number, "status": ticket.status,
                                           "assignee_id": ticket.assignee_id, **extra})


async def _open_callbacks(session: AsyncSession) -> int:
    """Open after-hours callbacks: the shop's shared list, shown in every agent's inbox."""
    return await session.scalar(select(func.count()).select_from(Callback).where(Callback.done.is_(False))) or 0


__all__ = ["TicketService", "TicketError", "TicketNotFound", "TicketForbidden", "InboxCounts", "is_overdue"]
