"""What an SMS is, measured the way Korean carriers measure it: bytes in EUC-KR (Hangul = 2 bytes).

≤ 80 bytes is an SMS; longer is an LMS, which needs a subject and may hold 2,000 bytes; with an image it is an
MMS. The panel shows these figures as the agent types; the server measures again and never trusts the page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from .phone import PhoneNumberError, is_mobile, normalize

SMS_MAX_BYTES = 80
LMS_MAX_BYTES = 2000
SUBJECT_MAX_BYTES = 40
PLACEHOLDER_NAME = "{고객명}"
PLACEHOLDER_TODAY = "{오늘날짜}"
FORBIDDEN_SENDER_PREFIXES = ("030", "060", "800")  # seed 000 §5-5
IMAGE_TYPES = {b"\xff\xd8\xff": "image/jpeg"}  # carriers' MMS gateways take JPEG


class SmsError(ValueError):
    """Bad message input; the message is shown to the agent."""


def text_bytes(text: str) -> int:
    """Bytes in EUC-KR; CP949 covers every modern Hangul syllable, anything beyond it (emoji) counts 2."""
    total = 0
    for char in text.replace("\r\n", "\n"):
        try:
            total += len(char.encode("cp949"))
        except UnicodeEncodeError:
            total += 2
    return total


def unsupported_chars(text: str) -> list[str]:
    """Characters a handset may not show (outside CP949): the page warns about them."""
    out = []
    for char in text:
        try:
            char.encode("cp949")
        except UnicodeEncodeError:
            if char not in out:
                out.append(char)
    return out


@dataclass(frozen=True)
class Measure:
    bytes: int
    kind: str  # SMS | LMS | MMS
    limit: int
    subject_bytes: int
    unsupported: list[str] = field(default_factory=list)


def measure(body: str, subject: str = "", *, has_image: bool = False) -> Measure:
    size = text_bytes(body)
    if has_image:
        kind = "MMS"
    elif size <= SMS_MAX_BYTES:
        kind = "SMS"
    else:
        kind = "LMS"
    limit = SMS_MAX_BYTES if kind == "SMS" else LMS_MAX_BYTES
    return Measure(size, kind, limit, text_bytes(subject), unsupported_chars(body + subject))


def validate_message(body: str, subject: str = "", *, has_image: bool = False) -> Measure:
    if not body.strip() and not has_image:
        raise SmsError("메시지 내용을 입력하세요 (message body required)")
    figures = measure(body, subject, has_image=has_image)
    if figures.bytes > LMS_MAX_BYTES:
        raise SmsError(f"메시지는 {LMS_MAX_BYTES}바이트까지 보낼 수 있습니다 (현재 {figures.bytes}바이트)")
    if figures.kind in ("LMS", "MMS") and not subject.strip():
        raise SmsError(f"{figures.kind}는 제목이 필요합니다 (subject required for {figures.kind})")
    if figures.subject_bytes > SUBJECT_MAX_BYTES:
        raise SmsError(f"제목은 {SUBJECT_MAX_BYTES}바이트까지입니다 (현재 {figures.subject_bytes}바이트)")
    return figures


def validate_image(data: bytes, *, max_kb: int) -> str:
    if len(data) > max_kb * 1024:
        raise SmsError(f"이미지는 {max_kb}KB 이하만 보낼 수 있습니다 (현재 {len(data) // 1024}KB)")
    for magic, mime in IMAGE_TYPES.items():
        if data.startswith(magic):
            return mime
    raise SmsError("MMS 이미지는 JPG 파일만 보낼 수 있습니다 (JPEG only)")


def validate_sender(raw: str) -> str:
    try:
        digits = normalize(raw)
    except PhoneNumberError:
        raise SmsError(f"발신번호가 올바르지 않습니다: {raw!r}") from None
    if digits.startswith(FORBIDDEN_SENDER_PREFIXES):
        raise SmsError("030, 060, 800으로 시작하는 번호는 발신번호로 쓸 수 없습니다")
    if len(digits) < 8:
        raise SmsError(f"발신번호가 너무 짧습니다: {raw!r}")
    return digits


def fill(body: str, *, name: str, today: date) -> str:
    return body.replace(PLACEHOLDER_NAME, name or "고객").replace(PLACEHOLDER_TODAY, today.isoformat())


@dataclass
class ParsedNumbers:
    numbers: list[str]
    invalid: list[tuple[int, str]]  # (line number, text)
    duplicates: int


_LINE = re.compile(r"^\s*(01[016789])-?(\d{3,4})-?(\d{4})\s*$")


def parse_bulk(text: str) -> ParsedNumbers:
    """One mobile number per line, `010-0000-0000` or `01000000000` (seed 003 §22); duplicates merged."""
    numbers: list[str] = []
    invalid: list[tuple[int, str]] = []
    duplicates = 0
    seen: set[str] = set()
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = _LINE.match(line)
        digits = "".join(match.groups()) if match else ""
        if not match or not is_mobile(digits):
            invalid.append((lineno, line.strip()))
        elif digits in seen:
            duplicates += 1
        else:
            seen.add(digits)
            numbers.append(digits)
    return ParsedNumbers(numbers, invalid, duplicates)
