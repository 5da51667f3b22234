"""Sending SMS: compose (opt-out excluded), schedule and cancel, the dispatcher that sends at the time, reports.

Messages are persisted before anything is sent, so a scheduled message goes out after a daemon restart, and a
message interrupted mid-send resumes with the same per-recipient gateway references (the gateway deduplicates).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, or_, select, update

from ..bus import Bus
from ..config import SmsConfig
from ..store.db import Database
from ..store.models import Customer, utcnow
from ..store.models.sms import SmsMessage, SmsRecipient, SmsTemplate, SmsTemplateFolder
from .sms_gateways import OutgoingSms, SmsGateway
from .sms_text import SmsError, fill, validate_image, validate_message, validate_sender

log = logging.getLogger(__name__)
SEOUL = ZoneInfo("Asia/Seoul")
CANCEL_CUTOFF = timedelta(minutes=10)
STALE_CLAIM = timedelta(minutes=5)  # a message 'sending' this long after its claim lost its sender  # seed 000 §5-2: no cancelling within 10 minutes of the send time


@dataclass(frozen=True)
class Recipient:
    number: str
    name: str = ""
    customer_id: int | None = None


@dataclass(frozen=True)
class ComposeResult:
    message: SmsMessage
    recipients: int
    excluded_opt_out: int


def parse_quiet_hours(spec: str) -> tuple[time, time] | None:
    if not spec.strip():
        return None
    try:
        start, end = (time.fromisoformat(part.strip()) for part in spec.split("-"))
    except ValueError:
        raise SmsError(f"sms.quiet_hours: expected HH:MM-HH:MM, got {spec!r}") from None
    if start == end:
        return None  # an empty window: read as "around the clock" it would hold automatic messages back forever
    return start, end


def quiet_until(at: datetime, quiet: tuple[time, time] | None) -> datetime | None:
    """If `at` falls in the quiet hours (Asia/Seoul, may span midnight), when they end; else None."""
    if quiet is None:
        return None
    start, end = quiet
    if start == end:
        return None
    local = at.astimezone(SEOUL)
    now_t = local.time()
    inside = (start <= now_t < end) if start < end else (now_t >= start or now_t < end)
    if not inside:
        return None
    end_day = local.date() if now_t < end else local.date() + timedelta(days=1)
    return datetime.combine(end_day, end, SEOUL).astimezone(UTC)


class SmsService:
    def __init__(self, db: Database, gateway: SmsGateway, config: SmsConfig, *, bus: Bus | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.gateway = gateway
        self.config = config
        self.bus = bus
        self.clock = clock
        self.quiet = parse_quiet_hours(config.quiet_hours)
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A message to send now was saved: let the sender loop run at once instead of at its next tick."""
        self._wake.set()

    # ---- composing -------------------------------------------------------------------------------------------
    async def compose(self, recipients: Sequence[Recipient], body: str, *, subject: str = "",
                      image: bytes | None = None, image_name: str = "", scheduled_at: datetime | None = None,
                      automatic: bool = False, sender: str | None = None,
                      created_by_id: int | None = None) -> ComposeResult:
        sender_digits = validate_sender(sender or self.config.sender)
        if image is not None:
            validate_image(image, max_kb=self.config.max_image_kb)
        now = self.clock()
        if scheduled_at is not None and scheduled_at.tzinfo is None:
            raise SmsError("scheduled_at needs a time zone")
        if scheduled_at is not None and scheduled_at < now - timedelta(minutes=1):
            raise SmsError("예약 시간이 이미 지났습니다 (the send time is in the past)")
        unique: dict[str, Recipient] = {}
        for person in recipients:
            unique.setdefault(person.number, person)
        if not unique:
            raise SmsError("받는 사람을 선택하세요 (no recipients)")
        today = (scheduled_at or now).astimezone(SEOUL).date()
        async with self.db.transaction() as session:
            await self._fill_from_customers(session, unique)
            opted_out = await self._opted_out(session, list(unique.values()))
            kept = [person for number, person in unique.items() if number not in opted_out]
            if not kept:
                raise SmsError(f"모든 수신자가 수신거부 상태입니다 ({len(opted_out)}명 제외)")
            texts = [fill(body, name=person.name, today=today) for person in kept]
            # The longest filled-in text decides the kind for the whole message.
            figures = max((validate_message(text, subject, has_image=image is not None) for text in texts),
                          key=lambda m: m.bytes)
            message = SmsMessage(kind=figures.kind, sender=sender_digits, subject=subject.strip(), body=body,
                                 automatic=automatic, status="scheduled", scheduled_at=scheduled_at or now,
                                 created_by_id=created_by_id, created_at=now, excluded_opt_out=len(opted_out))
            session.add(message)
            await session.flush()
            if image is not None:
                message.image_path = str(await asyncio.to_thread(self._store_image, message.id, image, image_name))
            for person, text in zip(kept, texts, strict=True):
                session.add(SmsRecipient(message_id=message.id, number=person.number, name=person.name,
                                         customer_id=person.customer_id, body=text, status="waiting",
                                         gateway_ref=uuid.uuid4().hex))
        return ComposeResult(message, len(kept), len(opted_out))

    @staticmethod
    async def _fill_from_customers(session, unique: dict[str, Recipient]) -> None:  # type: ignore[no-untyped-def]
        """A pasted or typed number that belongs to a customer gets that customer's name ({고객명}) and id."""
        nameless = [number for number, person in unique.items() if not person.name or person.customer_id is None]
        if not nameless:
            return
        rows = await session.execute(select(Customer.id, Customer.name, Customer.mobile, Customer.phone).where(
            or_(Customer.mobile.in_(nameless), Customer.phone.in_(nameless))).order_by(Customer.id))
        found: dict[str, tuple[int, str]] = {}
        for cid, name, mobile, phone in rows:
            for number in (mobile, phone):
                if number:
                    found.setdefault(number, (cid, name))
        for number in nameless:
            if number in found:
                person = unique[number]
                cid, name = found[number]
                unique[number] = Recipient(number, person.name or name, person.customer_id or cid)

    async def count_opted_out(self, recipients: Sequence[Recipient]) -> int:
        async with self.db.session() as session:
            return len(await self._opted_out(session, recipients))

    async def _opted_out(self, session, recipients: Sequence[Recipient]) -> set[str]:  # type: ignore[no-untyped-def]
        numbers = [person.number for person in recipients]
        ids = [person.customer_id for person in recipients if person.customer_id]
        if not numbers:
            return set()
        rows = await session.execute(select(Customer.id, Customer.mobile, Customer.phone).where(
            Customer.sms_opt_out.is_(True),
            or_(Customer.mobile.in_(numbers), Customer.phone.in_(numbers), Customer.id.in_(ids or [-1]))))
        out: set[str] = set()
        for cid, mobile, phone in rows:
            out.update(n for n in (mobile, phone) if n)
            out.update(person.number for person in recipients if person.customer_id == cid)
        return out & set(numbers)

    def _store_image(self, message_id: int, data: bytes, name: str) -> Path:
        folder = Path(self.config.spool_dir) / "images"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{message_id}.jpg"
        path.write_bytes(data)
        return path

    # ---- cancelling ------------------------------------------------------------------------------------------
    async def cancel(self, message_id: int) -> SmsMessage:
        now = self.clock()
        async with self.db.transaction() as session:
            message = await session.get(SmsMessage, message_id, with_for_update=not self.db.is_sqlite)
            if message is None:
                raise SmsError("메시지가 없습니다 (no such message)")
            if message.status != "scheduled":
                raise SmsError(f"이미 처리된 메시지는 취소할 수 없습니다 (status {message.status})")
            if now > message.scheduled_at - CANCEL_CUTOFF:
                raise SmsError("발송 10분 전부터는 예약을 취소할 수 없습니다")
            message.status = "cancelled"
            message.cancelled_at = now
            recipients = await session.scalars(select(SmsRecipient).where(SmsRecipient.message_id == message_id))
            for row in recipients:
                row.status = "cancelled"
        return message

    # ---- sending ---------------------------------------------------------------------------------------------
    async def send_due(self) -> int:
        """Send every message whose time has come (and that is not waiting out quiet hours). Returns how many."""
        now = self.clock()
        async with self.db.session() as session:
            due = list(await session.scalars(select(SmsMessage).where(
                SmsMessage.status.in_(("scheduled", "sending")), SmsMessage.scheduled_at <= now)
                .order_by(SmsMessage.scheduled_at, SmsMessage.id)))
        sent = 0
        for message in due:
            if message.automatic:
                wait = quiet_until(now, self.quiet)
                if wait is not None:
                    await self._postpone(message.id, wait)
                    continue
            if message.status == "sending":
                # Left half-sent by a sender that died (a crash, a node that lost the lead): take it over once
                # its claim is stale. A fresh claim belongs to a sender still at work, never to be joined.
                if message.sent_at is not None and now - message.sent_at < STALE_CLAIM:
                    continue
                if await self._send_message(message.id, takeover=True, claimed_at=message.sent_at):
                    sent += 1
                continue
            if await self._send_message(message.id):
                sent += 1
        return sent

    async def _postpone(self, message_id: int, until: datetime) -> None:
        async with self.db.transaction() as session:
            message = await session.get(SmsMessage, message_id)
            if message is not None and message.status == "scheduled":
                message.scheduled_at = until
                log.info("sms %d waits for the end of quiet hours (%s)", message_id, until.isoformat())

    async def _send_message(self, message_id: int, *, takeover: bool = False,
                            claimed_at: datetime | None = None) -> bool:
        """Claim the message in one conditional UPDATE (of two senders racing for it exactly one wins; the claim
        time goes in sent_at until the message settles), then send its waiting recipients. False if not ours."""
        async with self.db.transaction() as session:
            if not takeover:
                condition = SmsMessage.status == "scheduled"
            elif claimed_at is None:
                condition = (SmsMessage.status == "sending") & SmsMessage.sent_at.is_(None)
            else:  # the stale claim we saw, so of two senders taking it over exactly one wins too
                condition = (SmsMessage.status == "sending") & (SmsMessage.sent_at == claimed_at)
            claimed = await session.execute(update(SmsMessage).where(SmsMessage.id == message_id, condition)
                                            .values(status="sending", sent_at=self.clock()))
            if claimed.rowcount != 1:
                return False  # cancelled meanwhile, or another sender has it
            message = await session.get(SmsMessage, message_id)
        image = await asyncio.to_thread(Path(message.image_path).read_bytes) if message.image_path else None
        async with self.db.session() as session:
            waiting = list(await session.scalars(select(SmsRecipient).where(
                SmsRecipient.message_id == message_id, SmsRecipient.status == "waiting").order_by(SmsRecipient.id)))
        for row in waiting:
            result = await self.gateway.send(OutgoingSms(row.gateway_ref, message.kind, message.sender, row.number,
                                                         message.subject, row.body, image))
            async with self.db.transaction() as session:
                fresh = await session.get(SmsRecipient, row.id)
                fresh.attempts += 1
                if result.ok:
                    fresh.status, fresh.sent_at = "sent", self.clock()
                else:
                    fresh.status, fresh.error = "failed", result.error[:300]
        await self._settle(message_id)
        return True

    async def _settle(self, message_id: int) -> None:
        async with self.db.transaction() as session:
            message = await session.get(SmsMessage, message_id)
            counts = dict((await session.execute(select(SmsRecipient.status, func.count()).where(
                SmsRecipient.message_id == message_id).group_by(SmsRecipient.status))).all())
            if counts.get("waiting"):
                return
            ok = counts.get("sent", 0) + counts.get("delivered", 0)
            failed = counts.get("failed", 0)
            message.status = "sent" if not failed else ("failed" if not ok else "partial")
            message.sent_at = self.clock()
        if self.bus is not None:
            await self.bus.publish("sms.sent", {"message_id": message_id, "status": message.status})

    async def apply_report(self, gateway_ref: str, delivered: bool, error: str = "") -> bool:
        """A delivery report from the gateway: delivered or failed on the handset side."""
        async with self.db.transaction() as session:
            row = await session.scalar(select(SmsRecipient).where(SmsRecipient.gateway_ref == gateway_ref))
            if row is None:
                return False
            row.status = "delivered" if delivered else "failed"
            row.error = "" if delivered else (error or "not delivered")[:300]
            row.reported_at = self.clock()
            message_id = row.message_id
        await self._settle(message_id)
        return True

    async def run(self, stop: asyncio.Event, *, interval: float = 5.0,
                  active: Callable[[], bool] = lambda: True) -> None:
        """The daemon's sender loop: picks up scheduled messages, also those saved before a restart.

        One loop does all sending (a handler only wakes it), so a message can never be sent by two passes at once.
        """
        while not stop.is_set():
            self._wake.clear()
            try:
                if active():
                    await self.send_due()
            except Exception:
                log.exception("sms dispatcher pass failed; retrying")
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
            try:
                await asyncio.wait(waiters, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()

    # ---- history ---------------------------------------------------------------------------------------------
    async def history(self, *, start: date, end: date, kind: str | None = None, customer_id: int | None = None,
                      limit: int = 500) -> list[dict[str, object]]:
        """Messages in [start, end] (Asia/Seoul days, at most `history_days` back) with per-status totals."""
        today = self.clock().astimezone(SEOUL).date()
        if (today - start).days > self.config.history_days:
            raise SmsError("발송내역은 1년 이내만 조회할 수 있습니다 (history goes back one year)")
        lower = datetime.combine(start, time.min, SEOUL).astimezone(UTC)
        upper = datetime.combine(end + timedelta(days=1), time.min, SEOUL).astimezone(UTC)
        totals = select(
            SmsRecipient.message_id,
            func.count().label("total"),
            func.sum(case((SmsRecipient.status.in_(("sent", "delivered")), 1), else_=0)).label("sent"),
            func.sum(case((SmsRecipient.status == "waiting", 1), else_=0)).label("waiting"),
            func.sum(case((SmsRecipient.status == "failed", 1), else_=0)).label("failed"),
        ).group_by(SmsRecipient.message_id)
        if customer_id is not None:
            totals = totals.where(SmsRecipient.customer_id == customer_id)
        sub = totals.subquery()
        query = (select(SmsMessage, sub.c.total, sub.c.sent, sub.c.waiting, sub.c.failed)
                 .join(sub, sub.c.message_id == SmsMessage.id)
                 .where(SmsMessage.scheduled_at >= lower, SmsMessage.scheduled_at < upper)
                 .order_by(SmsMessage.scheduled_at.desc()).limit(limit))
        if kind:
            query = query.where(SmsMessage.kind == kind)
        async with self.db.session() as session:
            rows = (await session.execute(query)).all()
        return [{"message": m, "total": t, "sent": s or 0, "waiting": w or 0, "failed": f or 0}
                for m, t, s, w, f in rows]

    async def recipients(self, message_id: int) -> list[SmsRecipient]:
        async with self.db.session() as session:
            return list(await session.scalars(select(SmsRecipient).where(SmsRecipient.message_id == message_id)
                                              .order_by(SmsRecipient.id)))

    async def scheduled(self) -> list[SmsMessage]:
        async with self.db.session() as session:
            return list(await session.scalars(select(SmsMessage).where(SmsMessage.status == "scheduled")
                                              .order_by(SmsMessage.scheduled_at)))


class SmsTemplateService:
    """Template folders (top and sub) and templates; deleting a folder keeps its templates (moved to no folder)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add_folder(self, name: str, parent_id: int | None = None) -> SmsTemplateFolder:
        if not name.strip():
            raise SmsError("폴더 이름을 입력하세요")
        async with self.db.transaction() as session:
            if parent_id is not None:
                parent = await session.get(SmsTemplateFolder, parent_id)
                if parent is None:
                    raise SmsError("상위 폴더가 없습니다")
                if parent.parent_id is not None:
                    raise SmsError("폴더는 2단계(상위/하위)까지 만들 수 있습니다")
            folder = SmsTemplateFolder(name=name.strip(), parent_id=parent_id)
            session.add(folder)
        return folder

    async def rename_folder(self, folder_id: int, name: str) -> None:
        async with self.db.transaction() as session:
            folder = await session.get(SmsTemplateFolder, folder_id)
            if folder is None:
                raise SmsError("폴더가 없습니다")
            folder.name = name.strip()

    async def delete_folder(self, folder_id: int) -> None:
        async with self.db.transaction() as session:
            folder = await session.get(SmsTemplateFolder, folder_id)
            if folder is None:
                raise SmsError("폴더가 없습니다")
            ids = [folder_id, *await session.scalars(select(SmsTemplateFolder.id)
                                                     .where(SmsTemplateFolder.parent_id == folder_id))]
            for template in await session.scalars(select(SmsTemplate).where(SmsTemplate.folder_id.in_(ids))):
                template.folder_id = None
            for child in await session.scalars(select(SmsTemplateFolder).where(SmsTemplateFolder.parent_id
                                                                                == folder_id)):
                await session.delete(child)
            await session.flush()
            await session.delete(folder)

    async def save_template(self, title: str, body: str, *, subject: str = "", folder_id: int | None = None,
                            template_id: int | None = None) -> SmsTemplate:
        if not title.strip() or not body.strip():
            raise SmsError("템플릿 제목과 내용을 입력하세요")
        async with self.db.transaction() as session:
            template = await session.get(SmsTemplate, template_id) if template_id else None
            if template_id and template is None:
                raise SmsError("템플릿이 없습니다")
            if template is None:
                template = SmsTemplate(title=title, body=body)
                session.add(template)
            template.title, template.body, template.subject = title.strip(), body, subject.strip()
            template.folder_id = folder_id
        return template

    async def delete_template(self, template_id: int) -> None:
        async with self.db.transaction() as session:
            template = await session.get(SmsTemplate, template_id)
            if template is not None:
                await session.delete(template)

    async def folders(self) -> list[SmsTemplateFolder]:
        async with self.db.session() as session:
            return list(await session.scalars(select(SmsTemplateFolder).order_by(SmsTemplateFolder.name)))

    async def templates(self, folder_id: int | None = None, *, all_folders: bool = True) -> list[SmsTemplate]:
        query = select(SmsTemplate).order_by(SmsTemplate.title)
        if not all_folders:
            query = query.where(SmsTemplate.folder_id.is_(None) if folder_id is None
                                else SmsTemplate.folder_id == folder_id)
        async with self.db.session() as session:
            return list(await session.scalars(query))
