"""Call recordings: MixMonitor on the caller's channel, measurement, retention, check, safe playback paths."""

from __future__ import annotations

import os
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from call_sim import call_row, rig_fixture, sent, wait_for, wav_header  # noqa: F401  (rig is a fixture)

from contactd.config import Config
from contactd.crm.call_control import CallControlService
from contactd.crm.recordings import (
    SEOUL,
    RecordingForbidden,
    RecordingNotFound,
    RecordingService,
    wav_info,
)
from contactd.services import Services
from contactd.store.models import Call, User

# The two headers from asterisk-traces/mixmonitor-recording-info.txt, byte for byte.
MIXMON_4S_HEADER = bytes.fromhex("52494646 24fa0000 57415645 666d7420 10000000 01000100 401f0000 803e0000"
                                 "02001000 64617461 00fa0000".replace(" ", ""))
RECORD_FILE_EMPTY = bytes.fromhex("52494646 24000000 57415645 666d7420 10000000 01000100 401f0000 803e0000"
                                  "02001000 64617461 00000000".replace(" ", ""))


def test_wav_info_reads_the_trace_headers(tmp_path: Path) -> None:
    full = tmp_path / "ami-mixmon-test.wav"
    full.write_bytes(MIXMON_4S_HEADER + b"\x01\x00" * 32000)
    info = wav_info(full)
    assert (info.size, info.data_bytes, info.seconds, info.sample_rate, info.channels, info.bits) == \
        (64044, 64000, 4.0, 8000, 1, 16)
    empty = tmp_path / "agi-record.wav"
    empty.write_bytes(RECORD_FILE_EMPTY)
    assert wav_info(empty).empty and wav_info(empty).seconds == 0.0
    # A file Asterisk never closed (header still says 0) is measured by what is on disk.
    unclosed = tmp_path / "unclosed.wav"
    unclosed.write_bytes(RECORD_FILE_EMPTY + b"\x00" * 8000)
    assert wav_info(unclosed).seconds == 0.5


async def start_recordings(rig, **kwargs) -> RecordingService:  # type: ignore[no-untyped-def]
    svc = RecordingService(rig.services, **kwargs)
    rig.services.recordings = svc
    await svc.start()
    return svc


async def test_answered_call_is_recorded_on_caller_channel_and_measured(rig) -> None:  # type: ignore[no-untyped-def]
    await start_recordings(rig)
    call = await rig.sim.inbound("010-2222-3333", "홍길동", agent="1001")
    action = await rig.server.wait_for_action("MixMonitor")
    today = datetime.now(UTC).astimezone(SEOUL)
    expected = rig.recdir / f"{today:%Y/%m/%d}" / f"{call.caller.uniqueid}.wav"
    assert action.get("Channel") == call.caller.name  # the caller's leg, not the agent's
    assert action.get("File") == str(expected)
    assert not action.get("Options")  # no `b`: hold music and the warning stay in the record
    live = await wait_for(lambda: rig.tracker.get(call.linkedid), what="live call")
    assert live.recording_path and live.recording_path.endswith(f"{call.caller.uniqueid}.wav")

    rig.sim.talk(call, 3.0)
    rig.sim.hangup(call)
    row = await wait_for(lambda: _ready(rig, call.linkedid), what="recording ready")
    assert row.recording_size == 44 + 3 * 16000
    assert row.recording_seconds == 3.0
    assert row.recording_path == f"{today:%Y/%m/%d}/{call.caller.uniqueid}.wav"
    with wave.open(str(expected)) as wav:  # a real, readable WAV
        assert (wav.getframerate(), wav.getnchannels(), wav.getnframes()) == (8000, 1, 24000)
    admin = User(username="boss", password_hash="x", role="admin")
    assert await rig.services.recordings.path_for_call(row.id, admin) == expected


async def _ready(rig, linkedid: str):  # type: ignore[no-untyped-def]
    row = await call_row(rig.services, linkedid)
    return row if row is not None and row.recording_status == "ready" else None


async def test_header_only_recording_is_empty_and_never_played(rig) -> None:  # type: ignore[no-untyped-def]
    svc = await start_recordings(rig)
    call = await rig.sim.inbound("01044445555", agent="1002", audio=False)
    await rig.server.wait_for_action("MixMonitor")
    rig.sim.hangup(call)

    async def settled():  # type: ignore[no-untyped-def]
        row = await call_row(rig.services, call.linkedid)
        return row if row is not None and row.recording_status != "recording" else None

    row = await wait_for(settled, what="row with recording status")
    assert (row.recording_status, row.recording_size, row.recording_seconds) == ("empty", 44, 0.0)
    with pytest.raises(RecordingNotFound, match="no playable recording"):
        await svc.path_for_call(row.id, User(username="a", password_hash="x", role="admin"))


async def test_recording_gone_before_hangup_is_missing(rig) -> None:  # type: ignore[no-untyped-def]
    await start_recordings(rig, settle_delays=(0.05, 0.05))
    call = await rig.sim.inbound("01055556666", agent="1001")
    action = await rig.server.wait_for_action("MixMonitor")
    await wait_for(lambda: Path(action.get("File") or "").exists(), what="file")
    rig.sim.recordings.pop(call.caller.name)  # Asterisk lost it: no file, no MixMonitorStop
    os.unlink(action.get("File") or "")
    rig.sim.hangup(call)

    async def missing():  # type: ignore[no-untyped-def]
        row = await call_row(rig.services, call.linkedid)
        return row if row is not None and row.recording_status == "missing" else None

    row = await wait_for(missing, what="missing status")
    assert row.recording_size is None


async def test_blind_transfer_keeps_one_recording_for_the_whole_call(rig) -> None:  # type: ignore[no-untyped-def]
    await start_recordings(rig)
    control = CallControlService(rig.services)
    call = await rig.sim.inbound("01077778888", "김태희", agent="1001")
    await rig.server.wait_for_action("MixMonitor")
    await wait_for(lambda: rig.tracker.call_for_extension("1001"), what="agent 1001 on the call")
    rig.sim.talk(call, 2.0)
    await control.blind_transfer("1001", "1002")
    await wait_for(lambda: (rig.tracker.get(call.linkedid) or call).agent_extension == "1002"
                   and call.agent and "1002@" in call.agent.name, what="transfer to 1002")
    rig.sim.talk(call, 3.0)
    rig.sim.hangup(call)
    row = await wait_for(lambda: _ready(rig, call.linkedid), what="recording ready")
    assert len(sent(rig.server, "MixMonitor")) == 1
    assert row.recording_seconds == 5.0  # both agents' parts in one file
    assert row.transferred and row.agent_extension == "1002"


async def test_mixmonitor_refused_marks_the_call_missing(rig) -> None:  # type: ignore[no-untyped-def]
    await start_recordings(rig)
    rig.sim.refuse["mixmonitor"] = "No such channel"
    call = await rig.sim.inbound("01012121212", agent="1001")
    await rig.server.wait_for_action("MixMonitor")
    await wait_for(lambda: rig.tracker.get(call.linkedid) and rig.tracker.get(call.linkedid).answered,
                   what="answered")
    rig.sim.hangup(call)

    async def missing():  # type: ignore[no-untyped-def]
        row = await call_row(rig.services, call.linkedid)
        return row if row is not None and row.recording_status == "missing" else None

    await wait_for(missing, what="missing status")


# ---------------------------------------------------------------------------------------- SQL-side rules


def make_services(db, tmp_path: Path, retention_days: int = 0) -> Services:  # type: ignore[no-untyped-def]
    config = Config()
    config.recordings.dir = str(tmp_path / "rec")
    config.recordings.retention_days = retention_days
    return Services(config=config, db=db, bus=None)  # type: ignore[arg-type]


async def add_call(db, linkedid: str, started: datetime, relpath: str | None, status: str = "ready",  # type: ignore[no-untyped-def]
                   agent: str | None = "1001") -> int:
    async with db.transaction() as session:
        row = Call(linkedid=linkedid, uniqueid=linkedid, direction="in", from_number="01011112222", from_name="",
                   to_number="", started_at=started, answered_at=started, ended_at=started + timedelta(minutes=1),
                   disposition="ANSWERED", recording_path=relpath, recording_status=status,
                   agent_extension=agent, recording_size=1000 if relpath else None)
        session.add(row)
        await session.flush()
        return row.id


def write_wav(root: Path, relpath: str, seconds: float = 1.0, mtime: datetime | None = None) -> Path:
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    data = int(seconds * 16000)
    path.write_bytes(wav_header(data) + b"\x00" * data)
    if mtime is not None:
        os.utime(path, (mtime.timestamp(), mtime.timestamp()))
    return path


async def test_retention_deletes_old_recordings_and_marks_rows(any_db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    now = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
    services = make_services(any_db, tmp_path, retention_days=30)
    svc = RecordingService(services)
    old_id = await add_call(any_db, "old.1", now - timedelta(days=40), "2026/10/15/old.1.wav")
    new_id = await add_call(any_db, "new.1", now - timedelta(days=3), "2026/11/21/new.1.wav")
    gone_id = await add_call(any_db, "gone.1", now - timedelta(days=50), "2026/10/05/gone.1.wav", status="missing")
    old = write_wav(svc.root, "2026/10/15/old.1.wav")
    new = write_wav(svc.root, "2026/11/21/new.1.wav")
    stray = write_wav(svc.root, "2026/10/16/stray.wav")

    report = await svc.apply_retention(now)
    assert (report.files_deleted, report.rows_marked, report.orphans_deleted) == (1, 2, 1)
    assert not old.exists() and not stray.exists() and new.exists()
    assert not (svc.root / "2026" / "10").exists()  # emptied date folders are removed
    async with any_db.session() as session:
        statuses = {i: (await session.get(Call, i)).recording_status for i in (old_id, new_id, gone_id)}
    assert statuses == {old_id: "deleted", new_id: "ready", gone_id: "deleted"}
    # Running it again finds nothing more; retention 0 keeps everything.
    again = await svc.apply_retention(now)
    assert (again.files_deleted, again.rows_marked) == (0, 0)
    keep = RecordingService(make_services(any_db, tmp_path, retention_days=0))
    assert (await keep.apply_retention(now + timedelta(days=999))).rows_marked == 0
    assert new.exists()


async def test_check_reports_orphans_and_rows_without_files(any_db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    svc = RecordingService(make_services(any_db, tmp_path))
    await add_call(any_db, "ok.1", now, "2026/11/20/ok.1.wav")
    lost_id = await add_call(any_db, "lost.1", now, "2026/11/20/lost.1.wav")
    await add_call(any_db, "del.1", now, "2026/11/01/del.1.wav", status="deleted")  # expired: not a problem
    write_wav(svc.root, "2026/11/20/ok.1.wav", mtime=now - timedelta(hours=2))
    orphan = write_wav(svc.root, "2026/11/19/orphan.wav", mtime=now - timedelta(hours=2))
    write_wav(svc.root, "2026/11/24/in-progress.wav")  # just written: a call still in progress

    report = await svc.check(now=now)
    assert report.orphans == [orphan]
    assert [(m.call_id, m.linkedid) for m in report.missing] == [(lost_id, "lost.1")]
    text = report.format()
    assert "orphan.wav" in text and "lost.1" in text and "PROBLEMS FOUND" in text
    assert report.files_seen == 3 and report.rows_seen == 2


async def test_playback_path_rules(any_db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    svc = RecordingService(make_services(any_db, tmp_path))
    mine = await add_call(any_db, "a.1", now, "2026/11/20/a.1.wav", agent="1001")
    evil = await add_call(any_db, "b.1", now, "../../outside.wav", agent="1001")
    absolute = await add_call(any_db, "c.1", now, str(tmp_path / "elsewhere.wav"), agent="1001")
    path = write_wav(svc.root, "2026/11/20/a.1.wav")
    write_wav(tmp_path, "outside.wav")
    write_wav(tmp_path, "elsewhere.wav")
    agent1 = User(username="a1", password_hash="x", role="agent", extension="1001")
    agent2 = User(username="a2", password_hash="x", role="agent", extension="1002")
    supervisor = User(username="s", password_hash="x", role="supervisor")

    assert await svc.path_for_call(mine, agent1) == path
    assert await svc.path_for_call(mine, supervisor) == path
    with pytest.raises(RecordingForbidden):
        await svc.path_for_call(mine, agent2)
    for bad in (evil, absolute):  # files exist, but outside the recordings directory
        with pytest.raises(RecordingNotFound):
            await svc.path_for_call(bad, supervisor)
    with pytest.raises(RecordingNotFound, match="does not exist"):
        await svc.path_for_call(999999, supervisor)
    path.unlink()
    with pytest.raises(RecordingNotFound, match="gone"):
        await svc.path_for_call(mine, supervisor)


async def test_recording_date_folder_uses_seoul_date(tmp_path: Path) -> None:
    svc = RecordingService(make_services(None, tmp_path))
    # 2026-11-23 16:30 UTC is already 2026-11-24 01:30 in Seoul.
    assert svc.relpath_for("1795383478.18", datetime(2026, 11, 23, 16, 30, tzinfo=UTC)) == \
        "2026/11/24/1795383478.18.wav"
    assert svc.relpath_for("../../x", datetime(2026, 11, 23, tzinfo=UTC)) == "2026/11/23/.._.._x.wav"

