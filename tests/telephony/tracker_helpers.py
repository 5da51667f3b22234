"""Helpers for the call-tracker tests: trace events with their recorded times, a controllable clock."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from trace_reader import read_trace, trace_path

from contactd.telephony.ami import AMIParser

_TIME_NOTE = re.compile(r"^# t=\+([\d.]+)s")
_WALL = re.compile(r"^# wall clock at t=0: (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)")


class FakeClock:
    """The tracker's clock, moved by the test (replaying a trace at its recorded pace without waiting)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 22, 22, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def timed_events(name: str) -> list[tuple[float, object]]:
    """(seconds since the transcript's t=0, AMIMessage) for every event Asterisk sent, in order.

    Built from the same line bytes as trace_reader, plus the `# t=+N` notes (the time a chunk arrived)."""
    path = trace_path(name)
    stamps: list[float] = []
    current = 0.0
    for line in path.read_text(encoding="utf-8").splitlines():
        note = _TIME_NOTE.match(line)
        if note:
            current = float(note.group(1))
        elif line[:2] in ("S:", "C:"):
            stamps.append(current)
    lines = read_trace(name)
    assert len(lines) == len(stamps)
    parsers: dict[str, AMIParser] = {}
    out: list[tuple[float, object]] = []
    for stamp, ln in zip(stamps, lines, strict=True):
        if ln.direction != "S":
            continue
        if ln.raw.startswith(b"Asterisk Call Manager/") or ln.conn not in parsers:
            parsers[ln.conn] = AMIParser(max_message_size=1 << 24)
            if ln.raw.startswith(b"Asterisk Call Manager/"):
                parsers[ln.conn].feed(ln.raw)
                continue
        for msg in parsers[ln.conn].feed(ln.raw):
            if msg.event:
                out.append((stamp, msg))
    return out


def wall_clock_start(name: str) -> datetime:
    for line in trace_path(name).read_text(encoding="utf-8").splitlines()[:10]:
        m = _WALL.match(line)
        if m:
            return datetime.fromisoformat(m.group(1)).replace(tzinfo=UTC)
    return datetime(2026, 11, 22, tzinfo=UTC)


def replay(tracker, name: str, clock: FakeClock, *, times: int = 1) -> int:  # type: ignore[no-untyped-def]
    """Feed a transcript's events into the tracker's handler at their recorded times; returns events fed."""
    start = wall_clock_start(name)
    count = 0
    for stamp, msg in timed_events(name):
        clock.now = start + timedelta(seconds=stamp)
        for _ in range(times):
            tracker.handle(msg)
            count += 1
    return count
