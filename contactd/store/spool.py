"""A small durable spool of rows the database refused for now (JSON lines on disk).

The call tracker puts a CDR here when the database stays unreachable through its retries, and writes it later:
a PostgreSQL restart or a locked SQLite file must never lose a call's record, nor does a contactd restart in
between (the spool is read back at start).
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

_DT = "__datetime__"


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {_DT: value.isoformat()}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {_DT}:
        return datetime.fromisoformat(value[_DT])
    return value


class RowSpool:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()  # appends come from worker threads

    def append(self, row: dict[str, Any]) -> None:
        line = json.dumps({k: _encode(v) for k, v in row.items()}, ensure_ascii=False)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")
                fh.flush()
                os.fsync(fh.fileno())

    def load(self) -> list[dict[str, Any]]:
        with self._lock:
            if not self.path.exists():
                return []
            lines = self.path.read_text(encoding="utf-8").splitlines()
        rows = []
        for line in lines:
            try:
                rows.append({k: _decode(v) for k, v in json.loads(line).items()})
            except (ValueError, AttributeError):
                continue  # a line torn by a crash mid-append: the rest still count
        return rows

    def remove(self, written: set[str], key: str = "linkedid") -> None:
        """Drop the rows now in the database; rows appended meanwhile stay."""
        with self._lock:
            if not self.path.exists():
                return
            keep = [line for line in self.path.read_text(encoding="utf-8").splitlines()
                    if line.strip() and _key(line, key) not in written]
            tmp = self.path.with_suffix(self.path.suffix + ".tmp")
            tmp.write_text("".join(line + "\n" for line in keep), encoding="utf-8")
            os.replace(tmp, self.path)
            if not keep:
                self.path.unlink(missing_ok=True)


def _key(line: str, key: str) -> str | None:
    try:
        return json.loads(line).get(key)
    except ValueError:
        return None
