"""The harassment block (민원차단): warning Redirect, agent freed, incident recorded, call marked, auto-blacklist."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from call_sim import call_row, make_rig, rig_fixture, sent, wait_for  # noqa: F401  (rig is a fixture)
from sqlalchemy import select

from contactd.config import Config
from contactd.crm.blacklist import BlacklistService
from contactd.crm.call_control import CallControlError, NoLiveCall, PBXRefused
from contactd.crm.harassment import HarassmentService
from contactd.services import Services
from contactd.simulator.ami_server import success
from contactd.store.models import Incident


async def start(rig, **kwargs) -> HarassmentService:  # type: ignore[no-untyped-def]
    svc = HarassmentService(rig.services, **kwargs)
    rig.services.harassment = svc
    await svc.start()
    return svc


async def answered(rig, number: str, agent: str = "1001"):  # type: ignore[no-untyped-def]
    call = await rig.sim.inbound(number, "진상고객", agent=agent)
    await wait_for(lambda: (live := rig.tracker.get(call.linkedid)) is not None and live.answered
                   and live.agent_channel, what="answered call")
    return call


async def test_abuse_warning_redirects_caller_ends_call_and_records_incident(rig) -> None:  # type: ignore[no-untyped-def]
    svc = await start(rig)
    events = rig.services.bus.subscribe("call.harassment")
    call = await answered(rig, "010-9999-8888")
    agent_id = rig.users["1001"].id

    result = await svc.warn_and_hangup(call.linkedid, "abuse", agent_id, "1001")

    redirects = sent(rig.server, "Redirect")
    assert len(redirects) == 1
    r = redirects[0]
    assert (r["Channel"], r["Context"], r["Exten"], r["Priority"]) == (call.caller.name, "contactd-warning",
                                                                       "abuse", "1")
    assert "ExtraChannel" not in r  # the agent must not hear the warning
    assert not result.agent_hung_up and not sent(rig.server, "Hangup")  # Asterisk cleared the agent leg itself

    async def marked():  # type: ignore[no-untyped-def]
        row = await call_row(rig.services, call.linkedid)
        return row if row is not None and row.harassment_kind == "abuse" else None

    row = await wait_for(marked, what="call row marked abuse")
    assert row.disposition == "ANSWERED"
    assert rig.tracker.get(call.linkedid) is None  # the call is over
    async with rig.services.db.session() as session:
        incident = await session.scalar(select(Incident))
    assert (incident.kind, incident.call_linkedid, incident.caller_number, incident.agent_user_id,
            incident.agent_extension) == ("abuse", call.linkedid, "01099998888", agent_id, "1001")
    assert incident.created_at.tzinfo is not None and abs(incident.created_at - datetime.now(UTC)).total_seconds() < 30
    assert (result.incident_id, result.incident_count, result.blacklisted) == (incident.id, 1, False)
    event = await events.get(timeout=2)
    assert event.payload["kind"] == "abuse" and event.payload["linkedid"] == call.linkedid
    assert await svc.incident_count("010-9999-8888") == 1


async def test_agent_leg_left_up_is_hung_up_by_us(rig) -> None:  # type: ignore[no-untyped-def]
    rig.sim.redirect_clears_agent = False
    svc = await start(rig, agent_release_timeout=0.02)
    call = await answered(rig, "01033334444", agent="1002")
    agent_channel = call.agent.name

    result = await svc.warn_and_hangup(call.linkedid, "sexual", rig.users["1002"].id, "1002")
    assert result.agent_hung_up
    assert [h["Channel"] for h in sent(rig.server, "Hangup")] == [agent_channel]

    async def marked():  # type: ignore[no-untyped-def]
        row = await call_row(rig.services, call.linkedid)
        return row if row is not None and row.harassment_kind == "sexual" else None

    await wait_for(marked, what="call row marked sexual")


async def test_errors(rig) -> None:  # type: ignore[no-untyped-def]
    svc = await start(rig)
    call = await answered(rig, "01055556666")
    with pytest.raises(CallControlError, match="unknown harassment kind 'rude'"):
        await svc.warn_and_hangup(call.linkedid, "rude", None, "1001")
    with pytest.raises(NoLiveCall, match="not in progress"):
        await svc.warn_and_hangup("1234567890.99", "abuse", None, "1001")
    with pytest.raises(CallControlError, match="connected to extension 1001"):
        await svc.warn_and_hangup(call.linkedid, "abuse", None, "1003")
    rig.sim.refuse["redirect"] = "Redirect failed"
    with pytest.raises(PBXRefused) as info:
        await svc.warn_and_hangup(call.linkedid, "abuse", None, "1001")
    assert info.value.asterisk_message == "Redirect failed" and "Redirect failed" in str(info.value)
    async with rig.services.db.session() as session:
        assert (await session.scalar(select(Incident))) is None  # nothing recorded for refused warnings


async def test_auto_blacklist_after_n_incidents(db, bus, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    async with make_rig(db, bus, tmp_path, auto_blacklist_after=2) as rig:
        rig.server.register_action("DBPut", lambda action: success("Updated database successfully"))
        blacklist = BlacklistService(db, rig.services.pbx, rig.services.config.pbx)
        rig.services.blacklist = blacklist
        svc = await start(rig)
        first = await answered(rig, "010-7777-6666")
        r1 = await svc.warn_and_hangup(first.linkedid, "abuse", rig.users["1001"].id, "1001")
        assert not r1.blacklisted and not await blacklist.is_blocked("01077776666")
        await wait_for(lambda: rig.tracker.get(first.linkedid) is None, what="first call over")

        second = await answered(rig, "01077776666", agent="1002")
        r2 = await svc.warn_and_hangup(second.linkedid, "sexual", rig.users["1002"].id, "1002")
        assert (r2.incident_count, r2.blacklisted) == (2, True)
        entry = await blacklist.get("01077776666")
        assert entry is not None and entry.name == "진상고객" and "민원차단 2회" in entry.reason
        assert "폭언" in entry.reason and "성희롱" in entry.reason
        assert entry.created_by == rig.users["1002"].id
        puts = sent(rig.server, "DBPut")
        assert [(p["Family"], p["Key"]) for p in puts] == [("contactd-blacklist", "01077776666")]
        async with db.session() as session:
            flags = list(await session.scalars(select(Incident.blacklisted).order_by(Incident.id)))
        assert flags == [False, True]


async def test_incident_counting_on_both_databases(any_db) -> None:  # type: ignore[no-untyped-def]
    services = Services(config=Config(), db=any_db, bus=None)  # type: ignore[arg-type]
    svc = HarassmentService(services)
    async with any_db.transaction() as session:
        for number, kind in (("01012345678", "abuse"), ("01012345678", "sexual"), ("0212345678", "abuse")):
            session.add(Incident(kind=kind, call_linkedid="x", caller_number=number, agent_user_id=None))
    assert await svc.incident_count("010-1234-5678") == 2
    assert await svc.incident_count("+82 10 1234 5678") == 2
    assert await svc.incident_count("02-1234-5678") == 1
    assert await svc.incident_count("") == 0
    assert sorted(await svc.kinds_for("01012345678")) == ["abuse", "sexual"]
    listed = await svc.incidents("010-1234-5678")
    assert len(listed) == 2 and all(i.created_at.tzinfo is not None for i in listed)
