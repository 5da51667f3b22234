"""Customer upload from Excel (seed 003 §28): pick the sheet, the first data row and the column of each field.

All-or-nothing per file: a file that cannot be read imports zero rows; a readable file imports every valid row in
one transaction and reports the others (bad rows, duplicate mobiles — within the file or already in the DB).
"""

from __future__ import annotations

import asyncio
import io
import re
import zipfile
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from ..store.db import Database
from ..store.models import Customer
from .customers import CustomerError, clean_fields

IMPORT_FIELDS = ("name", "mobile", "phone", "zip", "address", "memo")
MAX_ROWS = 50_000
PREVIEW_ROWS = 8
PREVIEW_COLUMNS = 52  # A..AZ on the mapping screen; a sheet claiming 16384 columns must not fill the page
# A 50,000-row customer sheet unpacks to ~15 MB of XML; a zip bomb claims gigabytes from a few hundred KB.
MAX_UNPACKED = 200 * 1024 * 1024
_COLUMN_RE = re.compile(r"^[A-Z]{1,3}$")


class CustomerImportError(CustomerError):
    """The whole file is refused (not an xlsx, no such sheet, bad mapping): nothing was imported."""


@dataclass(frozen=True)
class SheetPreview:
    name: str
    rows: list[list[str]]  # the first rows, as text, for the column-mapping screen


@dataclass
class RowProblem:
    row: int  # the Excel row number, as the user sees it
    key: str  # catalogue key
    message: str  # Korean text
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class ImportReport:
    sheet: str
    imported: int = 0
    duplicates: list[RowProblem] = field(default_factory=list)
    errors: list[RowProblem] = field(default_factory=list)
    skipped_empty: int = 0

    def as_dict(self) -> dict[str, Any]:
        def rows(items: list[RowProblem]) -> list[dict[str, Any]]:
            return [{"row": p.row, "key": p.key, "message": p.message, **p.params} for p in items]

        return {"sheet": self.sheet, "imported": self.imported, "duplicates": rows(self.duplicates),
                "errors": rows(self.errors), "skipped_empty": self.skipped_empty}


def column_index(letter: str) -> int:
    """'A' → 0, 'AB' → 27."""
    index = 0
    for ch in letter:
        index = index * 26 + (ord(ch) - 64)
    return index - 1


def parse_columns(mapping: dict[str, str | None]) -> dict[str, int]:
    """{'name': 'A', 'mobile': 'b', 'memo': ''} → {'name': 0, 'mobile': 1}; a mobile or name column is needed."""
    out: dict[str, int] = {}
    for key, raw in mapping.items():
        if key not in IMPORT_FIELDS:
            raise CustomerImportError("import.err.unknown_field", f"알 수 없는 항목: {key}", field=key)
        letter = (raw or "").strip().upper()
        if not letter:
            continue
        if not _COLUMN_RE.match(letter):
            raise CustomerImportError("import.err.bad_column", f"열 이름이 올바르지 않습니다: {raw}", value=raw)
        out[key] = column_index(letter)
    if "name" not in out and "mobile" not in out:
        raise CustomerImportError("import.err.need_columns", "고객명 또는 휴대폰 열을 지정하세요")
    return out


def _check_archive(data: bytes) -> None:
    """Refuse a zip bomb from its directory, before anything is unpacked. The sizes it declares are binding:
    Python's zipfile never inflates a member past its declared size (the CRC check then fails the read)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(item.file_size for item in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise CustomerImportError("import.err.not_xlsx", "엑셀(.xlsx) 파일을 읽을 수 없습니다") from exc
    if unpacked > MAX_UNPACKED:
        raise CustomerImportError("import.err.too_big",
                                  f"파일의 압축을 풀면 너무 큽니다 (최대 {MAX_UNPACKED // (1024 * 1024)}MB)",
                                  max_mb=MAX_UNPACKED // (1024 * 1024))


def _open(data: bytes) -> Any:
    from openpyxl import load_workbook

    _check_archive(data)
    try:
        return load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, TypeError) as exc:
        raise CustomerImportError("import.err.not_xlsx", "엑셀(.xlsx) 파일을 읽을 수 없습니다") from exc
    except Exception as exc:  # openpyxl raises its own zoo (InvalidFileException, ...)
        raise CustomerImportError("import.err.not_xlsx", "엑셀(.xlsx) 파일을 읽을 수 없습니다") from exc


def _cell_text(value: Any, *, number: bool = False) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    # Excel turns 01012345678 typed into a numeric cell into 1012345678: the leading 0 is gone. Eight digits
    # starting 15xx/16xx/18xx are shop numbers (1588-1234), written without a 0.
    if number and isinstance(value, int) and not text.startswith("0") and len(text) in (8, 9, 10) \
            and not (len(text) == 8 and text.startswith(("15", "16", "18"))):
        text = "0" + text
    return text


def preview(data: bytes, rows: int = PREVIEW_ROWS) -> list[SheetPreview]:
    """The sheets of a workbook with their first rows, for the mapping screen."""
    workbook = _open(data)
    try:
        out = []
        for sheet in workbook.worksheets:
            head = []
            for values in sheet.iter_rows(max_row=rows, max_col=PREVIEW_COLUMNS, values_only=True):
                head.append([_cell_text(v) for v in values])
            out.append(SheetPreview(sheet.title, head))
        return out
    except CustomerImportError:
        raise
    except Exception as exc:
        raise CustomerImportError("import.err.not_xlsx", "엑셀(.xlsx) 파일을 읽을 수 없습니다") from exc
    finally:
        workbook.close()


def read_rows(data: bytes, *, sheet: str | None, start_row: int, columns: dict[str, int]) -> tuple[str, list[
        tuple[int, dict[str, str]]]]:
    """Every data row from `start_row` on, as {field: text}, read completely before anything is written."""
    if start_row < 1:
        raise CustomerImportError("import.err.start_row", "시작 행은 1 이상이어야 합니다", value=start_row)
    workbook = _open(data)
    try:
        if sheet:
            if sheet not in workbook.sheetnames:
                raise CustomerImportError("import.err.no_sheet", f"시트를 찾을 수 없습니다: {sheet}", sheet=sheet)
            ws = workbook[sheet]
        else:
            ws = workbook.worksheets[0]
        out: list[tuple[int, dict[str, str]]] = []
        # Only the mapped columns: a sheet whose dimension claims 16384 columns would otherwise pad every row.
        last_column = max(columns.values(), default=0) + 1
        for number, values in enumerate(ws.iter_rows(min_row=start_row, max_col=last_column, values_only=True),
                                        start=start_row):
            if len(out) >= MAX_ROWS:
                raise CustomerImportError("import.err.too_many", f"한 번에 최대 {MAX_ROWS}행까지 올릴 수 있습니다",
                                          max=MAX_ROWS)
            row = {key: _cell_text(values[index] if index < len(values) else None,
                                   number=key in ("mobile", "phone"))
                   for key, index in columns.items()}
            out.append((number, row))
        return ws.title, out
    except CustomerImportError:
        raise
    except Exception as exc:  # a truncated member inside the zip shows up only while reading rows
        raise CustomerImportError("import.err.not_xlsx", "엑셀(.xlsx) 파일을 읽을 수 없습니다") from exc
    finally:
        workbook.close()


async def import_customers(db: Database, data: bytes, *, sheet: str | None, start_row: int,
                           columns: dict[str, str | None], dry_run: bool = False) -> ImportReport:
    """Validate every row, skip duplicates and bad rows (reported), insert the rest in one transaction."""
    mapping = parse_columns(columns)
    title, rows = await asyncio.to_thread(read_rows, data, sheet=sheet, start_row=start_row, columns=mapping)
    report = ImportReport(sheet=title)
    valid: list[tuple[int, dict[str, Any]]] = []
    seen_mobiles: dict[str, int] = {}
    for number, row in rows:
        if not any(row.values()):
            report.skipped_empty += 1
            continue
        try:
            values = clean_fields(row)
        except CustomerError as exc:
            report.errors.append(RowProblem(number, exc.key, str(exc), dict(exc.params)))
            continue
        mobile = values.get("mobile")
        if mobile and mobile in seen_mobiles:
            report.duplicates.append(RowProblem(number, "import.dup.in_file", f"파일 안에서 중복 ({seen_mobiles[mobile]}행)",
                                                {"mobile": mobile, "first_row": seen_mobiles[mobile]}))
            continue
        if mobile:
            seen_mobiles[mobile] = number
        valid.append((number, values))

    async with db.transaction() as session:
        existing: set[str] = set()
        mobiles = list(seen_mobiles)
        for start in range(0, len(mobiles), 500):
            chunk = mobiles[start:start + 500]
            existing.update(await session.scalars(select(Customer.mobile).where(Customer.mobile.in_(chunk))))
        to_insert = []
        for number, values in valid:
            if values.get("mobile") in existing:
                report.duplicates.append(RowProblem(number, "import.dup.in_db", "이미 등록된 휴대폰 번호",
                                                    {"mobile": values["mobile"]}))
                continue
            to_insert.append(Customer(**values))
        report.duplicates.sort(key=lambda p: p.row)
        if not dry_run:
            session.add_all(to_insert)
        report.imported = len(to_insert)
    return report
