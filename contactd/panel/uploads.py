"""Uploaded files kept server-side between the steps of a wizard (the order import): a temp file per random token.

The page only ever carries the token; the bytes stay on disk, readable only by the session that uploaded them
(the owner is a hash of user id + the session's own secret), and are deleted after use or after `max_age`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{22,64}$")
DEFAULT_MAX_AGE = 3600.0


@dataclass(frozen=True)
class Upload:
    token: str
    name: str
    data: bytes
    created: float


def session_owner(user: Any, session: Any) -> str:
    """Bind an upload to one login session: another session (or user) cannot name the same token."""
    return hashlib.sha256(f"{user.id}:{session.csrf}".encode()).hexdigest()


class UploadStore:
    """Blocking file I/O: call it through asyncio.to_thread from handlers."""

    def __init__(self, directory: Path | None = None, *, max_age: float = DEFAULT_MAX_AGE,
                 clock: Callable[[], float] = time.time) -> None:
        self.directory = directory or Path(tempfile.mkdtemp(prefix="contactd-uploads-"))
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.max_age = max_age
        self.clock = clock

    def _paths(self, token: str) -> tuple[Path, Path]:
        return self.directory / f"{token}.bin", self.directory / f"{token}.json"

    def put(self, owner: str, data: bytes, name: str = "") -> str:
        self.sweep()
        token = secrets.token_urlsafe(24)
        body, meta = self._paths(token)
        fd = os.open(body, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        meta.write_text(json.dumps({"owner": owner, "name": name[:200], "created": self.clock()}), "utf-8")
        return token

    def get(self, token: str, owner: str) -> Upload | None:
        if not TOKEN_RE.match(token or ""):
            return None
        body, meta = self._paths(token)
        try:
            info = json.loads(meta.read_text("utf-8"))
        except (OSError, ValueError):
            return None
        if not secrets.compare_digest(str(info.get("owner", "")), owner):
            return None
        if self.clock() - float(info.get("created", 0)) > self.max_age:
            self.delete(token)
            return None
        try:
            data = body.read_bytes()
        except OSError:
            return None
        return Upload(token, str(info.get("name", "")), data, float(info["created"]))

    def delete(self, token: str) -> None:
        if not TOKEN_RE.match(token or ""):
            return
        for path in self._paths(token):
            path.unlink(missing_ok=True)

    def sweep(self) -> int:
        """Remove uploads older than max_age; returns how many."""
        removed = 0
        now = self.clock()
        for meta in self.directory.glob("*.json"):
            try:
                created = float(json.loads(meta.read_text("utf-8")).get("created", 0))
            except (OSError, ValueError):
                created = 0.0
            if now - created > self.max_age:
                self.delete(meta.stem)
                removed += 1
        return removed

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
