"""Call and recording history: who sees which calls, search limits, and the recording file with Range requests."""

from __future__ import annotations

import struct
from datetime import timedelta
from pathlib import Path

from panel_helpers import Panel

from contactd.crm.customers import CustomerService
from contactd.crm.recordings import RecordingService
from contactd.store.db import Database
from contactd.store.models import Call, utcnow


def wav_bytes(seconds: float = 1.0, rate: int = 8000) -> bytes:
    frames = int(seconds * rate)
    data = bytes((i * 7) % 256 for i in range(frames * 2))
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + b"fmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data" + struct.pack("<I", len(data))
    return header + data


async def add_call(db: Database, linkedid: str, **fields: object) -> int:
    values = {"uniqueid": linkedid, "direction": "in", "from_number": "01012345678", "to_number": "15880000",
              "started_at": utcnow(), "disposition": "ANSWERED", **fields}
    async with db.transaction() as session:
        call = Call(linkedid=linkedid, **values)
        session.add(call)
        await session.flush()
        return call.id


async def test_agents_see_their_own_calls_supervisors_all(panel: Panel, db: Database) -> None:
    customer = await CustomerService(db).create(name="홍길동", mobile="010-1234-5678")
    await add_call(db, "A1", agent_extension="1001", customer_id=customer.id, harassment_kind="abuse")
    await add_call(db, "A2", agent_extension="1002", from_number="0311112222")
    await add_call(db, "A3", agent_extension="1001", direction="internal", from_number="1002", to_number="1001")
    await add_call(db, "OLD", agent_extension="1001", started_at=utcnow() - timedelta(days=400))
    kim, boss = await panel.login("kim"), await panel.login("boss")
    status, body = await kim.get_json("/api/call-history")
    assert {c["linkedid"] for c in body["calls"]} == {"A1", "A3"}
    status, body = await kim.get_json("/api/call-history", agent="1002")  # asking for someone else's: still own
    assert {c["linkedid"] for c in body["calls"]} == {"A1", "A3"}
    status, body = await boss.get_json("/api/call-history", exclude_internal="1")
    assert {c["linkedid"] for c in body["calls"]} == {"A1", "A2"}
    status, body = await boss.get_json("/api/call-history", q="홍길동")
    assert [c["linkedid"] for c in body["calls"]] == ["A1"] and body["calls"][0]["harassment_kind"] == "abuse"
    status, body = await boss.get_json("/api/call-history", q="1111-2222")
    assert [c["linkedid"] for c in body["calls"]] == ["A2"]
    status, body = await boss.get_json("/api/call-history", agent="1002")
    assert [c["linkedid"] for c in body["calls"]] == ["A2"]
    too_old = (utcnow() - timedelta(days=400)).date().isoformat()
    status, body = await boss.get_json("/api/call-history", start=too_old)
    assert status == 422 and "1년" in body["error"]
    status, body = await boss.get_json("/api/call-history", per_page="1", page="2")
    assert body["total"] == 3 and body["pages"] == 3 and len(body["calls"]) == 1
    async with boss.http.get("/history") as r:
        html = await r.text()
    assert r.status == 200 and 'data-incident="abuse"' in html and "민원차단: 폭언" in html
    async with panel.anonymous().get("/api/call-history") as r:
        assert r.status == 401


async def test_recording_range_download_and_access(panel: Panel, db: Database, tmp_path: Path) -> None:
    panel.services.config.recordings.dir = str(tmp_path / "rec")
    panel.services.recordings = RecordingService(panel.services)
    audio = wav_bytes()
    folder = tmp_path / "rec" / "2026" / "11" / "24"
    folder.mkdir(parents=True)
    (folder / "R1.wav").write_bytes(audio)
    mine = await add_call(db, "R1", agent_extension="1001", recording_path="2026/11/24/R1.wav",
                          recording_status="ready", recording_size=len(audio))
    # A row pointing outside the recordings directory is never served.
    (tmp_path / "secret.wav").write_bytes(audio)
    evil = await add_call(db, "R2", agent_extension="1001", recording_path="../secret.wav", recording_status="ready")
    kim, lee, boss = await panel.login("kim"), await panel.login("lee"), await panel.login("boss")

    async with kim.http.get(f"/api/recordings/{mine}", headers={"Range": "bytes=100-199"}) as r:
        body = await r.read()
        assert r.status == 206 and body == audio[100:200]
        assert r.headers["Content-Range"] == f"bytes 100-199/{len(audio)}"
        assert r.headers["Content-Type"] == "audio/wav"
    async with kim.http.get(f"/api/recordings/{mine}") as r:
        assert r.status == 200 and await r.read() == audio and "Content-Disposition" not in r.headers
    async with boss.http.get(f"/api/recordings/{mine}", params={"download": "1"}) as r:
        assert r.status == 200 and await r.read() == audio
        assert r.headers["Content-Disposition"] == f'attachment; filename="call-{mine}.wav"'
    async with lee.http.get(f"/api/recordings/{mine}") as r:
        assert r.status == 403
    async with kim.http.get(f"/api/recordings/{evil}") as r:
        assert r.status == 404
    async with kim.http.get("/api/recordings/999999") as r:
        assert r.status == 404
    async with panel.anonymous().get(f"/api/recordings/{mine}") as r:
        assert r.status == 401
    async with kim.http.get("/history") as r:
        html = await r.text()
    assert f'<audio controls preload="none" src="/api/recordings/{mine}">' in html
