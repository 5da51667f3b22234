"""The blacklist (seed 003 §25): numbers whose calls are rejected, kept in SQL and mirrored into Asterisk's AstDB.

The SQL table is the truth. AstDB (family `[pbx] blacklist_family`, key = number, value "1") is Asterisk's
copy: the shipped dialplan checks it before FastAGI, so blocking keeps working while contactd is down. Every
change is pushed at once; when AMI is down the change is still saved and `resync_astdb` (run by app.py after
every AMI (re)login) rewrites the whole family — the manual's "전화기 업데이트" button, done automatically.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from sqlalchemy import desc, func, or_, select
from sqlalchemy.exc import IntegrityError

from ..config import PBXConfig
from ..store.db import Database
from ..store.models.base import utcnow
from ..store.models.blacklist import BlacklistEntry, BlockedAttempt
from .phone import PhoneNumberError, normalize, normalize_or_none

log = logging.getLogger(__name__)

ASTDB_VALUE = "1"


class BlacklistError(ValueError):
    pass


def _digits(number: str) -> str:
    try:
        return normalize(number)
    except PhoneNumberError as exc:
        raise BlacklistError(str(exc)) from None


class BlacklistService:
    def __init__(self, db: Database, pbx: Any, pbx_config: PBXConfig) -> None:
        self.db = db
        self.pbx = pbx  # telephony.pbx.PBX, or None when no PBX is wired (then only SQL changes)
        self.family = pbx_config.blacklist_family
        # True after a failed AstDB write until a resync succeeds: the panel can show "phone update pending".
        self.astdb_dirty = False
        # One writer to AstDB at a time: a resync's snapshot must not re-add a number removed meanwhile.
        self._astdb_lock = asyncio.Lock()

    # ----------------------------------------------------------------------------------------- changes

    async def add(self, number: str, name: str = "", reason: str = "", by_user_id: int | None = None
                  ) -> BlacklistEntry:
        digits = _digits(number)
        entry = BlacklistEntry(number=digits, name=(name or "").strip()[:100], reason=(reason or "").strip(),
                               created_by=by_user_id, created_at=utcnow())
        async with self._astdb_lock:
            try:
                async with self.db.transaction() as session:
                    existing = await session.scalar(select(BlacklistEntry).where(BlacklistEntry.number == digits))
                    if existing is not None:
                        raise BlacklistError(f"{digits} is already on the blacklist"
                                             + (f" ({existing.name})" if existing.name else ""))
                    session.add(entry)
            except IntegrityError:
                # Two admins adding the same number at the same moment: the unique index decides.
                raise BlacklistError(f"{digits} is already on the blacklist") from None
            await self._mirror("put", digits)
        log.info("blacklist: added %s (by user %s)", digits, by_user_id)
        return entry

    async def remove(self, number: str) -> bool:
        """True when the number was on the list."""
        digits = _digits(number)
        async with self._astdb_lock:
            async with self.db.transaction() as session:
                entry = await session.scalar(select(BlacklistEntry).where(BlacklistEntry.number == digits))
                if entry is None:
                    return False
                await session.delete(entry)
            await self._mirror("del", digits)
        log.info("blacklist: removed %s", digits)
        return True

    async def _mirror(self, op: str, digits: str) -> None:
        if self.pbx is None:
            self.astdb_dirty = True
            return
        try:
            if op == "put":
                await self.pbx.db_put(self.family, digits, ASTDB_VALUE)
            else:
                await self.pbx.db_del(self.family, digits)
        except Exception as exc:
            # Saved in SQL; the resync after the next AMI login brings AstDB up to date.
            self.astdb_dirty = True
            log.error("blacklist: AstDB %s of %s failed (%s: %s); saved, will resync on reconnect", op, digits,
                      type(exc).__name__, exc)

    async def resync_astdb(self, *_args: Any) -> int:
        """Make the AstDB family equal the SQL list. Returns numbers in it, -1 on failure.

        Missing numbers are put first and strays deleted after, so a blocked number is never absent from AstDB
        while this runs (clearing the family first would let blocked callers through the dialplan's own check for
        as long as the refill takes). Registered as an AMI connect listener, so it never raises.
        """
        if self.pbx is None:
            return -1
        async with self._astdb_lock:
            try:
                numbers = await self.numbers()
                present = await self.pbx.db_gettree(self.family)
                for digits in numbers:
                    if present.get(digits) != ASTDB_VALUE:
                        await self.pbx.db_put(self.family, digits, ASTDB_VALUE)
                for stray in set(present) - set(numbers):
                    await self.pbx.db_del(self.family, stray)
            except Exception as exc:
                self.astdb_dirty = True
                log.error("blacklist: AstDB resync failed (%s: %s)", type(exc).__name__, exc)
                return -1
            self.astdb_dirty = False
        log.info("blacklist: AstDB resynced (%d numbers)", len(numbers))
        return len(numbers)

    # ----------------------------------------------------------------------------------------- reading

    async def numbers(self) -> list[str]:
        async with self.db.session() as session:
            return list(await session.scalars(select(BlacklistEntry.number).order_by(BlacklistEntry.number)))

    async def get(self, number: str) -> BlacklistEntry | None:
        digits = normalize_or_none(number)
        if digits is None:
            return None
        async with self.db.session() as session:
            return await session.scalar(select(BlacklistEntry).where(BlacklistEntry.number == digits))

    async def is_blocked(self, number: str | None) -> bool:
        """False for anonymous or unparseable numbers (nothing to match)."""
        digits = normalize_or_none(number)
        if digits is None:
            return False
        async with self.db.session() as session:
            found = await session.scalar(select(BlacklistEntry.id).where(BlacklistEntry.number == digits))
        return found is not None

    async def list(self, query: str | None = None, *, limit: int = 1000, offset: int = 0) -> list[BlacklistEntry]:
        """Newest first; `query` matches part of the number (digits) or of the name or reason."""
        stmt = select(BlacklistEntry)
        text = (query or "").strip()
        if text:
            conditions = [func.lower(BlacklistEntry.name).contains(text.lower(), autoescape=True),
                          func.lower(BlacklistEntry.reason).contains(text.lower(), autoescape=True)]
            digits = "".join(ch for ch in text if ch.isdigit())
            if digits:
                conditions.append(BlacklistEntry.number.contains(digits, autoescape=True))
            stmt = stmt.where(or_(*conditions))
        stmt = stmt.order_by(desc(BlacklistEntry.created_at), desc(BlacklistEntry.id))
        async with self.db.session() as session:
            return list(await session.scalars(stmt.limit(max(1, min(limit, 5000))).offset(max(0, offset))))

    # ----------------------------------------------------------------------------------------- attempts

    async def log_attempt(self, number: str, uniqueid: str = "", *, at: datetime | None = None) -> BlockedAttempt:
        digits = normalize_or_none(number) or ""
        attempt = BlockedAttempt(number=digits, uniqueid=(uniqueid or "")[:64], at=at or utcnow())
        async with self.db.transaction() as session:
            session.add(attempt)
        return attempt

    async def attempts(self, number: str | None = None, *, limit: int = 500) -> list[BlockedAttempt]:
        stmt = select(BlockedAttempt)
        if number:
            stmt = stmt.where(BlockedAttempt.number == _digits(number))
        stmt = stmt.order_by(desc(BlockedAttempt.at), desc(BlockedAttempt.id)).limit(max(1, min(limit, 5000)))
        async with self.db.session() as session:
            return list(await session.scalars(stmt))


__all__ = ["ASTDB_VALUE", "BlacklistError", "BlacklistService"]
