"""Issue 3 end to end: the whole daemon (AMI client, FastAGI server, IVR, tracker, feature services) against the
simulated Asterisk, over real sockets on 127.0.0.1, with a real SQLite file per test.

A simulated caller dials in, presses keys or hangs up; each test checks what the caller heard (the AGI transcript),
what contactd asked Asterisk to do (AGI commands, AMI actions seen by the simulator) and the rows written.
The simulator runs at time_scale 0.1: a "3 s" conversation takes 0.3 s, and CDR/recording durations still count
simulated seconds.
"""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from contactd.app import Daemon
from contactd.config import load_config
from contactd.simulator.agi_caller import CallerBehaviour
from contactd.store.models import Call, Customer, Extension
from contactd.store.models.blacklist import BlockedAttempt
from contactd.store.models.callbacks import Callback
from contactd.store.models.incidents import Incident

TIME_SCALE = 0.1
DAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")


def _config(tmp_path: Path, *, open_now: bool, **env: str):  # type: ignore[no-untyped-def]
    hours = {f"CONTACTD_HOURS__{day}": ("00:00-24:00" if open_now else "") for day in DAYS}
    return load_config(None, env={
        "CONTACTD_DB__URL": f"sqlite+aiosqlite:///{tmp_path}/e2e.sqlite3",
        "CONTACTD_WEB__PORT": "0", "CONTACTD_AGI__PORT": "0",
        "CONTACTD_RECORDINGS__DIR": str(tmp_path / "recordings"),
        "CONTACTD_SIMULATOR__CALL_INTERVAL": "0",
        "CONTACTD_AMI__RECONNECT_MAX_DELAY": "0.3",
        **hours, **env,
    })


class Rig:
    """One running daemon and shortcuts to what the tests look at."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.services: Any = daemon.services
        self.sim: Any = self.services.simulator
        self.actions: list[dict[str, str]] = []

    async def rows(self, model: Any) -> list[Any]:
        async with self.services.db.session() as session:
            return list(await session.scalars(select(model).order_by(model.id)))

    async def cdr(self, linkedid: str, *, recording: bool = False, ready: Callable[[Call], bool] | None = None,
                  timeout: float = 10.0) -> Call:
        """The call's CDR row once written (with `recording`: once the recording is measured; with `ready`: once
        the row satisfies it). Fails after `timeout` seconds."""
        for _ in range(int(timeout / 0.05)):
            await self.services.tracker.flush(5)
            async with self.services.db.session() as session:
                row = await session.scalar(select(Call).where(Call.linkedid == linkedid))
            if row is not None and (not recording or row.recording_status not in ("none", "recording")) \
                    and (ready is None or ready(row)):
                return row
            await asyncio.sleep(0.05)
        raise AssertionError(f"no (complete) CDR for {linkedid} after {timeout} s: {row and vars(row)}")

    async def until(self, what: Callable[[], Any], timeout: float = 10.0) -> Any:
        for _ in range(int(timeout / 0.02)):
            if result := what():
                return result
            await asyncio.sleep(0.02)
        raise AssertionError(f"condition not met after {timeout} s")

    async def live(self, ext: str) -> Any:
        """The tracker's live call answered by `ext`."""
        def answered() -> Any:
            live = self.services.tracker.call_for_extension(ext)
            return live if live is not None and live.answered and live.agent_extension == ext else None
        return await self.until(answered)

    def actions_named(self, name: str) -> list[dict[str, str]]:
        return [a for a in self.actions if a.get("Action", "").lower() == name.lower()]


def _record_actions(rig: Rig) -> None:
    """Keep a copy of every AMI action the simulator receives (wrapping its registered handlers)."""
    server = rig.sim.ami
    handlers = getattr(server, "_handlers", None)
    if not isinstance(handlers, dict):
        return
    for key, handler in list(handlers.items()):
        def wrapped(action: Any, _handler: Any = handler) -> Any:
            rig.actions.append(dict(action.message.headers))
            return _handler(action)
        handlers[key] = wrapped


@pytest.fixture
async def make_rig(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    daemons: list[Daemon] = []

    async def start(*, open_now: bool = True, **env: str) -> Rig:
        daemon = Daemon(_config(tmp_path, open_now=open_now, **env))
        daemons.append(daemon)
        await daemon.start()
        rig = Rig(daemon)
        rig.sim.time_scale = TIME_SCALE
        _record_actions(rig)
        async with rig.services.db.transaction() as session:
            session.add_all([Extension(number=ext, label=f"Agent {ext}") for ext in ("1001", "1002", "1003")])
        return rig

    yield start
    for daemon in daemons:
        await daemon.stop()


def prompts(call: Any) -> list[str]:
    return [name.removeprefix("contactd/") for name in call.transcript.streamed]


def heard(call: Any) -> list[str]:
    """Prompts and read-backs in the order the caller heard them ("digits:<n>" for SAY DIGITS)."""
    out = []
    for command in call.transcript.commands:
        words = command.split()
        if command.startswith(("STREAM FILE", "GET DATA")):
            out.append(words[2].removeprefix("contactd/"))
        elif command.startswith("SAY DIGITS"):
            out.append(f"digits:{words[2]}")
    return out


async def finished(call: Any, timeout: float = 20.0) -> Any:
    await asyncio.wait_for(asyncio.shield(call.done), timeout)
    return call


# ------------------------------------------------------------------------------------------- open hours


async def test_menu_1_is_answered_by_1001_and_recorded(make_rig: Callable[..., Any]) -> None:
    rig = await make_rig()
    call = await finished(await rig.sim.inbound_call("01012345678", "홍길동", behaviour=CallerBehaviour(keys=["1"]),
                                                     answer_by="1001", talk_seconds=3.0))
    commands = call.transcript.commands
    assert commands[:2] == ["ANSWER", 'SET VARIABLE CHANNEL(language) "ko"']
    assert prompts(call) == ["greeting", "menu", "connecting"]
    assert 'SET VARIABLE CONTACTD_IVR_CHOICE "1"' in commands
    done = commands.index('SET VARIABLE CONTACTD_IVR_DONE "1"')
    assert done < commands.index("EXEC Queue support")
    row = await rig.cdr(call.linkedid, recording=True)
    assert (row.direction, row.from_number, row.from_name) == ("in", "01012345678", "홍길동")
    assert (row.ivr_choice, row.agent_extension, row.disposition, row.queue) == ("1", "1001", "ANSWERED", "support")
    assert row.recording_path and row.recording_status == "ready"
    path = Path(rig.services.config.recordings.dir) / row.recording_path
    with wave.open(str(path), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        seconds = wav.getnframes() / 8000
    assert 2.0 <= seconds <= 5.0  # the 3 s conversation
    assert len(await rig.rows(Call)) == 1


async def test_vip_customer_goes_to_the_vip_queue(make_rig: Callable[..., Any]) -> None:
    rig = await make_rig()
    async with rig.services.db.transaction() as session:
        session.add(Customer(name="김태희", mobile="01099998888", vip=True))
    call = await finished(await rig.sim.inbound_call("010-9999-8888", "김태희",
                                                     behaviour=CallerBehaviour(keys=["2"]), answer_by="1002"))
    assert prompts(call) == ["greeting", "menu", "vip-connecting"]
    assert "EXEC Queue support-vip" in call.transcript.commands
    row = await rig.cdr(call.linkedid)
    assert (row.queue, row.agent_extension, row.disposition, row.ivr_choice) == \
        ("support-vip", "1002", "ANSWERED", "2")


async def test_three_invalid_keys_still_reach_an_agent(make_rig: Callable[..., Any]) -> None:
    rig = await make_rig()
    call = await finished(await rig.sim.inbound_call("0212345678", "", behaviour=CallerBehaviour(keys=["7", "8", "9"]),
                                                     answer_by="1001"))
    assert prompts(call) == ["greeting", "menu", "invalid", "menu", "invalid", "menu", "invalid", "connecting"]
    assert "EXEC Queue support" in call.transcript.commands
    row = await rig.cdr(call.linkedid)
    assert (row.agent_extension, row.disposition, row.ivr_choice) == ("1001", "ANSWERED", None)


# ------------------------------------------------------------------------------------------- after hours


async def test_after_hours_typed_number_confirmed_saves_a_callback(make_rig: Callable[..., Any]) -> None:
    rig = await make_rig(open_now=False)
    before = datetime.now(UTC)
    call = await finished(await rig.sim.inbound_call("01012345678", "홍길동",
                                                     behaviour=CallerBehaviour(keys=["0298765432#", "1"])))
    assert heard(call) == ["after-hours", "callback-ask", "callback-readback", "digits:0298765432",
                           "callback-confirm", "callback-saved", "goodbye"]
    commands = call.transcript.commands
    assert commands.index('SET VARIABLE CONTACTD_IVR_DONE "1"') < commands.index("HANGUP")
    assert not any(c.startswith("EXEC Queue") for c in commands)
    [cb] = await rig.rows(Callback)
    assert (cb.number, cb.caller_id, cb.done) == ("0298765432", "01012345678", False)
    assert before <= cb.captured_at <= datetime.now(UTC)
    row = await rig.cdr(call.linkedid)
    assert (row.direction, row.from_number, row.agent_extension) == ("in", "01012345678", None)


async def test_after_hours_hash_alone_means_the_calling_number(make_rig: Callable[..., Any]) -> None:
    rig = await make_rig(open_now=False)
    call = await finished(await rig.sim.inbound_call("010-5555-6666", "", behaviour=CallerBehaviour(keys=["#", "1"])))
    assert "digits:01055556666" in heard(call)
    [cb] = await rig.rows(Callback)
    assert (cb.number, cb.caller_id) == ("01055556666", "01055556666")
    await rig.cdr(call.linkedid)


async def test_after_hours_hang_up_during_read_back_saves_nothing(make_rig: Callable[..., Any]) -> None:
    rig = await make_rig(open_now=False)
    call = await finished(await rig.sim.inbound_call(
        "01012345678", "", behaviour=CallerBehaviour(keys=["0298765432#", "1"], hangup_during="SAY DIGITS")))
    assert call.transcript.hung_up and call.transcript.closed_by == "server"
    assert await rig.rows(Callback) == []
    row = await rig.cdr(call.linkedid)
    assert row.from_number == "01012345678"
    assert len(await rig.rows(Call)) == 1


# ------------------------------------------------------------------------------------------- blacklist


async def test_blacklisted_caller_is_blocked_logged_and_mirrored_to_astdb(make_rig: Callable[..., Any]) -> None:
    rig = await make_rig()
    await rig.services.blacklist.add("010-4444-3333", "악성", "폭언")
    assert rig.sim.astdb == {"/contactd-blacklist/01044443333": "1"}
    call = await finished(await rig.sim.inbound_call("01044443333", "", behaviour=CallerBehaviour(keys=["1"])))
    assert prompts(call) == ["blocked"]
    commands = call.transcript.commands
    assert commands[-1] == "HANGUP"
    assert commands.index('SET VARIABLE CONTACTD_IVR_DONE "1"') < commands.index("HANGUP")
    assert not any(c.startswith(("GET DATA", "EXEC")) for c in commands)
    [attempt] = await rig.rows(BlockedAttempt)
    assert attempt.number == "01044443333"
    row = await rig.cdr(call.linkedid)
    assert (row.from_number, row.agent_extension) == ("01044443333", None)


# ------------------------------------------------------------------------------------------- agent actions


async def test_harassment_warning_redirects_the_caller_and_ends_the_call(make_rig: Callable[..., Any]) -> None:
    rig = await make_rig()
    call = await rig.sim.inbound_call("01012345678", "진상", behaviour=CallerBehaviour(keys=["3"]), answer_by="1001",
                                      talk_seconds=None)
    live = await rig.live("1001")
    result = await rig.services.harassment.warn_and_hangup(live.linkedid, "abuse", None, "1001")
    await finished(call)
    [redirect] = rig.actions_named("Redirect")
    assert (redirect["Channel"], redirect["Context"], redirect["Exten"], redirect["Priority"]) == \
        (call.caller_channel, "contactd-warning", "abuse", "1")
    assert call.outcome == "warned"
    assert not rig.sim.live_channels()
    [incident] = await rig.rows(Incident)
    assert (incident.id, incident.kind, incident.call_linkedid, incident.caller_number, incident.agent_extension) == \
        (result.incident_id, "abuse", call.linkedid, "01012345678", "1001")
    # The incident is saved before the CDR exists; the CDR gets the kind once it is written (bounded wait).
    row = await rig.cdr(call.linkedid, ready=lambda r: r.harassment_kind is not None)
    assert (row.harassment_kind, row.agent_extension) == ("abuse", "1001")
    assert len(await rig.rows(Call)) == 1


async def test_blind_transfer_keeps_one_cdr_and_one_whole_recording(make_rig: Callable[..., Any]) -> None:
    rig = await make_rig()
    call = await rig.sim.inbound_call("01012345678", "", behaviour=CallerBehaviour(keys=["1"]), answer_by="1001",
                                      talk_seconds=6.0)
    await rig.live("1001")
    await asyncio.sleep(2.0 * TIME_SCALE)  # 2 simulated seconds with 1001
    await rig.services.call_control.blind_transfer("1001", "1002")
    await finished(call)
    row = await rig.cdr(call.linkedid, recording=True)
    assert (row.transferred, row.agent_extension, row.disposition) == (True, "1002", "ANSWERED")
    assert len(await rig.rows(Call)) == 1
    assert row.recording_status == "ready"
    # One file for the whole call: it covers the 6 s of talk, not only the 2 s before the transfer.
    assert len(list(Path(rig.services.config.recordings.dir).rglob("*.wav"))) == 1
    assert 5.0 <= (row.recording_seconds or 0) <= 8.0


async def test_attended_transfer_completed_keeps_one_cdr_and_one_recording(make_rig: Callable[..., Any]) -> None:
    rig = await make_rig()
    call = await rig.sim.inbound_call("01012345678", "", behaviour=CallerBehaviour(keys=["1"]), answer_by="1001",
                                      talk_seconds=8.0)
    await rig.live("1001")
    await rig.services.call_control.attended_transfer("1001", "1002")
    await rig.until(lambda: call.consult is not None and call.consult.phone.state == 6)  # 1002 answered
    await rig.services.call_control.complete_transfer("1001")
    await rig.until(lambda: call.agent_extension == "1002")
    await finished(call)
    row = await rig.cdr(call.linkedid, recording=True)
    assert (row.transferred, row.agent_extension, row.disposition) == (True, "1002", "ANSWERED")
    assert len(await rig.rows(Call)) == 1
    assert row.recording_status == "ready"
    assert len(list(Path(rig.services.config.recordings.dir).rglob("*.wav"))) == 1
    assert 7.0 <= (row.recording_seconds or 0) <= 10.0


async def test_cancelled_attended_transfer_leaves_the_caller_with_1001(make_rig: Callable[..., Any]) -> None:
    rig = await make_rig()
    call = await rig.sim.inbound_call("01012345678", "", behaviour=CallerBehaviour(keys=["1"]), answer_by="1001",
                                      talk_seconds=6.0)
    await rig.live("1001")
    await rig.services.call_control.attended_transfer("1001", "1002")
    await rig.until(lambda: call.consult is not None)
    await rig.services.call_control.cancel_transfer("1001")
    await rig.until(lambda: call.consult is None)
    assert call.agent_extension == "1001"
    assert (await rig.live("1001")).linkedid == call.linkedid  # the panel still shows 1001 on the call
    await finished(call)
    row = await rig.cdr(call.linkedid)
    assert (row.transferred, row.agent_extension, row.disposition) == (False, "1001", "ANSWERED")
    assert len(await rig.rows(Call)) == 1


async def test_click_to_call_writes_an_outbound_cdr(make_rig: Callable[..., Any]) -> None:
    rig = await make_rig()
    rig.sim.default_talk_seconds = 2.0
    result = await rig.services.call_control.click_to_call("1001", "010-7777-8888")
    assert result.number == "01077778888"
    [originate] = rig.actions_named("Originate")
    assert (originate["Channel"], originate["Context"], originate["Exten"]) == \
        ("PJSIP/1001", "contactd-click2call", "01077778888")
    call = await rig.until(lambda: next((c for c in rig.sim.calls if c.direction == "out"), None))
    await finished(call)
    row = await rig.cdr(call.linkedid)
    assert (row.direction, row.to_number, row.agent_extension, row.disposition) == \
        ("out", "01077778888", "1001", "ANSWERED")
    assert len(await rig.rows(Call)) == 1


# ------------------------------------------------------------------------------------------- failures


async def test_ami_link_restart_mid_call_resyncs_and_repushes_the_blacklist(make_rig: Callable[..., Any]) -> None:
    rig = await make_rig()
    await rig.services.blacklist.add("01044443333")
    call = await rig.sim.inbound_call("01012345678", "홍길동", behaviour=CallerBehaviour(keys=["1"]), answer_by="1001",
                                      talk_seconds=None)
    await rig.live("1001")
    server, ami = rig.sim.ami, rig.services.ami
    resyncs = len(rig.actions_named("CoreShowChannels"))
    await server.kill()
    await rig.until(lambda: not ami.connected)
    rig.sim.astdb.clear()  # as if Asterisk had restarted with an empty AstDB
    await server.start()
    await rig.until(lambda: ami.connected and rig.sim.astdb)
    assert rig.sim.astdb == {"/contactd-blacklist/01044443333": "1"}
    await rig.until(lambda: len(rig.actions_named("CoreShowChannels")) > resyncs)  # the tracker re-synced
    live = await rig.live("1001")
    assert live.linkedid == call.linkedid and live.caller_channel == call.caller_channel
    rig.sim.hangup(call.caller_channel)
    await finished(call)
    row = await rig.cdr(call.linkedid)
    assert (row.agent_extension, row.disposition, row.ivr_choice) == ("1001", "ANSWERED", "1")
    assert len(await rig.rows(Call)) == 1


async def test_contactd_dying_mid_ivr_still_queues_the_caller(make_rig: Callable[..., Any]) -> None:
    rig = await make_rig()
    # Slow replies give the test time to stop the FastAGI server while the caller is in the menu.
    call = await rig.sim.inbound_call("01012345678", "", behaviour=CallerBehaviour(keys=["1"], reply_delay=0.2),
                                      answer_by="1001", talk_seconds=2.0)
    await rig.until(lambda: rig.services.agi.active_sessions > 0)
    await asyncio.sleep(0.5)  # a couple of commands into the IVR
    await rig.services.agi.stop(timeout=1.0)
    await finished(call)
    assert call.transcript.closed_by == "server"
    assert not any(c.startswith("EXEC Queue") for c in call.transcript.commands)
    assert call.outcome == "answered"  # the dialplan's fail-safe queued the caller
    row = await rig.cdr(call.linkedid)
    assert (row.agent_extension, row.disposition) == ("1001", "ANSWERED")
