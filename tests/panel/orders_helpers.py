"""Helpers for the order / import / statistics panel tests: workbooks written by openpyxl, a wizard driver."""

from __future__ import annotations

import io
import re
from typing import Any

import aiohttp
from openpyxl import Workbook, load_workbook

HEADER = ["주문처", "고객명", "전화번호", "상품명", "수량", "결제금액", "주문번호", "주문일", "상태", "송장번호"]
TOKEN_URL = re.compile(r"/orders/import/([A-Za-z0-9_-]{22,64})$")


def order_rows(count: int = 3, *, day: str = "2026-03-02", prefix: str = "A") -> list[list[Any]]:
    return [["스마트스토어", f"고객{i}", f"010-1234-{i:04d}", f"상품{i}", 1 + i % 2, 10000 * (i + 1),
             f"{prefix}{i:04d}", day, "주문", f"INV{i:05d}"] for i in range(count)]


def workbook_bytes(rows: list[list[Any]], *, header: list[str] | None = HEADER, sheet: str = "주문",
                   lead_rows: int = 0, extra_sheet: str | None = "메모") -> bytes:
    wb = Workbook()
    if extra_sheet:
        wb.active.title = extra_sheet
        wb.active.append(["이 시트에는 주문이 없습니다"])
        ws = wb.create_sheet(sheet)
    else:
        ws = wb.active
        ws.title = sheet
    for _ in range(lead_rows):
        ws.append(["주문 목록 (내보낸 파일)"])
    if header:
        ws.append(header)
    for row in rows:
        ws.append(row)
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


def read_xlsx(data: bytes):  # type: ignore[no-untyped-def]
    return load_workbook(io.BytesIO(data))


async def upload(user: Any, data: bytes, name: str = "orders.xlsx") -> tuple[int, str]:
    """Step 1 of the wizard: returns (status, token or page text)."""
    form = aiohttp.FormData()
    form.add_field("_csrf", user.csrf)
    form.add_field("file", data, filename=name,
                   content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    async with user.http.post("/orders/import", data=form, allow_redirects=False) as response:
        if response.status == 302:
            match = TOKEN_URL.search(response.headers["Location"])
            assert match, response.headers["Location"]
            return 302, match.group(1)
        return response.status, await response.text()


def selected_mapping(html: str) -> dict[str, str]:
    """The column each field's <select> has preselected on the mapping page."""
    out = {}
    for name, body in re.findall(r'<select name="col_(\w+)"[^>]*>(.*?)</select>', html, re.S):
        match = re.search(r'<option value="([A-Z]+)" selected>', body)
        if match:
            out[name] = match.group(1)
    return out


async def run_import(user: Any, token: str, sheet: str, header_row: int, mapping: dict[str, str]
                     ) -> tuple[int, str]:
    data = {"_csrf": user.csrf, "sheet": sheet, "header_row": str(header_row),
            **{f"col_{k}": v for k, v in mapping.items()}}
    async with user.http.post(f"/orders/import/{token}", data=data, allow_redirects=False) as response:
        return response.status, await response.text()


def report_value(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}">(?:<strong class="ok">)?([^<]*)<', html)
    assert match, element_id
    return match.group(1).strip()
