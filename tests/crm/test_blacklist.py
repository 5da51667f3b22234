"""Blacklist: SQL rules on SQLite and PostgreSQL, and AstDB mirroring through a real AMI link to a simulated
Asterisk (add/remove at once, resync on reconnect, AMI down during a change)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest
from astdb_sim import AstDB

from contactd.config import PBXConfig
from contactd.crm.blacklist import BlacklistError, BlacklistService
from contactd.store.db import Database

FAMILY = PBXConfig().blacklist_family


async def wait_for(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"condition not met within {timeout} s")


async def test_add_normalizes_and_refuses_duplicates(any_db: Database) -> None:
    service = BlacklistService(any_db, None, PBXConfig())
    entry = await service.add("010-1234-5678", "홍길동", "폭언")
    assert entry.number == "01012345678"
    with pytest.raises(BlacklistError, match="already on the blacklist"):
        await service.add("+82 10 1234 5678")
    with pytest.raises(BlacklistError):
        await service.add("not a number")
    assert await service.is_blocked("01012345678")
    assert await service.is_blocked("+82-10-1234-5678")
    assert not await service.is_blocked("01099999999")
    assert not await service.is_blocked("")
    assert not await service.is_blocked("anonymous")


async def test_list_search_and_remove(any_db: Database) -> None:
    service = BlacklistService(any_db, None, PBXConfig())
    await service.add("01011112222", "김철수", "폭언")
    await service.add("0212345678", "이영희", "성희롱 반복")
    assert {e.number for e in await service.list()} == {"01011112222", "0212345678"}
    assert [e.number for e in await service.list("1111")] == ["01011112222"]
    assert [e.number for e in await service.list("영희")] == ["0212345678"]
    assert [e.number for e in await service.list("성희롱")] == ["0212345678"]
    assert await service.remove("010-1111-2222") is True
    assert await service.remove("01011112222") is False
    assert not await service.is_blocked("01011112222")


async def test_attempts_are_logged_per_number(any_db: Database) -> None:
    service = BlacklistService(any_db, None, PBXConfig())
    at = datetime(2020, 11, 25, 1, 2, 3, tzinfo=UTC)  # before the two logged "now"
    await service.log_attempt("010-1234-5678", "1795385863.1", at=at)
    await service.log_attempt("01012345678", "1795385863.9")
    await service.log_attempt("0211112222", "1795385864.1")
    mine = await service.attempts("01012345678")
    assert [a.uniqueid for a in mine] == ["1795385863.9", "1795385863.1"]  # newest first
    assert mine[1].at == at
    assert len(await service.attempts()) == 3


async def test_add_and_remove_are_mirrored_to_astdb(db: Database, astdb: AstDB) -> None:
    service = BlacklistService(db, astdb.pbx, PBXConfig())
    await service.add("010-1234-5678", "홍길동", "폭언")
    assert astdb.family(FAMILY) == {"01012345678": "1"}
    await service.add("0212345678")
    assert astdb.family(FAMILY) == {"01012345678": "1", "0212345678": "1"}
    await service.remove("01012345678")
    assert astdb.family(FAMILY) == {"0212345678": "1"}
    assert astdb.actions("DBDel") == [f"{FAMILY}/01012345678"]
    assert service.astdb_dirty is False


async def test_ami_down_during_add_saves_row_logs_error_and_resync_fixes_astdb(
        db: Database, astdb: AstDB, caplog: pytest.LogCaptureFixture) -> None:
    service = BlacklistService(db, astdb.pbx, PBXConfig())
    astdb.ami.add_connect_listener(service.resync_astdb)  # as app.py does
    await service.add("01011112222")
    astdb.data[(FAMILY, "01099990000")] = "1"  # stale: removed from the list while nobody synced
    await astdb.server.kill()
    await wait_for(lambda: not astdb.ami.connected)

    caplog.set_level(logging.ERROR, logger="contactd.crm.blacklist")
    entry = await service.add("010-3333-4444", "악성", "욕설")
    assert entry.id is not None
    assert await service.is_blocked("01033334444")  # saved even though Asterisk was unreachable
    assert "AstDB put of 01033334444 failed" in caplog.text
    assert "s3cret-blacklist" not in caplog.text
    assert service.astdb_dirty is True
    assert (FAMILY, "01033334444") not in astdb.data

    await astdb.server.start()  # Asterisk is back: the client logs in again and the listener resyncs
    await astdb.ami.wait_connected(5.0)
    await wait_for(lambda: astdb.family(FAMILY) == {"01011112222": "1", "01033334444": "1"})
    assert service.astdb_dirty is False
    assert astdb.actions("DBDelTree") == []  # never cleared: blocked numbers stay blocked while it resyncs


async def test_resync_pushes_the_whole_list_and_drops_strays(db: Database, astdb: AstDB) -> None:
    service = BlacklistService(db, None, PBXConfig())  # filled while no PBX was wired
    for n in ("01011112222", "01033334444", "0212345678"):
        await service.add(n)
    service.pbx = astdb.pbx
    astdb.data[(FAMILY, "01000000000")] = "1"
    astdb.data[("other-family", "x")] = "keep"
    astdb.data[(FAMILY, "01011112222")] = "1"  # already there: not written again
    assert await service.resync_astdb() == 3
    assert astdb.family(FAMILY) == {"01011112222": "1", "01033334444": "1", "0212345678": "1"}
    assert astdb.data[("other-family", "x")] == "keep"
    assert astdb.actions("DBPut") == [f"{FAMILY}/01033334444", f"{FAMILY}/0212345678"]
    assert astdb.actions("DBDel") == [f"{FAMILY}/01000000000"] and astdb.actions("DBDelTree") == []
    # An empty family answers DBDelTree with an error in Asterisk; resync treats it as nothing to delete.
    for n in ("01011112222", "01033334444", "0212345678"):
        await service.remove(n)
    assert astdb.family(FAMILY) == {}
    assert await service.resync_astdb() == 0


async def test_resync_with_ami_down_returns_failure_without_raising(db: Database, astdb: AstDB) -> None:
    service = BlacklistService(db, astdb.pbx, PBXConfig())
    await service.add("01011112222")
    await astdb.server.kill()
    await wait_for(lambda: not astdb.ami.connected)
    assert await service.resync_astdb() == -1
    assert service.astdb_dirty is True
