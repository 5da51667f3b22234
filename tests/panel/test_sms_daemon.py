"""The daemon's SMS dispatcher: a message scheduled before a restart is sent by the next daemon, exactly once."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

from contactd.app import Daemon
from contactd.config import load_config
from contactd.crm.sms import Recipient
from contactd.store.models import utcnow


def config_for(tmp_path: Path):  # type: ignore[no-untyped-def]
    return load_config(None, env={
        "CONTACTD_DB__URL": f"sqlite+aiosqlite:///{tmp_path}/app.sqlite3",
        "CONTACTD_WEB__PORT": "0", "CONTACTD_AGI__PORT": "0",
        "CONTACTD_RECORDINGS__DIR": str(tmp_path / "recordings"),
        "CONTACTD_SIMULATOR__CALL_INTERVAL": "0",
        "CONTACTD_SMS__SENDER": "02-1234-5678", "CONTACTD_SMS__SPOOL_DIR": str(tmp_path / "spool"),
    })


def spool(tmp_path: Path) -> list[dict]:
    path = tmp_path / "spool" / "outbox.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


async def test_a_message_scheduled_before_a_restart_is_sent_once_by_the_next_daemon(tmp_path: Path) -> None:
    first = Daemon(config_for(tmp_path))
    await first.start()
    try:
        sms = first.services.extra["sms"]
        result = await sms.compose([Recipient("01012345678", "홍길동")], "{고객명}님 예약 안내",
                                   scheduled_at=utcnow() + timedelta(seconds=2))
    finally:
        await first.stop()
    assert spool(tmp_path) == []  # not due while the first daemon ran

    await asyncio.sleep(2.2)
    second = Daemon(config_for(tmp_path))
    await second.start()  # its dispatcher's first pass runs at once and finds the overdue message
    try:
        sms = second.services.extra["sms"]
        for _ in range(100):
            if [r.status for r in await sms.recipients(result.message.id)] == ["sent"]:
                break
            await asyncio.sleep(0.05)
        assert [r.status for r in await sms.recipients(result.message.id)] == ["sent"]
        await asyncio.sleep(0.3)
    finally:
        await second.stop()

    third = Daemon(config_for(tmp_path))  # and a further restart sends nothing again
    await third.start()
    await asyncio.sleep(0.3)
    await third.stop()
    lines = spool(tmp_path)
    assert [(line["to"], line["body"]) for line in lines] == [("01012345678", "홍길동님 예약 안내")]
