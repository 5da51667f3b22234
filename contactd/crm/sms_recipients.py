"""SMS recipients from an Excel file (seed 003 §22-4): chosen sheet, name column, mobile column, start row.

Reads with the customer import's read-only openpyxl helpers, so both uploads refuse the same bad files the same way.
Blocking (openpyxl): call it through asyncio.to_thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .customer_import import CustomerImportError, column_index, read_rows
from .customer_import import preview as preview_sheets
from .phone import PhoneNumberError, is_mobile, normalize

MAX_RECIPIENTS = 10_000  # one message; larger lists belong in several sends (the seed advises 500-row files)


@dataclass
class ExcelRecipients:
    sheet: str
    recipients: list[tuple[str, str]] = field(default_factory=list)  # (mobile digits, name)
    invalid: list[tuple[int, str]] = field(default_factory=list)  # (Excel row, cell text)
    duplicates: int = 0
    empty: int = 0


def _column(letter: str, what: str) -> int:
    text = (letter or "").strip().upper()
    if not text or not text.isalpha() or len(text) > 3:
        raise CustomerImportError("sms.err.column", f"{what} 열 이름이 올바르지 않습니다: {letter!r}", value=letter)
    return column_index(text)


def read_recipients(data: bytes, *, sheet: str | None, name_column: str, mobile_column: str,
                    start_row: int = 1) -> ExcelRecipients:
    """Every row from `start_row`: a valid mobile number becomes a recipient; numbers seen before are merged."""
    columns = {"mobile": _column(mobile_column, "휴대폰번호")}
    if (name_column or "").strip():
        columns["name"] = _column(name_column, "이름")
    title, rows = read_rows(data, sheet=sheet, start_row=start_row, columns=columns)
    out = ExcelRecipients(title)
    seen: set[str] = set()
    for row_number, values in rows:
        raw = values.get("mobile", "")
        if not raw:
            out.empty += 1
            continue
        try:
            digits = normalize(raw)
        except PhoneNumberError:
            digits = ""
        if not is_mobile(digits):
            out.invalid.append((row_number, raw))
        elif digits in seen:
            out.duplicates += 1
        else:
            if len(out.recipients) >= MAX_RECIPIENTS:
                raise CustomerImportError("sms.err.too_many", f"한 번에 최대 {MAX_RECIPIENTS}명까지 보낼 수 있습니다",
                                          max=MAX_RECIPIENTS)
            seen.add(digits)
            out.recipients.append((digits, values.get("name", "")))
    return out


__all__ = ["ExcelRecipients", "MAX_RECIPIENTS", "preview_sheets", "read_recipients"]
