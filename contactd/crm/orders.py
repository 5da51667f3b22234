"""Orders and products: create/edit/delete, unified order search (seed 004), returns and exchanges.

A return or exchange is started from an order: it sets the chosen lines' status and opens a CS ticket linked to
the order whose text lists the invoice, the order number and the lines concerned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from ..store.db import Database
from ..store.models import ORDER_STATUSES, Order, OrderLine, OrderSource, Product, User, utcnow
from ..store.models.tickets import Ticket
from .phone import PhoneNumberError, normalize
from .tickets import TicketService

SEOUL = ZoneInfo("Asia/Seoul")
PRODUCT_IMAGE_MAX = 300 * 1024  # seed 003 §5
PERIODS = {"today": 0, "week": 6, "month": 30, "3months": 91, "all": None}
ORDER_FIELDS = ("customer_name", "recipient_name", "phone", "order_date", "status", "zip", "address", "invoice",
                "request", "customer_id", "order_no", "source_id")


class OrderError(ValueError):
    """Bad order input; the message is shown to the agent."""


@dataclass
class LineInput:
    product_name: str
    quantity: int = 1
    amount: int = 0
    product_id: int | None = None


@dataclass
class OrderView:
    order: Order
    source: str
    lines: list[OrderLine]
    tickets: list[Ticket] = field(default_factory=list)


def period_start(preset: str, today: date) -> date | None:
    if preset not in PERIODS:
        raise OrderError(f"unknown period {preset!r} (today, week, month, 3months, all)")
    days = PERIODS[preset]
    return None if days is None else today - timedelta(days=days)


class OrderService:
    def __init__(self, db: Database, tickets: TicketService | None = None) -> None:
        self.db = db
        self.tickets = tickets or TicketService(db)

    async def create(self, *, order_no: str, order_date: date, lines: Sequence[LineInput], source_id: int | None,
                     **fields: object) -> Order:
        if not order_no.strip():
            raise OrderError("주문번호를 입력하세요 (order number required)")
        if not lines:
            raise OrderError("주문 상품을 하나 이상 입력하세요 (at least one line)")
        values = self._clean(fields)
        async with self.db.transaction() as session:
            if source_id is not None and await session.get(OrderSource, source_id) is None:
                raise OrderError("주문처가 없습니다 (order sources are added by Excel import)")
            clash = await session.scalar(select(Order.id).where(Order.order_no == order_no.strip(),
                                                                Order.source_id == source_id))
            if clash is not None:
                raise OrderError(f"같은 주문처에 주문번호 {order_no}가 이미 있습니다 (duplicate order)")
            order = Order(order_no=order_no.strip(), order_date=order_date, source_id=source_id, **values)
            session.add(order)
            await session.flush()
            for line in lines:
                session.add(self._line(order, line))
        return order

    async def update(self, order_id: int, *, lines: Sequence[LineInput] | None = None, **fields: object) -> Order:
        values = self._clean(fields)
        async with self.db.transaction() as session:
            order = await self._get(session, order_id)
            for name, value in values.items():
                setattr(order, name, value)
            if lines is not None:
                if not lines:
                    raise OrderError("주문 상품을 하나 이상 입력하세요 (at least one line)")
                await session.execute(delete(OrderLine).where(OrderLine.order_id == order_id))
                for line in lines:
                    session.add(self._line(order, line))
        return order

    async def delete(self, order_id: int) -> None:
        async with self.db.transaction() as session:
            order = await self._get(session, order_id)
            await session.execute(delete(OrderLine).where(OrderLine.order_id == order_id))
            await session.delete(order)

    async def sources(self) -> list[OrderSource]:
        async with self.db.session() as session:
            return list(await session.scalars(select(OrderSource).order_by(OrderSource.name)))

    async def view(self, order_id: int) -> OrderView:
        async with self.db.session() as session:
            order = await self._get(session, order_id)
            return (await self._views(session, [order]))[0]

    async def search(self, *, period: str = "3months", today: date | None = None, order_no: str = "",
                     invoice: str = "", name: str = "", phone: str = "", customer_id: int | None = None,
                     limit: int = 100) -> list[OrderView]:
        """Unified order search: period preset, order number, invoice, orderer/recipient, phone."""
        day = today or utcnow().astimezone(SEOUL).date()
        query = select(Order)
        start = period_start(period, day)
        if start is not None:
            query = query.where(Order.order_date >= start, Order.order_date <= day)
        if order_no.strip():
            query = query.where(Order.order_no == order_no.strip())
        if invoice.strip():
            query = query.where(Order.invoice == invoice.strip())
        if name.strip():
            pattern = f"%{name.strip()}%"
            query = query.where(or_(Order.customer_name.like(pattern), Order.recipient_name.like(pattern)))
        if phone.strip():
            try:
                query = query.where(Order.phone.like(f"%{normalize(phone)}%"))
            except PhoneNumberError:
                raise OrderError(f"전화번호가 올바르지 않습니다: {phone!r}") from None
        if customer_id is not None:
            query = query.where(Order.customer_id == customer_id)
        query = query.order_by(Order.order_date.desc(), Order.id.desc()).limit(limit)
        async with self.db.session() as session:
            orders = list(await session.scalars(query))
            return await self._views(session, orders)

    async def _views(self, session, orders: list[Order]) -> list[OrderView]:  # type: ignore[no-untyped-def]
        if not orders:
            return []
        ids = [order.id for order in orders]
        lines: dict[int, list[OrderLine]] = {i: [] for i in ids}
        for line in await session.scalars(select(OrderLine).where(OrderLine.order_id.in_(ids))
                                          .order_by(OrderLine.id)):
            lines[line.order_id].append(line)
        tickets: dict[int, list[Ticket]] = {i: [] for i in ids}
        for ticket in await session.scalars(select(Ticket).where(Ticket.order_id.in_(ids), Ticket.status
                                                                 != "discarded").order_by(Ticket.id)):
            tickets[ticket.order_id].append(ticket)
        sources = dict((await session.execute(select(OrderSource.id, OrderSource.name))).all())
        return [OrderView(o, sources.get(o.source_id, ""), lines[o.id], tickets[o.id]) for o in orders]

    async def link_ticket(self, user: User, ticket_id: int, order_id: int, line_id: int | None = None) -> Ticket:
        """Link an order (or one of its lines) to a ticket (seed 004: 통합주문검색 → 접수정보)."""
        async with self.db.session() as session:
            order = await self._get(session, order_id)
            if line_id is not None:
                line = await session.get(OrderLine, line_id)
                if line is None or line.order_id != order.id:
                    raise OrderError("그 주문에 없는 상품입니다 (line not in order)")
        return await self.tickets.edit(user, ticket_id, order_id=order_id, order_line_id=line_id,
                                       customer_id=order.customer_id)

    # ---- returns and exchanges (seed 004) -----------------------------------------------------------------------
    async def start_return(self, user: User, order_id: int, line_ids: Sequence[int], reason: str = "") -> Ticket:
        return await self._return_or_exchange(user, order_id, line_ids, kind="return", reason=reason)

    async def start_exchange(self, user: User, order_id: int, line_ids: Sequence[int], *, reason: str = "",
                             new_product_id: int | None = None, new_amount: int | None = None,
                             new_quantity: int | None = None) -> Ticket:
        """Same-item exchange (no new product) or other-item exchange (new product, price and quantity)."""
        return await self._return_or_exchange(user, order_id, line_ids, kind="exchange", reason=reason,
                                              new_product_id=new_product_id, new_amount=new_amount,
                                              new_quantity=new_quantity)

    async def _return_or_exchange(self, user: User, order_id: int, line_ids: Sequence[int], *, kind: str,
                                  reason: str, new_product_id: int | None = None, new_amount: int | None = None,
                                  new_quantity: int | None = None) -> Ticket:
        if not line_ids:
            raise OrderError("반품/교환할 상품을 선택하세요 (choose at least one line)")
        wanted = set(line_ids)
        prepared: dict[str, Any] = {}

        async def apply(session: AsyncSession, ticket: Ticket | None = None) -> None:
            """Check the order and set the lines' status; with `ticket`, inside the ticket's own transaction, so
            the status change and its ticket are saved together or not at all."""
            order = await self._get(session, order_id)
            lines = list(await session.scalars(select(OrderLine).where(OrderLine.id.in_(wanted))
                                               .order_by(OrderLine.id)))
            if len(lines) != len(wanted) or any(line.order_id != order.id for line in lines):
                raise OrderError("그 주문에 없는 상품이 포함되어 있습니다 (line not in order)")
            returned = [line.product_name for line in lines if line.status == "return"] if kind == "return" else []
            if returned:
                # A double click or a second agent would otherwise open a second return ticket for the same goods.
                # (Turning a return into an exchange stays possible: customers change their minds.)
                raise OrderError(f"이미 반품 접수된 상품입니다: {', '.join(returned)} (already returned)")
            new_product = None
            if new_product_id is not None:
                new_product = await session.get(Product, new_product_id)
                if new_product is None:
                    raise OrderError("교환할 상품이 없습니다 (no such product)")
            label = "반품" if kind == "return" else ("다른 상품 교환" if new_product else "동일 상품 교환")
            text = [f"[{label}] 주문번호 {order.order_no} / 송장번호 {order.invoice or '-'}"]
            text += [f"- {line.product_name} × {line.quantity} ({line.amount:,}원)" for line in lines]
            if new_product is not None:
                text.append(f"→ 교환 상품: {new_product.name} × {new_quantity or 1} ({(new_amount or 0):,}원)")
            if reason:
                text.append(f"사유: {reason}")
            prepared.update(title=f"{label} 접수 {order.order_no}", body="\n".join(text), order_id=order.id,
                            order_line_id=lines[0].id if len(lines) == 1 else None, customer_id=order.customer_id)
            if ticket is not None:
                for line in lines:
                    line.status = kind
                order.status = kind

        async with self.db.session() as session:
            await apply(session)  # validate and word the ticket; nothing is written yet
        return await self.tickets.create(user, also=apply, **prepared)

    # ---- helpers ------------------------------------------------------------------------------------------------
    @staticmethod
    def _line(order: Order, line: LineInput) -> OrderLine:
        if line.quantity < 1:
            raise OrderError("수량은 1 이상이어야 합니다 (quantity must be at least 1)")
        if line.amount < 0:
            raise OrderError("금액은 0 이상이어야 합니다 (amount must not be negative)")
        return OrderLine(order_id=order.id, product_id=line.product_id, product_name=line.product_name.strip(),
                         quantity=line.quantity, amount=line.amount, status=order.status or "order")

    @staticmethod
    def _clean(fields: dict[str, object]) -> dict[str, object]:
        unknown = set(fields) - set(ORDER_FIELDS)
        if unknown:
            raise OrderError(f"unknown order fields: {', '.join(sorted(unknown))}")
        if "status" in fields and fields["status"] not in ORDER_STATUSES:
            raise OrderError("상태는 주문/교환/반품 중 하나입니다 (status: order, exchange or return)")
        if fields.get("phone"):
            try:
                fields = {**fields, "phone": normalize(str(fields["phone"]))}
            except PhoneNumberError:
                raise OrderError(f"전화번호가 올바르지 않습니다: {fields['phone']!r}") from None
        return dict(fields)

    @staticmethod
    async def _get(session, order_id: int) -> Order:  # type: ignore[no-untyped-def]
        order = await session.get(Order, order_id)
        if order is None:
            raise OrderError(f"주문 {order_id}이 없습니다 (order not found)")
        return order


class ProductService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def save(self, code: str, name: str, *, image: bytes | None = None, image_type: str | None = None,
                   product_id: int | None = None) -> Product:
        if not code.strip() or not name.strip():
            raise OrderError("상품코드와 상품명을 입력하세요 (code and name required)")
        if image is not None and len(image) >= PRODUCT_IMAGE_MAX:
            raise OrderError(f"상품 이미지는 300KB 미만이어야 합니다 (this one is {len(image) // 1024}KB)")
        if image is not None and not (image.startswith(b"\xff\xd8\xff") or image.startswith(b"\x89PNG")
                                      or image[:6] in (b"GIF87a", b"GIF89a")):
            raise OrderError("상품 이미지는 JPG, PNG, GIF만 올릴 수 있습니다")
        async with self.db.transaction() as session:
            clash = await session.scalar(select(Product.id).where(Product.code == code.strip()))
            if clash is not None and clash != product_id:
                raise OrderError(f"상품코드 {code}가 이미 있습니다 (duplicate code)")
            product = (await session.get(Product, product_id, options=[undefer(Product.image)]) if product_id
                       else Product(code=code, name=name))
            if product is None:
                raise OrderError("상품이 없습니다 (no such product)")
            product.code, product.name = code.strip(), name.strip()
            if image is not None:
                product.image, product.image_type = image, image_type or "application/octet-stream"
            session.add(product)
        return product

    async def get(self, product_id: int) -> Product | None:
        """One product with its image loaded (lists leave the image out)."""
        async with self.db.session() as session:
            return await session.get(Product, product_id, options=[undefer(Product.image)])

    async def delete(self, product_id: int) -> None:
        async with self.db.transaction() as session:
            product = await session.get(Product, product_id)
            if product is not None:
                await session.delete(product)

    async def list(self, query: str = "") -> list[Product]:
        stmt = select(Product).order_by(Product.name)
        if query.strip():
            stmt = stmt.where(or_(Product.name.like(f"%{query.strip()}%"), Product.code == query.strip()))
        async with self.db.session() as session:
            return list(await session.scalars(stmt))

    async def count(self) -> int:
        async with self.db.session() as session:
            return await session.scalar(select(func.count()).select_from(Product)) or 0
