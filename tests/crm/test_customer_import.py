"""Excel upload (seed 003 §28) on SQLite and PostgreSQL: mapping, duplicates, bad rows, broken files."""

from __future__ import annotations

import io

import pytest
from openpyxl import Workbook

from contactd.crm.customer_import import CustomerImportError, import_customers, preview
from contactd.crm.customers import CustomerService

COLUMNS = {"name": "A", "mobile": "B", "phone": "C", "zip": "D", "address": "E", "memo": ""}


def workbook(rows: list[list[object]], *, sheet: str = "고객", extra_sheet: bool = True) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.title = "안내" if extra_sheet else sheet
    if extra_sheet:
        ws.append(["이 시트는 설명입니다"])
        ws = wb.create_sheet(sheet)
    ws.append(["고객 명단"])
    ws.append(["고객명", "휴대폰", "전화번호", "우편번호", "주소"])
    for row in rows:
        ws.append(row)
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


GOOD = [["홍길동", "010-1234-5678", "02-123-4567", "03000", "서울시 종로구"],
        ["김철수", 1098765432, None, 48000, "부산시"],  # a numeric cell lost its leading 0
        ["이영희", "01011112222", "", "", ""]]


async def test_good_file_imports_every_row(any_db) -> None:
    report = await import_customers(any_db, workbook(GOOD), sheet="고객", start_row=3, columns=COLUMNS)
    assert (report.imported, report.duplicates, report.errors) == (3, [], [])
    found = {c.name: c for c in await CustomerService(any_db).search("")}
    assert found["홍길동"].mobile == "01012345678" and found["홍길동"].phone == "021234567"
    assert found["김철수"].mobile == "01098765432" and found["김철수"].zip == "48000"


async def test_preview_lists_sheets_and_first_rows() -> None:
    sheets = preview(workbook(GOOD))
    assert [s.name for s in sheets] == ["안내", "고객"]
    assert sheets[1].rows[1][:2] == ["고객명", "휴대폰"]


async def test_wrong_sheet_is_refused_and_nothing_imported(any_db) -> None:
    with pytest.raises(CustomerImportError) as caught:
        await import_customers(any_db, workbook(GOOD), sheet="없는시트", start_row=3, columns=COLUMNS)
    assert caught.value.key == "import.err.no_sheet"
    # The first sheet (the notes) holds no customer: its text row fails validation, nothing lands.
    report = await import_customers(any_db, workbook(GOOD), sheet=None, start_row=1, columns=COLUMNS)
    assert report.imported == 1 and report.sheet == "안내"  # "이 시트는 설명입니다" is a valid name-only row
    assert await CustomerService(any_db).count() == 1


async def test_duplicates_in_file_and_in_db_are_reported_and_skipped(any_db) -> None:
    await CustomerService(any_db).create(name="기존고객", mobile="010-1111-2222")
    rows = GOOD + [["홍길동2", "010-1234-5678", "", "", ""]]
    report = await import_customers(any_db, workbook(rows), sheet="고객", start_row=3, columns=COLUMNS)
    assert report.imported == 2
    assert [(d.row, d.key) for d in report.duplicates] == [(5, "import.dup.in_db"), (6, "import.dup.in_file")]
    assert report.duplicates[1].params["first_row"] == 3
    assert await CustomerService(any_db).count() == 3


async def test_bad_rows_are_reported_with_their_excel_row_number(any_db) -> None:
    rows = [["정상", "010-2222-3333", "", "", ""],
            ["번호이상", "02-123-4567", "", "", ""],  # landline in the mobile column
            ["", "", "", "", ""],  # empty: skipped silently
            [None, None, None, "12345", "주소만"],  # nothing to recognise the customer by
            ["문자", "전화없음", "", "", ""]]
    report = await import_customers(any_db, workbook(rows), sheet="고객", start_row=3, columns=COLUMNS)
    assert report.imported == 1
    assert [(e.row, e.key) for e in report.errors] == [(4, "customer.err.mobile_invalid"), (6, "customer.err.empty"),
                                                       (7, "customer.err.mobile_invalid")]
    assert report.skipped_empty == 1


@pytest.mark.parametrize("data", [b"not an excel file at all", b"PK\x03\x04broken zip", b""])
async def test_corrupt_file_imports_nothing(any_db, data) -> None:
    with pytest.raises(CustomerImportError) as caught:
        await import_customers(any_db, data, sheet=None, start_row=1, columns=COLUMNS)
    assert caught.value.key == "import.err.not_xlsx"
    assert await CustomerService(any_db).count() == 0


async def test_truncated_workbook_imports_nothing(any_db) -> None:
    data = workbook(GOOD * 50)
    with pytest.raises(CustomerImportError):
        await import_customers(any_db, data[: len(data) // 2], sheet="고객", start_row=3, columns=COLUMNS)
    assert await CustomerService(any_db).count() == 0


async def test_mapping_must_name_a_column_for_name_or_mobile(any_db) -> None:
    with pytest.raises(CustomerImportError) as caught:
        await import_customers(any_db, workbook(GOOD), sheet="고객", start_row=3, columns={"address": "E"})
    assert caught.value.key == "import.err.need_columns"
    with pytest.raises(CustomerImportError):
        await import_customers(any_db, workbook(GOOD), sheet="고객", start_row=3, columns={"name": "A1"})
