"""Customers (seed 003 §23): create, edit, delete, search, and find the caller of a ringing phone by number.

Numbers are stored as digits only (crm.phone); a mobile number is unique among customers so that a ringing call
and an Excel import both resolve to one person. Errors carry a catalogue key so the panel can show them in the
user's language; `str(error)` is the Korean text for everyone else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, desc, func, or_, select

from ..store.db import Database
from ..store.models import Base, Call, Customer
from .phone import PhoneNumberError, is_mobile, normalize

TEXT_FIELDS = {"name": 100, "zip": 10, "address": 300, "memo": 5000}
FLAG_FIELDS = ("vip", "caution", "sms_opt_out")
NUMBER_FIELDS = ("mobile", "phone")
SEARCH_FIELDS = ("all", "name", "number", "address")


class CustomerError(ValueError):
    """A customer action that cannot be done. `key` + `params` name a catalogue message; str() is Korean."""

    def __init__(self, key: str, message: str, **params: Any) -> None:
        super().__init__(message)
        self.key = key
        self.params = params


class CustomerNotFound(CustomerError):
    def __init__(self, customer_id: int) -> None:
        super().__init__("customer.err.not_found", f"고객을 찾을 수 없습니다 (#{customer_id})", id=customer_id)


@dataclass(frozen=True)
class CallbackRow:
    number: str
    at: Any
    done: bool


def clean_number(field: str, raw: Any) -> str | None:
    """Digits or None; a mobile field only takes mobile numbers (010..., 011...)."""
    text = "" if raw is None else str(raw).strip()
    if not text:
        return None
    try:
        digits = normalize(text)
    except PhoneNumberError:
        raise CustomerError(f"customer.err.{field}_invalid", f"번호 형식이 올바르지 않습니다: {text}",
                            value=text) from None
    if field == "mobile" and not is_mobile(digits):
        raise CustomerError("customer.err.mobile_invalid", f"휴대폰 번호가 아닙니다: {text}", value=text)
    return digits


def clean_fields(fields: dict[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """Validate what a form or an import row sends; unknown keys are an error (typos must not vanish)."""
    allowed = set(TEXT_FIELDS) | set(FLAG_FIELDS) | set(NUMBER_FIELDS)
    unknown = set(fields) - allowed
    if unknown:
        raise CustomerError("customer.err.unknown_field", f"알 수 없는 항목: {', '.join(sorted(unknown))}",
                            fields=", ".join(sorted(unknown)))
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key in TEXT_FIELDS:
            text = "" if value is None else str(value).strip()
            if len(text) > TEXT_FIELDS[key]:
                raise CustomerError("customer.err.too_long", f"{key}: 최대 {TEXT_FIELDS[key]}자",
                                    field=key, max=TEXT_FIELDS[key])
            out[key] = text
        elif key in FLAG_FIELDS:
            out[key] = value in (True, 1, "1", "true", "on", "yes")
        else:
            out[key] = clean_number(key, value)
    if not partial and not (out.get("name") or out.get("mobile") or out.get("phone")):
        raise CustomerError("customer.err.empty", "고객명이나 전화번호를 입력하세요")
    return out


def number_query(raw: str) -> str | None:
    """The digits to look for when someone types a (partial) number into a search box."""
    digits = "".join(ch for ch in raw if ch.isdigit())
    if len(digits) < 3 or len(digits) < sum(ch.isalnum() for ch in raw):
        return None  # letters mixed in: not a number search
    try:
        return normalize(raw) if raw.strip().startswith("+") else digits
    except PhoneNumberError:
        return digits


class CustomerService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, **fields: Any) -> Customer:
        values = clean_fields(fields)
        async with self.db.transaction() as session:
            await self._check_mobile_free(session, values.get("mobile"), None)
            customer = Customer(**values)
            session.add(customer)
            await session.flush()
        return customer

    async def update(self, customer_id: int, **fields: Any) -> Customer:
        values = clean_fields(fields, partial=True)
        async with self.db.transaction() as session:
            customer = await session.get(Customer, customer_id)
            if customer is None:
                raise CustomerNotFound(customer_id)
            if "mobile" in values:
                await self._check_mobile_free(session, values["mobile"], customer_id)
            for key, value in values.items():
                setattr(customer, key, value)
            if not (customer.name or customer.mobile or customer.phone):
                raise CustomerError("customer.err.empty", "고객명이나 전화번호를 입력하세요")
        return customer

    async def delete(self, customer_id: int) -> Customer:
        async with self.db.transaction() as session:
            customer = await session.get(Customer, customer_id)
            if customer is None:
                raise CustomerNotFound(customer_id)
            await session.delete(customer)
        return customer

    async def get(self, customer_id: int) -> Customer:
        async with self.db.session() as session:
            customer = await session.get(Customer, customer_id)
        if customer is None:
            raise CustomerNotFound(customer_id)
        return customer

    async def search(self, query: str = "", *, field: str = "all", limit: int = 100, offset: int = 0) -> list[Customer]:
        """Name / number / address search (seed 003 §23-3); an empty query lists the newest customers."""
        if field not in SEARCH_FIELDS:
            raise CustomerError("customer.err.search_field", f"검색 항목이 올바르지 않습니다: {field}", field=field)
        text = (query or "").strip()
        stmt = select(Customer)
        if text:
            conditions = []
            digits = number_query(text)
            if field in ("all", "number") and digits:
                conditions += [Customer.mobile.contains(digits, autoescape=True),
                               Customer.phone.contains(digits, autoescape=True)]
            if field in ("all", "name"):
                conditions.append(func.lower(Customer.name).contains(text.lower(), autoescape=True))
            if field in ("all", "address"):
                conditions.append(func.lower(Customer.address).contains(text.lower(), autoescape=True))
            if not conditions:
                return []
            stmt = stmt.where(or_(*conditions))
        stmt = stmt.order_by(desc(Customer.id)).limit(max(1, min(limit, 1000))).offset(max(0, offset))
        async with self.db.session() as session:
            return list(await session.scalars(stmt))

    async def find_by_number(self, number: str) -> list[Customer]:
        """Exact match on mobile or phone: who is calling. VIPs first, then the most recently updated."""
        try:
            digits = normalize(number)
        except PhoneNumberError:
            return []
        stmt = (select(Customer).where(or_(Customer.mobile == digits, Customer.phone == digits))
                .order_by(desc(Customer.vip), desc(Customer.updated_at), desc(Customer.id)).limit(10))
        async with self.db.session() as session:
            return list(await session.scalars(stmt))

    async def recent_calls(self, *, customer_id: int | None = None, numbers: Sequence[str] = (),
                           limit: int = 5) -> list[Call]:
        """Calls of this customer: rows linked to them, or from/to one of their numbers."""
        conditions = []
        if customer_id is not None:
            conditions.append(Call.customer_id == customer_id)
        digits = [n for n in numbers if n]
        if digits:
            conditions += [Call.from_number.in_(digits), Call.to_number.in_(digits)]
        if not conditions:
            return []
        stmt = select(Call).where(or_(*conditions)).order_by(desc(Call.started_at), desc(Call.id)).limit(limit)
        async with self.db.session() as session:
            return list(await session.scalars(stmt))

    async def callbacks(self, customer: Customer, limit: int = 50) -> list[CallbackRow]:
        """Callback requests left from this customer's numbers (the callbacks table comes from crm/callbacks)."""
        table = _callbacks_table()
        numbers = [n for n in (customer.mobile, customer.phone) if n]
        if table is None:
            return []
        number_col = _first_column(table, ("number", "callback_number", "caller_number"))
        time_col = _first_column(table, ("captured_at", "created_at", "at"))
        done_col = _first_column(table, ("done",))
        if number_col is None:
            return []
        condition = number_col.in_(numbers)
        customer_col = _first_column(table, ("customer_id",))
        if customer_col is not None:
            condition = or_(condition, customer_col == customer.id)
        stmt = select(table).where(condition)
        if time_col is not None:
            stmt = stmt.order_by(desc(time_col))
        async with self.db.session() as session:
            rows = (await session.execute(stmt.limit(limit))).mappings().all()
        return [CallbackRow(str(row[number_col.name]), row[time_col.name] if time_col is not None else None,
                            bool(row[done_col.name]) if done_col is not None else False) for row in rows]

    async def count(self) -> int:
        async with self.db.session() as session:
            return int(await session.scalar(select(func.count()).select_from(Customer)) or 0)

    @staticmethod
    async def _check_mobile_free(session: Any, mobile: str | None, own_id: int | None) -> None:
        if not mobile:
            return
        stmt = select(Customer.id, Customer.name).where(Customer.mobile == mobile)
        if own_id is not None:
            stmt = stmt.where(Customer.id != own_id)
        row = (await session.execute(stmt.limit(1))).first()
        if row is not None:
            raise CustomerError("customer.err.mobile_taken", f"이미 등록된 휴대폰 번호입니다 ({row.name or row.id})",
                                name=row.name or str(row.id), id=row.id)


def _callbacks_table() -> Table | None:
    return Base.metadata.tables.get("callbacks")


def _first_column(table: Table, names: Sequence[str]) -> Any:
    for name in names:
        if name in table.c:
            return table.c[name]
    return None
