"""Benchmark: import 100,000 order rows from an .xlsx through contactd's streaming importer.

Goal (issue 5): under 20 s and peak RSS under 200 MB. The workbook is written first (openpyxl write-only) in a
child process, so the figures below are the import's alone. Run: .venv/bin/python bench/excel_import.py [rows]
"""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROWS = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 100_000
MAPPING = {"source": "A", "order_no": "B", "order_date": "C", "customer_name": "D", "phone": "E", "product": "F",
           "quantity": "G", "amount": "H", "status": "I", "invoice": "J", "address": "K"}


def write_workbook(path: Path, rows: int) -> None:
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("주문")
    ws.append(["주문처", "주문번호", "주문일", "고객명", "전화번호", "상품명", "수량", "결제금액", "상태", "송장번호", "주소"])
    sources = ["스마트스토어", "쿠팡", "자사몰", "11번가"]
    start = date(2026, 1, 1)
    for n in range(rows):
        order = n // 2  # two lines per order
        ws.append([sources[order % 4], f"ORD-{order:07d}", start + timedelta(days=order % 300), f"고객{order % 5000}",
                   f"010{order % 100000000:08d}", f"상품 {n % 300}", 1 + n % 3, 10000 + n % 50000, "주문",
                   f"{600000000000 + order}", "서울특별시 강남구 테헤란로 123"])
    wb.save(path)


async def run_import(path: Path, db_url: str) -> None:
    from contactd.crm.order_import import import_orders
    from contactd.store.db import Database

    db = Database(db_url)
    await db.migrate()
    data = await asyncio.to_thread(path.read_bytes)
    started = time.perf_counter()
    report = await import_orders(db, data, sheet="주문", header_row=1, mapping=MAPPING)
    elapsed = time.perf_counter() - started
    await db.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"rows read        {report.rows_read:,}")
    print(f"orders / lines   {report.orders_created:,} / {report.lines_created:,} (errors {report.error_count})")
    print(f"import time      {elapsed:.2f} s   (goal < 20 s)")
    print(f"peak RSS         {peak_mb:.0f} MB  (goal < 200 MB; whole process incl. interpreter and file bytes)")


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        asyncio.run(run_import(Path(sys.argv[2]), sys.argv[3]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "orders.xlsx"
        t0 = time.perf_counter()
        write_workbook(path, ROWS)
        print(f"wrote {ROWS:,} rows ({path.stat().st_size / 1e6:.1f} MB xlsx) in {time.perf_counter() - t0:.1f} s")
        db_url = os.environ.get("BENCH_DB_URL", f"sqlite+aiosqlite:///{tmp}/bench.sqlite3")
        print(f"database         {db_url.split('@')[-1]}")
        subprocess.run([sys.executable, __file__, "--child", str(path), db_url], check=True)


if __name__ == "__main__":
    main()
