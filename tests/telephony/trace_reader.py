"""Read the recorded Asterisk transcripts (/work/shared/asterisk-traces/*.txt) back into the exact bytes.

Transcript format (see the README there): ``S: `` lines are bytes Asterisk sent, ``C: `` lines ours; line
terminators are written literally (``\\r\\n``, ``\\n``), ``\\\\`` is one backslash, ``\\xNN`` one byte; ``#``
lines are notes, and ``# t=+N.NNNs [conn]`` notes name the connection the following lines belong to.
Two older AMI files show no terminators (every line had ``\\r\\n``) and the older AGI file writes each line as
a Python ``repr()`` string; both are handled. Lines of a file without ``[conn]`` notes get conn ``""``.

    from trace_reader import read_trace, server_messages, server_bytes  (tests/telephony is on sys.path)
    for line in read_trace("ami-login-and-ping.txt"): line.conn, line.direction, line.raw
"""

from __future__ import annotations

import ast
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

# The repository is checked out with shared/ beside it (../shared/asterisk-traces); CONTACTD_TRACES_DIR overrides.
TRACES_DIR = Path(os.environ.get("CONTACTD_TRACES_DIR")
                  or Path(__file__).resolve().parents[3] / "shared" / "asterisk-traces")

_CONN_NOTE = re.compile(r"^# t=\+[\d.]+s \[([^\]\s]+)\]")
_ESCAPE = re.compile(rb"\\(\\|r|n|t|x[0-9a-fA-F]{2})")
_ESCAPES = {b"\\": b"\\", b"r": b"\r", b"n": b"\n", b"t": b"\t"}


class TraceLine(NamedTuple):
    conn: str  # "conn1", "ami", "agi1", ... ("" when the file names no connection)
    direction: str  # "S" = sent by Asterisk, "C" = sent by contactd's side
    raw: bytes  # the exact bytes of that protocol line, terminator included


def trace_path(name: str | os.PathLike[str]) -> Path:
    path = Path(name)
    if path.is_absolute() or path.exists():
        return path
    candidate = TRACES_DIR / path
    if not candidate.exists() and candidate.suffix != ".txt":
        candidate = candidate.with_name(candidate.name + ".txt")
    return candidate


def _unescape(text: str) -> bytes:
    return _ESCAPE.sub(
        lambda m: _ESCAPES.get(m.group(1)) or bytes([int(m.group(1)[1:], 16)]),
        text.encode("utf-8"),
    )


@lru_cache(maxsize=64)
def _read(path: Path) -> tuple[TraceLine, ...]:
    lines = path.read_text(encoding="utf-8").splitlines()
    bodies = [ln[3:] if ln.startswith(("S: ", "C: ")) else "" for ln in lines if ln[:2] in ("S:", "C:")]
    # Newer transcripts end every protocol line with a literal terminator; older AMI ones show none.
    literal_terminators = any(b.endswith(("\\r\\n", "\\n")) for b in bodies)
    out: list[TraceLine] = []
    conn = ""
    for line in lines:
        if line.startswith("#"):
            note = _CONN_NOTE.match(line)
            if note:
                conn = note.group(1)
            continue
        if line[:2] not in ("S:", "C:"):
            continue
        direction = line[0]
        body = line[3:] if len(line) > 2 else ""
        if literal_terminators:
            raw = _unescape(body)
        elif len(body) >= 2 and body[0] in "'\"" and body[-1] == body[0]:
            raw = ast.literal_eval(body).encode("utf-8")  # older AGI transcript: repr() of each line
        else:
            raw = body.encode("utf-8") + b"\r\n"
        out.append(TraceLine(conn, direction, raw))
    return tuple(out)


def read_trace(name: str | os.PathLike[str]) -> list[TraceLine]:
    """Every protocol line of a transcript, in order, as the bytes that crossed the wire."""
    return list(_read(trace_path(name)))


def trace_connections(name: str | os.PathLike[str]) -> list[str]:
    """Connection names in order of first appearance."""
    seen: dict[str, None] = {}
    for line in _read(trace_path(name)):
        seen.setdefault(line.conn, None)
    return list(seen)


def server_bytes(name: str | os.PathLike[str], conn: str | None = None) -> bytes:
    """Everything Asterisk sent (on one connection, or all of them when conn is None), concatenated."""
    return b"".join(
        ln.raw for ln in _read(trace_path(name)) if ln.direction == "S" and conn in (None, ln.conn)
    )


def client_bytes(name: str | os.PathLike[str], conn: str | None = None) -> bytes:
    """Everything our side sent, concatenated."""
    return b"".join(
        ln.raw for ln in _read(trace_path(name)) if ln.direction == "C" and conn in (None, ln.conn)
    )


def server_messages(name: str | os.PathLike[str], conn: str | None = None) -> list:  # list[AMIMessage]
    """Asterisk's AMI messages (banners skipped), parsed per connection with contactd's AMIParser."""
    from contactd.telephony.ami import AMIParser

    conns = [conn] if conn is not None else trace_connections(name)
    messages = []
    for c in conns:
        # Each connection (and each reconnect within one, after a banner) starts a fresh parser.
        parser = AMIParser(max_message_size=1 << 24)
        for ln in _read(trace_path(name)):
            if ln.direction != "S" or ln.conn != c:
                continue
            if ln.raw.startswith(b"Asterisk Call Manager/"):
                parser = AMIParser(max_message_size=1 << 24)
            messages.extend(parser.feed(ln.raw))
    return messages
