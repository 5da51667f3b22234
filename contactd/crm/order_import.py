"""Order Excel import (seed 003 §3): choose the sheet, the header row (none, 1, 2, 3), map columns to fields.

The file is read as a stream (openpyxl read-only) and written in chunks inside ONE transaction: a file that
breaks half-way imports nothing. Bad rows are skipped and reported with their row number; an order already in
the database (same order number and source) is skipped, so importing the same file twice never doubles orders.
Order sources grow only here (seed 003 §23-8).
"""

from __future__ import annotations

import asyncio
import io
import itertools
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from openpyxl import load_workbook
from openpyxl.utils import column_index_from_string
from openpyxl.utils.exceptions import InvalidFileException
from sqlalchemy import insert, select, tuple_

from ..store.db import Database
from ..store.models import Order, OrderLine, OrderSource
from .phone import PhoneNumberError, normalize

FIELDS: dict[str, str] = {
    "source": "주문처", "customer_name": "고객명", "phone": "전화번호", "product": "상품명", "quantity": "수량",
    "amount": "결제금액", "order_no": "주문번호", "order_date": "주문일", "status": "상태", "zip": "우편번호",
    "address": "주소", "invoice": "송장번호", "request": "요청사항", "recipient_name": "수령인",
}
REQUIRED = ("source", "order_no", "order_date", "product")
STATUS_WORDS = {"": "order", "주문": "order", "order": "order", "교환": "exchange", "exchange": "exchange",
                "반품": "return", "return": "return"}
CHUNK = 2000
MAX_ERRORS_KEPT = 1000
EXCEL_EPOCH = datetime(1899, 12, 30)


class ImportFileError(ValueError):
    """The file itself cannot be imported (not an xlsx, wrong sheet, bad mapping): nothing was imported."""


@dataclass(frozen=True)
class RowError:
    row: int
    field: str
    message: str


@dataclass
class ImportReport:
    rows_read: int = 0
    orders_created: int = 0
    lines_created: int = 0
    duplicates_skipped: int = 0
    sources_created: list[str] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0


@dataclass
class Preview:
    sheets: list[str]
    columns: list[str]  # A, B, C ...
    header: list[str]  # the header row's texts (empty when header_row is 0)
    rows: list[list[str]]


def _open(data: bytes):  # type: ignore[no-untyped-def]
    try:
        return load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise ImportFileError(f"엑셀(.xlsx) 파일을 읽을 수 없습니다: {type(exc).__name__}") from None


def _sheet(workbook, sheet: str):  # type: ignore[no-untyped-def]
    if sheet not in workbook.sheetnames:
        raise ImportFileError(f"'{sheet}' 시트가 없습니다 (sheets: {', '.join(workbook.sheetnames)})")
    return workbook[sheet]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def preview(data: bytes, sheet: str | None = None, header_row: int = 1, rows: int = 5) -> Preview:
    if header_row not in (0, 1, 2, 3):
        raise ImportFileError("머리글 행은 없음, 1, 2, 3 중 하나입니다 (header row: 0-3)")
    workbook = _open(data)
    try:
        ws = _sheet(workbook, sheet or workbook.sheetnames[0])
        header: list[str] = []
        body: list[list[str]] = []
        for index, row in enumerate(ws.iter_rows(values_only=True), 1):
            if index == header_row:
                header = [_text(v) for v in row]
            elif index > header_row:
                body.append([_text(v) for v in row])
                if len(body) >= rows:
                    break
        width = max([len(header), *(len(r) for r in body)] or [0])
        from openpyxl.utils import get_column_letter

        return Preview(list(workbook.sheetnames), [get_column_letter(i + 1) for i in range(width)], header, body)
    finally:
        workbook.close()


def parse_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if 1 <= value < 100000:
            return (EXCEL_EPOCH + timedelta(days=float(value))).date()
        text = str(int(value))
    else:
        text = _text(value)
    # Korean Excel shows dates as "2026. 11. 24." (and "2026. 11. 24. 오후 1:45:00" with a time).
    match = re.fullmatch(r"(\d{4})\s*[-./]?\s*(\d{1,2})\s*[-./]?\s*(\d{1,2})\.?(?:[ T].*)?", text)
    if not match:
        raise ValueError(f"날짜 형식이 아닙니다: {text!r}")
    return date(int(match[1]), int(match[2]), int(match[3]))


def _phone_text(value: Any) -> str:
    """Excel turns 010-1234-5678 typed into a numeric cell into 1012345678: give the lost leading 0 back."""
    text = _text(value)
    if isinstance(value, int | float) and not isinstance(value, bool) and text.isdigit() \
            and len(text) in (8, 9, 10) and not (len(text) == 8 and text.startswith(("15", "16", "18"))):
        return "0" + text  # 8 digits starting 15xx/16xx/18xx are shop numbers, never written with a 0
    return text


def _number(value: Any, label: str, *, minimum: int) -> int:
    if value is None or _text(value) == "":
        return minimum
    try:
        number = int(float(str(value).replace(",", "").replace("원", "").strip()))
    except ValueError:
        raise ValueError(f"{label}: 숫자가 아닙니다 ({_text(value)!r})") from None
    if number < minimum:
        raise ValueError(f"{label}: {minimum} 이상이어야 합니다")
    return number


def _rows(ws, header_row: int, columns: dict[str, int]) -> Iterator[tuple[int, dict[str, Any]]]:  # type: ignore[no-untyped-def]
    for index, row in enumerate(ws.iter_rows(min_row=header_row + 1, values_only=True), header_row + 1):
        if row is None or all(v is None or _text(v) == "" for v in row):
            continue
        yield index, {name: (row[col] if col < len(row) else None) for name, col in columns.items()}


def _parse_row(raw: dict[str, Any]) -> dict[str, Any]:
    missing = [FIELDS[name] for name in REQUIRED if _text(raw.get(name)) == ""]
    if missing:
        raise ValueError(f"필수 값이 비어 있습니다: {', '.join(missing)}")
    status = STATUS_WORDS.get(_text(raw.get("status")).lower())
    if status is None:
        raise ValueError(f"상태는 주문/교환/반품 중 하나입니다 ({_text(raw.get('status'))!r})")
    phone = _phone_text(raw.get("phone"))
    if phone:
        try:
            phone = normalize(phone)
        except PhoneNumberError:
            raise ValueError(f"전화번호가 올바르지 않습니다 ({phone!r})") from None
    return {
        "source": _text(raw["source"])[:100], "order_no": _text(raw["order_no"])[:64],
        "order_date": parse_date(raw["order_date"]), "status": status, "phone": phone,
        "customer_name": _text(raw.get("customer_name"))[:100],
        "recipient_name": _text(raw.get("recipient_name"))[:100], "zip": _text(raw.get("zip"))[:10],
        "address": _text(raw.get("address"))[:300], "invoice": _text(raw.get("invoice"))[:64],
        "request": _text(raw.get("request")), "product": _text(raw["product"])[:200],
        "quantity": _number(raw.get("quantity"), "수량", minimum=1),
        "amount": _number(raw.get("amount"), "결제금액", minimum=0),
    }


async def import_orders(db: Database, data: bytes, *, sheet: str, header_row: int,
                        mapping: dict[str, str]) -> ImportReport:
    """Import orders; `mapping` is field → column letter (e.g. {"order_no": "B"})."""
    if header_row not in (0, 1, 2, 3):
        raise ImportFileError("머리글 행은 없음, 1, 2, 3 중 하나입니다 (header row: 0-3)")
    unknown = set(mapping) - set(FIELDS)
    if unknown:
        raise ImportFileError(f"알 수 없는 항목: {', '.join(sorted(unknown))}")
    missing = [FIELDS[name] for name in REQUIRED if not mapping.get(name)]
    if missing:
        raise ImportFileError(f"필수 항목의 열을 지정하세요: {', '.join(missing)}")
    try:
        columns = {name: column_index_from_string(letter.strip().upper()) - 1
                   for name, letter in mapping.items() if letter}
    except ValueError as exc:
        raise ImportFileError(f"열 이름이 올바르지 않습니다: {exc}") from None

    workbook = _open(data)
    report = ImportReport()
    try:
        ws = _sheet(workbook, sheet)
        async with db.transaction() as session:
            sources = dict((await session.execute(select(OrderSource.name, OrderSource.id))).all())
            created_orders: dict[tuple[int, str], int] = {}
            skipped: set[tuple[int, str]] = set()  # across chunks: an order's rows may straddle two chunks
            chunk: list[tuple[int, dict[str, Any]]] = []

            async def flush() -> None:
                if chunk:
                    await _write_chunk(session, chunk, sources, created_orders, report, skipped)
                chunk.clear()

            rows = _rows(ws, header_row, columns)
            try:
                while True:
                    # openpyxl decompresses and parses synchronously: read each chunk in a worker thread so the
                    # daemon (AMI reader, screen-pops) keeps running during a 100,000-row import.
                    batch = await asyncio.to_thread(lambda: list(itertools.islice(rows, CHUNK)))
                    if not batch:
                        break
                    for row_number, raw in batch:
                        report.rows_read += 1
                        try:
                            chunk.append((row_number, _parse_row(raw)))
                        except ValueError as exc:
                            report.error_count += 1
                            if len(report.errors) < MAX_ERRORS_KEPT:
                                report.errors.append(RowError(row_number, "", str(exc)))
                    await flush()
            except (zipfile.BadZipFile, KeyError, OSError, EOFError) as exc:
                # The transaction rolls back: a file broken half-way imports nothing.
                raise ImportFileError(f"파일이 손상되어 가져오지 못했습니다 (row {report.rows_read}): "
                                      f"{type(exc).__name__}") from None
    finally:
        workbook.close()
    return report


async def _write_chunk(session, chunk, sources, created_orders, report: ImportReport,  # type: ignore[no-untyped-def]
                       seen_duplicates: set[tuple[int, str]]) -> None:
    for _, row in chunk:
        if row["source"] not in sources:
            source_id = await session.scalar(insert(OrderSource).values(name=row["source"]).returning(OrderSource.id))
            sources[row["source"]] = source_id
            report.sources_created.append(row["source"])
    keys = {(sources[row["source"]], row["order_no"]) for _, row in chunk}
    fresh_keys = keys - created_orders.keys()
    existing: set[tuple[int, str]] = set()
    if fresh_keys:
        existing = set((await session.execute(select(Order.source_id, Order.order_no).where(
            tuple_(Order.source_id, Order.order_no).in_(list(fresh_keys))))).all())
    new_orders: dict[tuple[int, str], dict[str, Any]] = {}
    lines: list[tuple[tuple[int, str], dict[str, Any]]] = []
    for _, row in chunk:
        key = (sources[row["source"]], row["order_no"])
        if key in existing:
            if key not in seen_duplicates:
                report.duplicates_skipped += 1
                seen_duplicates.add(key)
            continue
        if key not in created_orders and key not in new_orders:
            new_orders[key] = {"source_id": key[0], "order_no": key[1], "order_date": row["order_date"],
                               "status": row["status"], "phone": row["phone"], "customer_name": row["customer_name"],
                               "recipient_name": row["recipient_name"], "zip": row["zip"],
                               "address": row["address"], "invoice": row["invoice"], "request": row["request"]}
        lines.append((key, {"product_name": row["product"], "quantity": row["quantity"], "amount": row["amount"],
                            "status": row["status"]}))
    if new_orders:
        result = await session.execute(insert(Order).returning(Order.id, Order.source_id, Order.order_no),
                                       list(new_orders.values()))
        for order_id, source_id, order_no in result.all():
            created_orders[(source_id, order_no)] = order_id
        report.orders_created += len(new_orders)
    if lines:
        await session.execute(insert(OrderLine), [{"order_id": created_orders[key], **line} for key, line in lines])
        report.lines_created += len(lines)
