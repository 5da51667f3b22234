"""The whole daemon as `contactd run` starts it with no PBX configured: simulator, AMI, FastAGI, tracker, panel."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from sqlalchemy import select

from contactd.app import Daemon
from contactd.config import load_config
from contactd.simulator.agi_caller import CallerBehaviour
from contactd.store.models import Call, Customer


def daemon_config(tmp_path: Path, **env: str):  # type: ignore[no-untyped-def]
    return load_config(None, env={
        "CONTACTD_DB__URL": f"sqlite+aiosqlite:///{tmp_path}/app.sqlite3",
        "CONTACTD_WEB__PORT": "0", "CONTACTD_AGI__PORT": "0",
        "CONTACTD_RECORDINGS__DIR": str(tmp_path / "recordings"),
        "CONTACTD_SIMULATOR__CALL_INTERVAL": "0",
        "CONTACTD_HOURS__MON": "00:00-23:59", "CONTACTD_HOURS__TUE": "00:00-23:59",
        "CONTACTD_HOURS__WED": "00:00-23:59", "CONTACTD_HOURS__THU": "00:00-23:59",
        "CONTACTD_HOURS__FRI": "00:00-23:59", "CONTACTD_HOURS__SAT": "00:00-23:59",
        "CONTACTD_HOURS__SUN": "00:00-23:59",
        **env,
    })


async def test_simulated_call_flows_through_every_layer(tmp_path: Path) -> None:
    daemon = Daemon(daemon_config(tmp_path))
    await daemon.start()
    try:
        services = daemon.services
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{daemon.web_port}/healthz") as response:
                health = await response.json()
        assert health["ami"]["connected"] is True and health["ami"]["asterisk_version"]
        assert health["db"]["ok"] and health["bus"]["ok"] and health["status"] == "ok"
        assert "secret" not in str(health).lower()

        async with services.db.transaction() as session:
            session.add(Customer(name="홍길동", mobile="01012345678"))
        events = services.bus.subscribe("call.*")
        call = await services.simulator.inbound_call("01012345678", "홍길동", behaviour=CallerBehaviour(keys=["2"]),
                                                     answer_by="1001", talk_seconds=1.0)
        await asyncio.wait_for(call.done, 20)
        seen = []
        while True:
            event = await events.get(timeout=10)
            seen.append(event.topic)
            if event.topic == "call.ended":
                break
        assert seen.index("call.ringing") < seen.index("call.answered") < seen.index("call.ended")
        await services.tracker.flush(5)
        async with services.db.session() as session:
            rows = list(await session.scalars(select(Call)))
        assert len(rows) == 1
        row = rows[0]
        assert (row.from_number, row.from_name, row.agent_extension, row.direction) == \
            ("01012345678", "홍길동", "1001", "in")
        assert row.disposition == "ANSWERED" and row.ivr_choice == "2"
        assert row.customer_id is not None  # linked by number, so history and the customer's tabs find it
        for _ in range(50):  # the recording row is completed once MixMonitor's file has closed
            async with services.db.session() as session:
                row = await session.scalar(select(Call))
            if row.recording_status not in ("none", "recording"):
                break
            await asyncio.sleep(0.1)
        assert row.recording_status == "ready" and row.recording_size > 44
        assert (Path(services.config.recordings.dir) / row.recording_path).exists()
    finally:
        await daemon.stop()
