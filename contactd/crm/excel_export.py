"""Excel exports: formatted sheets with a native Excel chart (openpyxl), for statistics and consultation history."""

from __future__ import annotations

import io
from collections.abc import Sequence

from openpyxl import Workbook
from openpyxl.chart import BarChart, Reference
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter

from .stats import AgentRow, Report, TypeRow

HEADER_FILL = PatternFill("solid", fgColor="1F4E78")
HEADER_FONT = Font(bold=True, color="FFFFFF")
THIN = Side(style="thin", color="BFBFBF")
BORDER = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def defuse(cell) -> None:  # type: ignore[no-untyped-def]
    """Text from users (a customer named "=HYPERLINK(...)") must stay text: openpyxl stores any string starting with
    "=" as a formula, and Excel evaluates "+", "-", "@" too once the sheet is re-saved or edited. The cell keeps the
    exact text, typed as a string with Excel's quote prefix, so nothing in it is ever evaluated."""
    if isinstance(cell.value, str) and cell.value.startswith(FORMULA_STARTS):
        cell.data_type = "s"
        cell.quotePrefix = True


def _table(ws, title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:  # type: ignore[no-untyped-def]
    ws["A1"] = title
    ws["A1"].font = Font(bold=True, size=14)
    ws.append([])
    ws.append(list(header))
    for cell in ws[3]:
        cell.fill, cell.font, cell.border = HEADER_FILL, HEADER_FONT, BORDER
        cell.alignment = Alignment(horizontal="center")
    for row in rows:
        ws.append(list(row))
        for cell in ws[ws.max_row]:
            cell.border = BORDER
            defuse(cell)
    for index, name in enumerate(header, 1):
        ws.column_dimensions[get_column_letter(index)].width = max(10, len(str(name)) * 2 + 2)
    ws.freeze_panes = "A4"
    ws.print_title_rows = "3:3"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.fitToWidth = 1


def _bar_chart(ws, title: str, first_col: int, last_col: int, rows: int, anchor: str) -> None:  # type: ignore[no-untyped-def]
    chart = BarChart()
    chart.type = "col"
    chart.title = title
    chart.height, chart.width = 9, 22
    data = Reference(ws, min_col=first_col, max_col=last_col, min_row=3, max_row=3 + rows)
    cats = Reference(ws, min_col=1, min_row=4, max_row=3 + rows)
    chart.add_data(data, titles_from_data=True)
    chart.set_categories(cats)
    ws.add_chart(chart, anchor)


def _save(wb: Workbook) -> bytes:
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


def call_report_workbook(report: Report, *, bucket_label: str) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.title = "통계"
    header = [bucket_label, "인입", "응답", "부재", "큐 포기", "발신", "평균 대기(초)", "평균 통화(초)"]
    rows = [[b.key, b.inbound, b.answered, b.missed, b.abandoned, b.outbound, b.avg_wait, b.avg_talk]
            for b in report.buckets]
    t = report.totals
    _table(ws, report.title, header, rows)
    ws.append(["합계", t.inbound, t.answered, t.missed, t.abandoned, t.outbound, t.avg_wait, t.avg_talk])
    for cell in ws[ws.max_row]:
        cell.font, cell.border = Font(bold=True), BORDER
    _bar_chart(ws, report.title, 2, 6, len(rows), "J3")
    return _save(wb)


def agent_workbook(rows: Sequence[AgentRow], title: str) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.title = "상담원별"
    _table(ws, title, ["내선", "응답", "발신", "통화시간(초)", "평균 통화(초)"],
           [[r.extension, r.answered, r.outbound, r.talk_seconds, r.avg_talk] for r in rows])
    _bar_chart(ws, title, 2, 3, len(rows), "H3")
    return _save(wb)


def type_workbook(rows: Sequence[TypeRow], title: str) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.title = "상담유형별"
    _table(ws, title, ["대분류", "중분류", "소분류", "건수"],
           [[r.level1, r.level2, r.level3, r.count] for r in rows])
    _bar_chart(ws, title, 4, 4, len(rows), "G3")
    return _save(wb)


def rows_workbook(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> bytes:
    """A plain formatted table (consultation history and other list exports)."""
    wb = Workbook()
    ws = wb.active
    ws.title = title[:31]
    _table(ws, title, header, rows)
    return _save(wb)
