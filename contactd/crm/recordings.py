"""Call recordings (seed 003 §8 녹취): every answered call is recorded, measured, kept, checked and expired.

How: on `call.answered` we start `MixMonitor` on the customer's channel (LiveCall.caller_channel; on click-to-call
the dialled far leg)
into `<[recordings] dir>/YYYY/MM/DD/<uniqueid>.wav` (Asia/Seoul date of the answer). The caller's channel is
the one leg that lives from answer to hang-up: agents change under blind and attended transfers, the caller
does not, so one file covers the whole call.

No MixMonitor options: option `b` records only while the channel is bridged (the trace's second MixMonitor
used it), which would cut out the hold music of an attended transfer's consultation and the harassment
warning the caller hears after being redirected out of the bridge — both belong in the record of the call.
Without options MixMonitor mixes both directions of the channel until it hangs up.

The path we give Asterisk is absolute (`[recordings] dir` resolved here): Asterisk writes exactly the path in
`File:` (mixmonitor-recording-info.txt), so contactd and Asterisk must see the directory at the same path
(same host, or the same mount point). Rows store the path relative to the directory, so it can move.

When the file closes (`MixMonitorStop`, or `call.ended` when the tracker has written the row) we read the
WAV header and the file size: `ready` with size and seconds; a 44-byte header-only file (no audio reached
it, e.g. mixmonitor-recording-info.txt's RECORD FILE) is `empty` and never offered for playback; no file is
`missing`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import struct
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from ..bus import BusConsumer, BusEvent
from ..store.models import Call, User
from ..store.models.base import utcnow
from .call_control import customer_channel

log = logging.getLogger(__name__)

SEOUL = ZoneInfo("Asia/Seoul")
WAV_HEADER_SIZE = 44
# The file may still be flushing when `call.ended` arrives: look again after these delays before `missing`.
SETTLE_DELAYS = (0.2, 0.5, 1.0, 2.0)
_SAFE_NAME = re.compile(r"[^0-9A-Za-z._-]")
_DATE_DIR = re.compile(r"^(\d{4})/(\d{2})/(\d{2})$")
LIVE_STATUSES = ("recording", "ready", "empty", "missing")


class RecordingError(Exception):
    """A recording cannot be served; the message says why."""


class RecordingNotFound(RecordingError):
    pass


class RecordingForbidden(RecordingError):
    pass


@dataclass(frozen=True)
class WavInfo:
    size: int  # bytes on disk
    data_bytes: int  # audio bytes
    seconds: float | None  # None when the header cannot be read
    sample_rate: int = 0
    channels: int = 0
    bits: int = 0

    @property
    def empty(self) -> bool:
        return self.data_bytes == 0


def wav_info(path: Path) -> WavInfo:
    """Size and duration from the RIFF header and the real file size.

    The audio length comes from the bytes actually on disk when the header's data size is 0, 0xFFFFFFFF or
    larger than the file (a recording not closed cleanly), so a crashed Asterisk still gives a duration.
    """
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(4096)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return WavInfo(size, max(0, size - WAV_HEADER_SIZE), None)
    pos, fmt = 12, None
    while pos + 8 <= len(head):
        chunk_id, chunk_size = head[pos:pos + 4], struct.unpack_from("<I", head, pos + 4)[0]
        body = pos + 8
        if chunk_id == b"fmt " and body + 16 <= len(head):
            fmt = struct.unpack_from("<HHIIHH", head, body)
        elif chunk_id == b"data":
            available = max(0, size - body)
            data = available if chunk_size in (0, 0xFFFFFFFF) or chunk_size > available else chunk_size
            if fmt is None:
                return WavInfo(size, data, None)
            _tag, channels, rate, byte_rate, _align, bits = fmt
            byte_rate = byte_rate or rate * channels * bits // 8
            seconds = round(data / byte_rate, 2) if byte_rate else None
            return WavInfo(size, data, seconds, rate, channels, bits)
        pos = body + chunk_size + (chunk_size & 1)
    return WavInfo(size, 0, None)


@dataclass(frozen=True)
class MissingRecording:
    call_id: int
    linkedid: str
    path: str
    status: str


@dataclass
class RecordingCheck:
    """`contactd recordings check`: files with no call row, and call rows whose file is gone."""

    directory: Path
    orphans: list[Path] = field(default_factory=list)
    missing: list[MissingRecording] = field(default_factory=list)
    files_seen: int = 0
    rows_seen: int = 0

    @property
    def ok(self) -> bool:
        return not self.orphans and not self.missing

    def format(self) -> str:
        lines = [f"recordings in {self.directory}: {self.files_seen} files, {self.rows_seen} calls with a recording"]
        lines.append(f"files with no call row (orphans): {len(self.orphans)}")
        lines.extend(f"  {path}" for path in self.orphans)
        lines.append(f"calls whose recording file is gone: {len(self.missing)}")
        lines.extend(f"  call {m.call_id} ({m.linkedid}) {m.path} [was {m.status}]" for m in self.missing)
        lines.append("OK" if self.ok else "PROBLEMS FOUND")
        return "\n".join(lines)


@dataclass
class RetentionReport:
    cutoff: datetime
    files_deleted: int = 0
    rows_marked: int = 0
    bytes_freed: int = 0
    orphans_deleted: int = 0


@dataclass
class _Active:
    linkedid: str
    channel: str
    relpath: str


def _aware(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        with contextlib.suppress(ValueError):
            parsed = datetime.fromisoformat(value)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return utcnow()


class RecordingService:
    def __init__(self, services: Any, *, settle_delays: tuple[float, ...] = SETTLE_DELAYS) -> None:
        self.services = services
        self.config = services.config.recordings
        self.root = Path(self.config.dir).resolve()
        self.settle_delays = settle_delays
        self._active: dict[str, _Active] = {}  # linkedid -> recording in progress
        # caller channel -> recording, kept a while after the call ends: MixMonitorStop may come after call.ended
        self._by_channel: OrderedDict[str, _Active] = OrderedDict()
        self._failed: set[str] = set()  # linkedids whose MixMonitor Asterisk refused
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unsubscribe: Any = None
        self._consumer = BusConsumer(services.bus, "call.answered", "call.ended", handle=self._on_event,
                                     name="recordings")

    # ------------------------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        await self._consumer.start()
        ami = self.services.ami
        if ami is not None:
            self._unsubscribe = ami.subscribe(self._on_mixmonitor_stop, "MixMonitorStop")

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            with contextlib.suppress(Exception):
                self._unsubscribe()
            self._unsubscribe = None
        await self._consumer.stop()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 5)
        self._tasks.clear()

    async def _on_event(self, event: BusEvent) -> None:
        # With the Redis bus every node sees every call: only the node whose tracker saw it records it.
        if event.origin and event.origin != self.services.bus.node_id:
            return
        if event.topic == "call.answered":
            await self.on_answered(event.payload)
        elif event.topic == "call.ended":
            await self.on_ended(event.payload)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------------------------------- recording

    def relpath_for(self, uniqueid: str, answered_at: datetime) -> str:
        day = answered_at.astimezone(SEOUL)
        name = _SAFE_NAME.sub("_", uniqueid) or "call"
        return f"{day:%Y/%m/%d}/{name}.wav"

    def absolute(self, stored: str) -> Path:
        path = Path(stored)
        return path if path.is_absolute() else self.root / path

    async def on_answered(self, payload: dict[str, Any]) -> str | None:
        """Start MixMonitor on the caller's channel (once per call). Returns the relative path, or None."""
        linkedid = str(payload.get("linkedid") or "")
        if not linkedid or linkedid in self._active:
            return None  # answered again after a transfer: the running recording already covers it
        tracker = self.services.tracker
        live = tracker.get(linkedid) if tracker is not None else None
        if live is None or not getattr(live, "caller_channel", None):
            log.warning("recordings: call %s answered but the tracker has no caller channel for it", linkedid)
            return None
        if getattr(live, "recording_path", None):
            return None
        uniqueid = str(getattr(live, "uniqueid", "") or linkedid)
        relpath = self.relpath_for(uniqueid, _aware(payload.get("answered_at")))
        target = self.root / relpath
        with contextlib.suppress(OSError):  # Asterisk may be elsewhere; it creates the folders itself too
            await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
        # The customer's leg is the one that lives to the end: on a click-to-call the caller channel is the
        # agent's phone, which hangs up when the agent transfers the customer and would end the recording there.
        channel = customer_channel(live) or str(live.caller_channel)
        try:
            await self.services.pbx.mixmonitor_start(channel, str(target), "")
        except Exception as exc:
            self._failed.add(linkedid)
            log.error("recordings: MixMonitor on %s for call %s failed: %s", channel, linkedid, exc)
            return None
        self._active[linkedid] = self._by_channel[channel] = _Active(linkedid, channel, relpath)
        while len(self._by_channel) > 2000:
            self._by_channel.popitem(last=False)
        live.recording_path = relpath
        log.info("recordings: recording call %s (%s) to %s", linkedid, channel, relpath)
        return relpath

    async def _on_mixmonitor_stop(self, msg: Any) -> None:
        rec = self._by_channel.get(msg.get("Channel") or "")
        if rec is None:
            return
        try:
            # Before call.ended there is no row yet and this does nothing; after it, it corrects a measurement
            # taken before Asterisk had finished writing the file.
            await self.finalize(rec.linkedid, relpath=rec.relpath)
        except Exception:
            log.exception("recordings: finalizing %s after MixMonitorStop failed", rec.linkedid)

    async def on_ended(self, payload: dict[str, Any]) -> str | None:
        linkedid = str(payload.get("linkedid") or "")
        active = self._active.pop(linkedid, None)
        failed = linkedid in self._failed
        self._failed.discard(linkedid)
        if active is None and not failed:
            recorded = str(payload.get("recording_path") or "")
            if not recorded:
                return None
            # MixMonitor started elsewhere: by the node that owned the AMI stream before a hand-over mid-call
            # (several nodes), or by the dialplan. Measure the file here, or the row stays `recording` for good.
            active = _Active(linkedid, "", recorded)
        status = await self.finalize(linkedid, relpath=active.relpath if active else None)
        if status == "missing" and active is not None and self.settle_delays:
            self._spawn(self._settle(linkedid, active.relpath), f"recording-settle-{linkedid}")
        return status

    async def _settle(self, linkedid: str, relpath: str) -> None:
        for delay in self.settle_delays:
            await asyncio.sleep(delay)
            if await self.finalize(linkedid, relpath=relpath) != "missing":
                return
        log.warning("recordings: call %s: %s never appeared", linkedid, relpath)

    async def finalize(self, linkedid: str, *, relpath: str | None = None) -> str | None:
        """Measure the file and store size/seconds/status on the call row. Returns the status, or None when
        the row does not exist yet (the tracker writes it at call end) or has nothing to measure."""
        async with self.services.db.transaction() as session:
            row = await session.scalar(select(Call).where(Call.linkedid == linkedid))
            if row is None or row.recording_status == "deleted":
                return None
            stored = row.recording_path or relpath
            if not stored:
                row.recording_status = "missing"  # answered, but Asterisk refused to record it
                return row.recording_status
            info = await asyncio.to_thread(self._measure, self.absolute(stored))
            row.recording_path = stored
            if info is None:
                row.recording_status, row.recording_size, row.recording_seconds = "missing", None, None
            else:
                row.recording_status = "empty" if info.empty else "ready"
                row.recording_size, row.recording_seconds = info.size, info.seconds
            return row.recording_status

    @staticmethod
    def _measure(path: Path) -> WavInfo | None:
        try:
            return wav_info(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("recordings: cannot read %s: %s", path, exc)
            return None

    # ------------------------------------------------------------------------------------------- playback

    async def path_for_call(self, call_id: int, user: User) -> Path:
        """The file to play or download. Admins and supervisors hear any call, agents their own calls;
        only `ready` recordings are served, and only from inside the recordings directory."""
        async with self.services.db.session() as session:
            row = await session.get(Call, call_id)
        if row is None:
            raise RecordingNotFound(f"call {call_id} does not exist")
        if user.role not in ("admin", "supervisor") and (
                not user.extension or row.agent_extension != user.extension):
            raise RecordingForbidden(f"call {call_id} is not one of your calls")
        if row.recording_status != "ready" or not row.recording_path:
            raise RecordingNotFound(f"call {call_id} has no playable recording ({row.recording_status})")
        root = self.root
        path = self.absolute(row.recording_path).resolve()
        if not path.is_relative_to(root) or path.suffix.lower() != ".wav":
            log.warning("recordings: call %s points outside the recordings directory: %r", call_id,
                        row.recording_path)
            raise RecordingNotFound(f"call {call_id} has no playable recording")
        if not await asyncio.to_thread(path.is_file):
            raise RecordingNotFound(f"call {call_id}: the recording file is gone")
        return path

    # ------------------------------------------------------------------------------------------- retention

    async def apply_retention(self, now: datetime | None = None, *, batch: int = 500) -> RetentionReport:
        """Delete recordings of calls started more than `retention_days` ago and mark their rows `deleted`;
        also delete stray files in date folders older than that. `retention_days = 0` keeps everything."""
        now = now or utcnow()
        days = self.config.retention_days
        report = RetentionReport(cutoff=now - timedelta(days=days))
        if days <= 0:
            return report
        last_id = 0
        while True:
            async with self.services.db.transaction() as session:
                rows = list(await session.scalars(
                    select(Call).where(Call.started_at < report.cutoff, Call.recording_path.is_not(None),
                                       Call.recording_status != "deleted", Call.id > last_id)
                    .order_by(Call.id).limit(batch)))
                if not rows:
                    break
                for row in rows:
                    freed = await asyncio.to_thread(self._delete_file, self.absolute(row.recording_path or ""))
                    if freed is not None:
                        report.files_deleted += 1
                        report.bytes_freed += freed
                    row.recording_status = "deleted"
                    report.rows_marked += 1
                last_id = rows[-1].id
        cutoff_day = report.cutoff.astimezone(SEOUL).date()
        deleted, freed = await asyncio.to_thread(self._delete_old_folders, cutoff_day)
        report.orphans_deleted, report.bytes_freed = deleted, report.bytes_freed + freed
        if report.rows_marked or report.orphans_deleted:
            log.info("recordings: retention %d days deleted %d files (%d stray), %d bytes", days,
                     report.files_deleted + report.orphans_deleted, report.orphans_deleted, report.bytes_freed)
        return report

    def _delete_file(self, path: Path) -> int | None:
        """Bytes freed, or None when there was no file. Never deletes outside the recordings directory."""
        try:
            resolved = path.resolve()
            if not resolved.is_relative_to(self.root):
                log.warning("recordings: not deleting %s: outside %s", path, self.root)
                return None
            size = resolved.stat().st_size
            resolved.unlink()
            return size
        except FileNotFoundError:
            return None

    def _date_dirs(self) -> list[tuple[date, Path]]:
        found: list[tuple[date, Path]] = []
        if not self.root.is_dir():
            return found
        for year in self.root.iterdir():
            if not (year.is_dir() and year.name.isdigit()):
                continue
            for month in year.iterdir():
                if not month.is_dir():
                    continue
                for day in month.iterdir():
                    match = _DATE_DIR.match(f"{year.name}/{month.name}/{day.name}")
                    if day.is_dir() and match:
                        with contextlib.suppress(ValueError):
                            found.append((date(*(int(g) for g in match.groups())), day))
        return found

    def _delete_old_folders(self, cutoff_day: date) -> tuple[int, int]:
        # Every call row whose recording sits in a folder older than the cutoff day started before the cutoff,
        # so anything still there is a stray file that retention must remove too.
        deleted = freed = 0
        for day, folder in self._date_dirs():
            if day >= cutoff_day:
                continue
            for path in folder.glob("*.wav"):
                with contextlib.suppress(FileNotFoundError):
                    freed += path.stat().st_size
                    path.unlink()
                    deleted += 1
            for empty in (folder, folder.parent, folder.parent.parent):
                with contextlib.suppress(OSError):
                    empty.rmdir()  # only succeeds when empty
        return deleted, freed

    # ------------------------------------------------------------------------------------------- check

    async def check(self, *, grace: timedelta = timedelta(minutes=10), now: datetime | None = None
                    ) -> RecordingCheck:
        """Compare the directory with the calls table. Files written in the last `grace` are skipped: they
        belong to calls still in progress, which have no row yet."""
        report = RecordingCheck(self.root)
        known: set[str] = set()
        async with self.services.db.session() as session:
            result = await session.stream(
                select(Call.id, Call.linkedid, Call.recording_path, Call.recording_status)
                .where(Call.recording_path.is_not(None), Call.recording_status.in_(LIVE_STATUSES))
                .order_by(Call.id).execution_options(yield_per=1000))
            rows = [row async for row in result]
        report.rows_seen = len(rows)
        exists = await asyncio.to_thread(lambda: {r.id: self.absolute(r.recording_path).is_file() for r in rows})
        for row in rows:
            known.add(str(self.absolute(row.recording_path)))
            if not exists[row.id]:
                report.missing.append(MissingRecording(row.id, row.linkedid, row.recording_path, row.recording_status))
        active = {str(self.root / a.relpath) for a in self._active.values()}
        limit = ((now or utcnow()) - grace).timestamp()

        def scan() -> None:
            for _day, folder in self._date_dirs():
                for path in sorted(folder.glob("*.wav")):
                    report.files_seen += 1
                    key = str(path)
                    if key in known or key in active:
                        continue
                    with contextlib.suppress(FileNotFoundError):
                        if path.stat().st_mtime < limit:
                            report.orphans.append(path)

        await asyncio.to_thread(scan)
        return report

    # ------------------------------------------------------------------------------------------- state

    def recording_for(self, linkedid: str) -> str | None:
        active = self._active.get(linkedid)
        return active.relpath if active else None


__all__ = ["RecordingService", "RecordingCheck", "RetentionReport", "MissingRecording", "WavInfo", "wav_info",
           "RecordingError", "RecordingNotFound", "RecordingForbidden", "SEOUL"]
