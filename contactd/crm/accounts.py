"""Panel accounts: create users, hash and check passwords (scrypt: memory-hard, in the standard library)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, desc, func, select

from ..store.db import Database
from ..store.models import ROLES, Extension, User
from ..store.models.panel import AuditLog, LoginAttempt

LANGUAGES = ("ko", "en")

# n=2**14, r=8 → 16 MiB per hash: slow enough to hurt guessing, fast enough for a login (~50 ms).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{2,64}$")
EXTENSION_RE = re.compile(r"^\d{1,4}$")


class AccountError(ValueError):
    """Bad input for an account; the message says which field and why."""


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        salt, expected = base64.b64decode(salt_b64), base64.b64decode(digest_b64)
        digest = hashlib.scrypt(password.encode(), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


def validate_extension(extension: str) -> str:
    if not EXTENSION_RE.match(extension or ""):
        raise AccountError(f"extension: must be 1 to 4 digits, got {extension!r}")
    return extension


@dataclass
class AccountService:
    db: Database

    async def create_user(self, username: str, password: str, role: str, *, extension: str | None = None,
                          display_name: str = "", can_edit_consultations: bool = False,
                          can_export: bool = False, language: str = "ko") -> User:
        if not USERNAME_RE.match(username or ""):
            raise AccountError("username: 2-64 letters, digits, '.', '_' or '-'")
        if len(password or "") < 8:
            raise AccountError("password: at least 8 characters")
        if role not in ROLES:
            raise AccountError(f"role: must be one of {', '.join(ROLES)}, got {role!r}")
        if role == "admin":
            can_edit_consultations = can_export = True
        async with self.db.transaction() as session:
            if await session.scalar(select(User.id).where(User.username == username)) is not None:
                raise AccountError(f"username: {username!r} already exists")
            if extension:
                validate_extension(extension)
                taken = await session.scalar(select(User.username).where(User.extension == extension))
                if taken:
                    raise AccountError(f"extension: {extension} already belongs to {taken}")
                if await session.scalar(select(Extension.id).where(Extension.number == extension)) is None:
                    session.add(Extension(number=extension, label=display_name or username))
                    await session.flush()
            user = User(username=username, password_hash=hash_password(password), role=role,
                        extension=extension or None, display_name=display_name or username,
                        can_edit_consultations=can_edit_consultations, can_export=can_export, language=language)
            session.add(user)
        return user

    async def authenticate(self, username: str, password: str) -> User | None:
        async with self.db.session() as session:
            user = await session.scalar(select(User).where(User.username == username, User.active.is_(True)))
        if user is None:
            verify_password(password, _DUMMY_HASH)  # same work either way: no user-enumeration by timing
            return None
        return user if verify_password(password, user.password_hash) else None

    async def get(self, user_id: int) -> User | None:
        async with self.db.session() as session:
            return await session.get(User, user_id)

    async def by_extension(self, extension: str) -> User | None:
        async with self.db.session() as session:
            return await session.scalar(select(User).where(User.extension == extension))

    async def list_users(self, *, include_inactive: bool = True) -> list[User]:
        stmt = select(User).order_by(User.active.desc(), User.username)
        if not include_inactive:
            stmt = stmt.where(User.active.is_(True))
        async with self.db.session() as session:
            return list(await session.scalars(stmt))

    async def update_user(self, user_id: int, *, display_name: str | None = None, role: str | None = None,
                          extension: str | None = None, can_edit_consultations: bool | None = None,
                          can_export: bool | None = None, language: str | None = None,
                          password: str | None = None, active: bool | None = None) -> User:
        """Change any of the given fields; extension "" clears it. Admins always keep both permissions."""
        if role is not None and role not in ROLES:
            raise AccountError(f"role: must be one of {', '.join(ROLES)}, got {role!r}")
        if language is not None and language not in LANGUAGES:
            raise AccountError(f"language: must be one of {', '.join(LANGUAGES)}, got {language!r}")
        if password is not None and len(password) < 8:
            raise AccountError("password: at least 8 characters")
        async with self.db.transaction() as session:
            user = await session.get(User, user_id)
            if user is None:
                raise AccountError(f"user: no user #{user_id}")
            if extension is not None:
                if extension:
                    validate_extension(extension)
                    taken = await session.scalar(select(User.username).where(User.extension == extension,
                                                                            User.id != user_id))
                    if taken:
                        raise AccountError(f"extension: {extension} already belongs to {taken}")
                    if await session.scalar(select(Extension.id).where(Extension.number == extension)) is None:
                        session.add(Extension(number=extension, label=display_name or user.display_name))
                        await session.flush()
                user.extension = extension or None
            if display_name is not None:
                user.display_name = display_name.strip()[:100] or user.username
            if role is not None:
                user.role = role
            if can_edit_consultations is not None:
                user.can_edit_consultations = can_edit_consultations
            if can_export is not None:
                user.can_export = can_export
            if user.role == "admin":
                user.can_edit_consultations = user.can_export = True
            if language is not None:
                user.language = language
            if password is not None:
                user.password_hash = hash_password(password)
            if active is not None:
                user.active = active
            if user.role == "admin" and not user.active or role is not None and role != "admin":
                # Never lock everyone out: at least one active admin must remain.
                await session.flush()
                admins = await session.scalar(select(func.count()).select_from(User).where(
                    User.role == "admin", User.active.is_(True)))
                if not admins:
                    raise AccountError("role: the last active admin cannot be removed or deactivated")
        return user

    async def list_extensions(self) -> list[Extension]:
        async with self.db.session() as session:
            return list(await session.scalars(select(Extension).order_by(Extension.number)))

    async def add_extension(self, number: str, label: str = "") -> Extension:
        validate_extension(number)
        async with self.db.transaction() as session:
            if await session.scalar(select(Extension.id).where(Extension.number == number)) is not None:
                raise AccountError(f"extension: {number} already exists")
            extension = Extension(number=number, label=label.strip()[:100])
            session.add(extension)
        return extension

    async def delete_extension(self, number: str) -> None:
        async with self.db.transaction() as session:
            taken = await session.scalar(select(User.username).where(User.extension == number))
            if taken:
                raise AccountError(f"extension: {number} still belongs to {taken}")
            await session.execute(delete(Extension).where(Extension.number == number))

    # ---- login throttling ------------------------------------------------------------------------------------
    async def record_login(self, username: str, ip: str, success: bool) -> None:
        async with self.db.transaction() as session:
            if success:
                # A good password forgives earlier typos for this user+address.
                await session.execute(delete(LoginAttempt).where(LoginAttempt.username == username[:64],
                                                                 LoginAttempt.ip == ip[:64]))
            else:
                session.add(LoginAttempt(username=username[:64], ip=ip[:64], success=False))

    async def recent_failures(self, username: str, ip: str, since: datetime) -> int:
        async with self.db.session() as session:
            return int(await session.scalar(select(func.count()).select_from(LoginAttempt).where(
                LoginAttempt.username == username[:64], LoginAttempt.ip == ip[:64],
                LoginAttempt.success.is_(False), LoginAttempt.at >= since)) or 0)

    # ---- audit log -------------------------------------------------------------------------------------------
    async def audit(self, user_id: int | None, action: str, target: str = "", detail: str = "",
                    ip: str = "") -> None:
        async with self.db.transaction() as session:
            session.add(AuditLog(user_id=user_id, action=action[:64], target=target[:100], detail=detail,
                                 ip=ip[:64]))

    async def audit_entries(self, *, limit: int = 200, action: str | None = None) -> list[AuditLog]:
        stmt = select(AuditLog).order_by(desc(AuditLog.at), desc(AuditLog.id)).limit(limit)
        if action:
            stmt = stmt.where(AuditLog.action == action)
        async with self.db.session() as session:
            return list(await session.scalars(stmt))

    @staticmethod
    def describe(user: User) -> dict[str, Any]:
        return {"id": user.id, "username": user.username, "display_name": user.display_name, "role": user.role,
                "extension": user.extension, "can_edit_consultations": user.can_edit_consultations,
                "can_export": user.can_export, "language": user.language, "active": user.active}


_DUMMY_HASH = hash_password(secrets.token_hex(8))
