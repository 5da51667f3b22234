"""Panel accounts: create users, hash and check passwords (scrypt: memory-hard, in the standard library)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import select

from ..store.db import Database
from ..store.models import ROLES, Extension, User

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


_DUMMY_HASH = hash_password(secrets.token_hex(8))
