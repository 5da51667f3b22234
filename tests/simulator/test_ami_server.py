"""The simulated AMI server, checked byte for byte against the Asterisk 22 recordings over a raw socket."""

from __future__ import annotations

import asyncio
import hashlib
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from contactd.simulator.ami_server import AMIAction, SimulatedAMIServer, error, list_reply, success
from contactd.telephony.ami import AMIMessage, AMIParser

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "telephony"))
from trace_reader import server_bytes, server_messages  # noqa: E402

SECRET = "labsecret"


class RawAMI:
    """A bare socket client: what we send and exactly what comes back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.parser = AMIParser(expect_banner=False)
        self.queue: list[AMIMessage] = []
        self.raw = b""

    async def banner(self) -> bytes:
        return await asyncio.wait_for(self.reader.readline(), 2)

    def send(self, text: str) -> None:
        self.writer.write(text.replace("\n", "\r\n").encode() + b"\r\n")

    async def next(self, timeout: float = 2.0) -> AMIMessage:
        async with asyncio.timeout(timeout):
            while not self.queue:
                data = await self.reader.read(65536)
                if not data:
                    raise EOFError
                self.raw += data
                self.queue.extend(self.parser.feed(data))
        return self.queue.pop(0)

    async def eof(self, timeout: float = 2.0) -> bool:
        async with asyncio.timeout(timeout):
            return await self.reader.read(65536) == b""

    async def login(self) -> None:
        await self.banner()
        self.send(f"Action: Login\nActionID: l1\nUsername: contactd\nSecret: {SECRET}\n")
        assert (await self.next()).response == "Success"
        assert (await self.next()).event == "FullyBooted"
        assert (await self.next()).event == "SuccessfulAuth"


def names(msg: AMIMessage) -> list[str]:
    return [k for k, _ in msg.headers]


def traced(file: str, pred) -> AMIMessage:  # type: ignore[no-untyped-def]
    return next(m for m in server_messages(file) if pred(m))


@pytest.fixture
async def server() -> AsyncIterator[SimulatedAMIServer]:
    srv = SimulatedAMIServer(secret=SECRET)
    srv.auth_fail_delay = 0.2
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
async def connect(server: SimulatedAMIServer) -> AsyncIterator:
    opened: list[RawAMI] = []

    async def open_one() -> RawAMI:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        raw = RawAMI(reader, writer)
        opened.append(raw)
        return raw

    yield open_one
    for raw in opened:
        raw.writer.close()


async def test_banner_login_and_events_match_the_trace(connect) -> None:
    ami = await connect()
    assert await ami.banner() == server_bytes("ami-login-and-ping.txt", "conn1")[:30]
    ami.send(f"Action: Login\nActionID: conn1-001\nUsername: contactd\nSecret: {SECRET}\n")
    resp = await ami.next()
    fully = await ami.next()
    auth = await ami.next()
    assert ami.raw.startswith(
        b"Response: Success\r\nActionID: conn1-001\r\nMessage: Authentication accepted\r\n\r\n"
    )
    recorded = server_messages("ami-login-and-ping.txt", "conn1")
    assert resp == recorded[0]
    assert names(fully) == names(recorded[1]) and fully["Privilege"] == "system,all"
    assert fully["Status"] == "Fully Booted"
    assert names(auth) == names(recorded[2]) and auth["AccountID"] == "contactd"


async def test_ping_with_and_without_action_id(connect) -> None:
    ami = await connect()
    await ami.login()
    ami.send("Action: Ping\nActionID: conn1-002\n")
    with_id = await ami.next()
    ami.send("Action: Ping\n")
    without = await ami.next()
    recorded = [m for m in server_messages("ami-login-and-ping.txt", "conn1") if m.get("Ping")]
    assert names(with_id) == names(recorded[0]) == ["Response", "ActionID", "Ping", "Timestamp"]
    assert names(without) == names(recorded[1]) == ["Response", "Ping", "Timestamp"]
    assert abs(float(without["Timestamp"]) - time.time()) < 5


async def test_wrong_secret_answered_late_then_closed_and_other_sessions_warned(server, connect) -> None:
    watcher = await connect()
    await watcher.login()
    ami = await connect()
    await ami.banner()
    start = time.monotonic()
    ami.send("Action: Login\nActionID: conn2-001\nUsername: contactd\nSecret: wrong-secret\n")
    resp = await ami.next()
    assert time.monotonic() - start >= 0.18
    assert resp == traced("ami-login-and-ping.txt", lambda m: m.action_id == "conn2-001")
    assert await ami.eof()
    warn = await watcher.next()
    assert names(warn) == names(traced("ami-login-and-ping.txt", lambda m: m.event == "InvalidPassword"))


async def test_md5_challenge_login(connect) -> None:
    ami = await connect()
    await ami.banner()
    ami.send("Action: Challenge\nActionID: conn3-001\nAuthType: MD5\n")
    challenge = await ami.next()
    assert names(challenge) == ["Response", "ActionID", "Challenge"]
    key = hashlib.md5((challenge["Challenge"] + SECRET).encode()).hexdigest()
    ami.send(f"Action: Login\nActionID: conn3-002\nAuthType: MD5\nUsername: contactd\nKey: {key}\n")
    assert (await ami.next())["Message"] == "Authentication accepted"
    ami.send("Action: Logoff\nActionID: conn3-003\n")
    await ami.next()
    goodbye = await ami.next()
    goodbye = goodbye if goodbye.response else await ami.next()
    assert goodbye == traced("ami-login-and-ping.txt", lambda m: m.action_id == "conn3-003")
    assert await ami.eof()


async def test_action_before_login_is_denied_and_socket_stays_open(connect) -> None:
    ami = await connect()
    await ami.banner()
    ami.send("Action: CoreShowChannels\nActionID: conn4-001\n")
    assert await ami.next() == traced("ami-login-and-ping.txt", lambda m: m.action_id == "conn4-001")
    ami.send("Action: Challenge\nAuthType: MD5\n")
    assert (await ami.next()).response == "Success"


async def test_unknown_action_and_missing_action_as_traced(connect) -> None:
    ami = await connect()
    await ami.login()
    ami.send("Action: NoSuchAction\nActionID: ami-040\nFoo: bar\n")
    resp, bad = await ami.next(), await ami.next()
    assert resp == traced("ami-actions-misc.txt", lambda m: m.action_id == "ami-040")
    recorded_bad = traced("ami-actions-misc.txt", lambda m: m.event == "RequestBadFormat")
    assert names(bad) == names(recorded_bad) and bad["RequestType"] == "Action: NoSuchAction"
    ami.send("ActionID: noaction-1\nFoo: bar\n")
    resp, bad = await ami.next(), await ami.next()
    assert resp == traced("ami-actions-misc.txt", lambda m: m.action_id == "noaction-1")
    assert bad["RequestType"] == "Action: NONE" and bad["AccountID"] == "contactd"


async def test_core_settings_and_core_show_version(connect) -> None:
    ami = await connect()
    await ami.login()
    ami.send("Action: CoreSettings\nActionID: cs-1\n")
    settings = await ami.next()
    assert names(settings) == names(traced("ami-command-multiline.txt", lambda m: m.action_id == "cs-1"))
    assert settings["AsteriskVersion"] == "22.10.1"
    ami.send("Action: Command\nActionID: ami-007\nCommand: core show version\n")
    version = await ami.next()
    recorded = traced("ami-actions-misc.txt", lambda m: m.action_id == "ami-007")
    assert names(version) == names(recorded)
    assert version["Output"].split(" on 20")[0] == recorded["Output"].split(" on 20")[0]
    ami.send("Action: Command\nActionID: ami-009\nCommand: core show nonsense\n")
    assert await ami.next() == traced("ami-actions-misc.txt", lambda m: m.action_id == "ami-009")


async def test_registered_list_action_serializes_like_dbget(server: SimulatedAMIServer, connect) -> None:
    def dbget(action: AMIAction):  # type: ignore[no-untyped-def]
        if action.message["Key"] != "agent1001":
            return error("Database entry not found")
        item = [("Event", "DBGetResponse"), ("Family", "contactd"), ("Key", "agent1001"), ("Val", "ready")]
        return list_reply("DBGetComplete", [item + [("ActionID", "")]], message="Result will follow")

    server.register_action("dbget", dbget)
    ami = await connect()
    await ami.login()
    ami.send("Action: DBGet\nActionID: ami-018\nFamily: contactd\nKey: agent1001\n")
    got = [await ami.next() for _ in range(3)]
    recorded = [m for m in server_messages("ami-actions-misc.txt") if m.action_id == "ami-018"]
    assert got == recorded
    ami.send("Action: DBGet\nActionID: ami-019\nFamily: contactd\nKey: nosuchkey\n")
    assert await ami.next() == traced("ami-actions-misc.txt", lambda m: m.action_id == "ami-019")
    ami.send("Action: DBGet\nFamily: contactd\nKey: agent1001\n")  # no ActionID: none echoed anywhere
    got = [await ami.next() for _ in range(3)]
    assert all("ActionID" not in m for m in got)
    assert got[2].headers == [("Event", "DBGetComplete"), ("EventList", "Complete"), ("ListItems", "1")]


async def test_emit_adds_privilege_and_reaches_only_logged_in_sessions(
    server: SimulatedAMIServer, connect
) -> None:
    ami = await connect()
    await ami.login()
    anonymous = await connect()
    await anonymous.banner()
    server.emit({"Event": "Newexten", "Channel": "Local/100@from-pstn-00000000;2"})
    server.emit([("Event", "Hangup"), ("Cause", "16")])
    assert (await ami.next()).headers[:2] == [("Event", "Newexten"), ("Privilege", "dialplan,all")]
    assert (await ami.next())["Privilege"] == "call,all"
    with pytest.raises(TimeoutError):
        await anonymous.next(timeout=0.2)


async def test_shutdown_sends_the_traced_event_then_closes(server: SimulatedAMIServer, connect) -> None:
    ami = await connect()
    await ami.login()
    await server.shutdown(restart=True)
    assert await ami.next() == traced("ami-shutdown-restart.txt", lambda m: m.event == "Shutdown")
    assert await ami.eof()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", server.port)
    await server.start()  # same port again
    again = await connect()
    await again.login()


async def test_kill_drops_without_event_and_half_open_flags(server: SimulatedAMIServer, connect) -> None:
    ami = await connect()
    await ami.login()
    server.pause_pings = True
    ami.send("Action: Ping\nActionID: p1\n")
    with pytest.raises(TimeoutError):
        await ami.next(timeout=0.2)
    server.pause_pings = False
    server.drop_responses = True
    ami.send("Action: CoreSettings\nActionID: c1\n")
    server.emit([("Event", "StillFlowing")])
    assert (await ami.next()).event == "StillFlowing"
    await server.kill()
    with pytest.raises((EOFError, ConnectionError)):
        await ami.next()
    assert [m.action_id for m in server.received if m.get("Action") in ("Ping", "CoreSettings")] == [
        "p1",
        "c1",
    ]


async def test_a_failing_handler_answers_error_and_keeps_the_session(
    server: SimulatedAMIServer, connect
) -> None:
    async def broken(action: AMIAction) -> None:
        raise RuntimeError("bug")

    server.register_action("Broken", broken)
    server.register_action("Fine", lambda a: success("ok", Extra="1"))
    ami = await connect()
    await ami.login()
    ami.send("Action: Broken\nActionID: b1\n")
    assert (await ami.next()).response == "Error"
    ami.send("Action: Fine\nActionID: f1\n")
    assert (await ami.next()).headers == [
        ("Response", "Success"),
        ("ActionID", "f1"),
        ("Message", "ok"),
        ("Extra", "1"),
    ]
