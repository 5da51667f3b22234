"""Callback requests (seed 003 §19): numbers callers left outside business hours, listed until an agent is done.

"콜백완료" closes all of a customer's open callbacks at once, so `mark_done_for_customer` does exactly that.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import desc, func, or_, select, update

from ..bus import Bus
from ..store.db import Database
from ..store.models.base import utcnow
from ..store.models.callbacks import Callback
from ..store.models.customers import Customer
from .phone import PhoneNumberError, normalize

log = logging.getLogger(__name__)

TOPIC_CAPTURED = "callback.captured"
TOPIC_DONE = "callback.done"


class CallbackError(ValueError):
    pass


def callback_payload(cb: Callback) -> dict[str, Any]:
    return {"id": cb.id, "number": cb.number, "caller_id": cb.caller_id, "uniqueid": cb.uniqueid,
            "customer_id": cb.customer_id, "captured_at": cb.captured_at.isoformat(), "done": cb.done}


class CallbackService:
    def __init__(self, db: Database, bus: Bus | None) -> None:
        self.db = db
        self.bus = bus

    async def capture(self, number: str, caller_id: str = "", uniqueid: str = "", customer_id: int | None = None,
                      *, at: datetime | None = None) -> Callback:
        """Save one request; the IVR calls this only after the caller confirmed the number."""
        try:
            digits = normalize(number)
        except PhoneNumberError as exc:
            raise CallbackError(str(exc)) from None
        caller_digits = "".join(ch for ch in (caller_id or "") if ch.isdigit())
        cb = Callback(number=digits, caller_id=caller_digits, uniqueid=(uniqueid or "")[:64],
                      customer_id=customer_id, captured_at=at or utcnow(), done=False)
        async with self.db.transaction() as session:
            session.add(cb)
        await self._publish(TOPIC_CAPTURED, callback_payload(cb))
        return cb

    async def get(self, callback_id: int) -> Callback | None:
        async with self.db.session() as session:
            return await session.get(Callback, callback_id)

    async def list(self, done: bool | None = False, customer_id: int | None = None, *,
                   since: datetime | None = None, until: datetime | None = None, limit: int = 500,
                   offset: int = 0) -> list[Callback]:
        """Newest first. `done=None` lists both open and done ones; `since`/`until` bound captured_at."""
        stmt = select(Callback)
        if done is not None:
            stmt = stmt.where(Callback.done == done)
        if customer_id is not None:
            stmt = stmt.where(Callback.customer_id == customer_id)
        if since is not None:
            stmt = stmt.where(Callback.captured_at >= since)
        if until is not None:
            stmt = stmt.where(Callback.captured_at < until)
        stmt = stmt.order_by(desc(Callback.captured_at), desc(Callback.id)).limit(max(1, min(limit, 5000)))
        async with self.db.session() as session:
            return list(await session.scalars(stmt.offset(max(0, offset))))

    async def mark_done(self, callback_id: int, by_user_id: int | None = None) -> Callback:
        async with self.db.transaction() as session:
            cb = await session.get(Callback, callback_id)
            if cb is None:
                raise CallbackError(f"no callback #{callback_id}")
            if not cb.done:
                cb.done, cb.done_at, cb.done_by = True, utcnow(), by_user_id
        await self._publish(TOPIC_DONE, {"ids": [callback_id], "by_user_id": by_user_id})
        return cb

    async def mark_done_for_customer(self, customer: int | str, by_user_id: int | None = None) -> int:
        """Close every open callback of a customer (by id: theirs plus those left from their numbers) or of
        a number. Returns how many were closed."""
        async with self.db.transaction() as session:
            if isinstance(customer, int):
                row = await session.get(Customer, customer)
                numbers = [n for n in ((row.mobile, row.phone) if row is not None else ()) if n]
                condition = or_(Callback.customer_id == customer, Callback.number.in_(numbers),
                                Callback.caller_id.in_(numbers))
            else:
                try:
                    digits = normalize(customer)
                except PhoneNumberError as exc:
                    raise CallbackError(str(exc)) from None
                condition = or_(Callback.number == digits, Callback.caller_id == digits)
            ids = list(await session.scalars(select(Callback.id).where(condition, Callback.done.is_(False))))
            if ids:
                await session.execute(update(Callback).where(Callback.id.in_(ids))
                                      .values(done=True, done_at=utcnow(), done_by=by_user_id))
        if ids:
            await self._publish(TOPIC_DONE, {"ids": ids, "by_user_id": by_user_id})
        return len(ids)

    async def open_count(self) -> int:
        async with self.db.session() as session:
            return int(await session.scalar(select(func.count()).select_from(Callback)
                                            .where(Callback.done.is_(False))) or 0)

    async def _publish(self, topic: str, payload: dict[str, Any]) -> None:
        if self.bus is None:
            return
        try:
            await self.bus.publish(topic, payload)
        except Exception:
            # The row is saved; a bus hiccup only delays the panel's refresh.
            log.exception("could not publish %s", topic)


__all__ = ["CallbackError", "CallbackService", "TOPIC_CAPTURED", "TOPIC_DONE", "callback_payload"]
