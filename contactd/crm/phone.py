"""Korean phone numbers: accept what people type, store digits only, show with hyphens."""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s\-().]")
MOBILE_PREFIXES = ("010", "011", "016", "017", "018", "019")


class PhoneNumberError(ValueError):
    pass


def normalize(raw: str) -> str:
    """`010-1234-5678`, `+82 10 1234 5678`, `(02) 123-4567` → digits only, national form."""
    text = _SEPARATORS.sub("", raw or "")
    if text.startswith("+82"):
        text = "0" + text[3:].lstrip("0")
    elif text.startswith("0082"):
        text = "0" + text[4:].lstrip("0")
    if not text.isdigit():
        raise PhoneNumberError(f"not a phone number: {raw!r}")
    if not 3 <= len(text) <= 13:
        raise PhoneNumberError(f"wrong length for a phone number: {raw!r}")
    return text


def normalize_or_none(raw: str | None) -> str | None:
    if not raw:
        return None
    try:
        return normalize(raw)
    except PhoneNumberError:
        return None


def is_mobile(digits: str) -> bool:
    return len(digits) in (10, 11) and digits.startswith(MOBILE_PREFIXES)


def display(digits: str) -> str:
    """Hyphenate for people: 01012345678 → 010-1234-5678, 021234567 → 02-123-4567."""
    if not digits or not digits.isdigit():
        return digits or ""
    if digits.startswith("02"):
        area, rest = "02", digits[2:]
    elif len(digits) >= 9 and digits.startswith("0"):
        area, rest = digits[:3], digits[3:]
    elif len(digits) == 8 and digits[:2] in ("15", "16", "18"):  # 1588-1234 style shop numbers
        return f"{digits[:4]}-{digits[4:]}"
    else:
        return digits
    if len(rest) == 7:
        return f"{area}-{rest[:3]}-{rest[3:]}"
    if len(rest) == 8:
        return f"{area}-{rest[:4]}-{rest[4:]}"
    return f"{area}-{rest}"
