"""AMI: the parser against the recorded Asterisk 22 bytes, and AMIClient against the simulated AMI server."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable

import pytest
from trace_reader import TRACES_DIR, server_bytes, server_messages, trace_connections

from contactd.simulator.ami_server import AMIAction, SimulatedAMIServer, success
from contactd.telephony.ami import (
    AMIActionError,
    AMIClient,
    AMIConnectionError,
    AMIMessage,
    AMIParser,
    AMIProtocolError,
    AMITimeoutError,
    _Link,
    encode_action,
)

SECRET = "t0p-s3cret-value"
AMI_TRACES = sorted(p.name for p in TRACES_DIR.glob("ami-*.txt"))


# ------------------------------------------------------------------------------------------------ helpers


def _reference_blocks(data: bytes) -> list[list[tuple[str, str]]]:
    """A deliberately naive line-by-line reading of AMI bytes, to check the fast parser against."""
    blocks: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    for raw in data.split(b"\r\n"):
        line = raw.decode("utf-8")
        if line.startswith("Asterisk Call Manager/"):
            continue
        if line == "":
            if current:
                blocks.append(current)
            current = []
            continue
        key, _, value = line.partition(": ")
        current.append((key, value))
    return blocks


def _trace_action_messages(name: str, action_id: str) -> list[AMIMessage]:
    return [m for m in server_messages(name) if m.get("ActionID") == action_id]


def _replay(
    server: SimulatedAMIServer, action: str, recorded: list[AMIMessage], *, noise: AMIMessage | None = None
):
    """Answer `action` with the recorded messages (their ActionID swapped for the request's), byte for byte."""

    def handler(req: AMIAction) -> None:
        for i, msg in enumerate(recorded):
            headers = [(k, req.action_id if k == "ActionID" else v) for k, v in msg.headers]
            req.connection.send(headers)
            if noise is not None and i == 1:
                req.connection.send(noise.headers)  # an unrelated event in the middle of the list
        return None

    server.register_action(action, handler)


@pytest.fixture
async def server() -> AsyncIterator[SimulatedAMIServer]:
    srv = SimulatedAMIServer(secret=SECRET)
    srv.auth_fail_delay = 0.2
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
async def make_client(server: SimulatedAMIServer) -> AsyncIterator[Callable[..., AMIClient]]:
    clients: list[AMIClient] = []

    def make(**kw: object) -> AMIClient:
        kw.setdefault("action_timeout", 2.0)
        kw.setdefault("ping_interval", 30.0)
        secret = kw.pop("secret", SECRET)
        client = AMIClient("127.0.0.1", server.port, "contactd", secret, **kw)  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def _connected(make_client: Callable[..., AMIClient], **kw: object) -> AMIClient:
    client = make_client(**kw)
    await client.start()
    await client.wait_connected(3)
    return client


async def _until(pred: Callable[[], bool], timeout: float = 3.0) -> float:
    """Poll `pred` (bounded); returns the seconds it took."""
    start = time.monotonic()
    async with asyncio.timeout(timeout):
        while not pred():  # noqa: ASYNC110 - polling an arbitrary condition, bounded by the timeout
            await asyncio.sleep(0.01)
    return time.monotonic() - start


# ------------------------------------------------------------------------------------------------- parser


@pytest.mark.parametrize("name", AMI_TRACES)
def test_every_recorded_message_parses_whole_and_in_small_chunks(name: str) -> None:
    for conn in trace_connections(name):
        data = server_bytes(name, conn)
        if b"Asterisk Call Manager/" in data[30:]:
            continue  # several sessions on one connection name: covered by server_messages below
        whole = AMIParser().feed(data)
        assert [m.headers for m in whole] == _reference_blocks(data)
        parser = AMIParser()
        chunked: list[AMIMessage] = []
        for i in range(0, len(data), 7):
            chunked.extend(parser.feed(data[i : i + 7]))
        assert chunked == whole
        assert parser.buffered == 0
        assert parser.ami_version == "11.0.0"
        assert all(m.event or m.response for m in whole)
    assert server_messages(name)


def test_repeated_output_keys_are_kept_in_order() -> None:
    msgs = server_messages("ami-command-multiline.txt")
    dialplan = next(m for m in msgs if m.action_id == "cmd-2")
    out = dialplan.getall("Output")
    assert len(out) == 7
    assert out[0] == "[ Context 'caller-sim' created by 'pbx_config' ]"
    assert out[5] == ""  # an empty output line is a value, not the end of the message
    assert out[6] == "-= 1 extension (4 priorities) in 1 context. =-"
    assert dialplan.get("output") == out[0]  # keys are case-insensitive
    assert dialplan.as_dict()["Output"] == out[0]


def test_hangul_split_across_reads_arrives_whole() -> None:
    data = server_bytes("ami-originate-inbound-call.txt")
    expected = AMIParser().feed(data)
    names = {m.get("CallerIDName") for m in expected}
    assert "홍길동" in names
    # Every offset that falls inside a multi-byte UTF-8 character (continuation bytes are 0b10xxxxxx).
    offsets = [i for i, b in enumerate(data) if b & 0xC0 == 0x80]
    assert len(offsets) > 50
    for cut in offsets:
        parser = AMIParser()
        got = parser.feed(data[:cut]) + parser.feed(data[cut:])
        assert got == expected, f"split at byte {cut}"


def test_parser_banner_bare_lf_odd_lines_and_undecodable_bytes() -> None:
    parser = AMIParser()
    assert parser.feed(b"Asterisk Call Manager/11.0.0\r") == []
    msgs = parser.feed(b"\nEvent: A\nNoColonHere\nEmpty:\nName: \xff\xfe ok\n\nResponse: Success\r\n\r\n")
    assert [m.headers for m in msgs] == [
        [("Event", "A"), ("NoColonHere", ""), ("Empty", ""), ("Name", "\ufffd\ufffd ok")],
        [("Response", "Success")],
    ]
    assert parser.banner == "Asterisk Call Manager/11.0.0" and parser.ami_version == "11.0.0"
    # A server that sends no banner: the first line is a header, not swallowed.
    assert AMIParser().feed(b"Event: B\r\n\r\n")[0].event == "B"


def test_parser_refuses_a_message_over_the_limit_and_stays_bounded() -> None:
    parser = AMIParser(max_message_size=1000, expect_banner=False)
    assert parser.feed(b"Event: A\r\n\r\n")[0].event == "A"
    with pytest.raises(AMIProtocolError) as info:
        parser.feed(b"Event: Big\r\nData: " + b"x" * 2000)
    assert parser.buffered == 0
    with pytest.raises(AMIProtocolError) as info:
        parser.feed(b"Event: C\r\n\r\nEvent: Big\r\nData: " + b"x" * 2000 + b"\r\n\r\n")
    assert [m.event for m in info.value.messages] == ["C"]  # whole messages before the fault are kept
    assert parser.feed(b"Event: D\r\n\r\n")[0].event == "D"


def test_encode_action_repeats_keys_and_refuses_header_injection() -> None:
    data = encode_action(
        "Originate", {"Channel": "Local/100@x", "Variable": ["A=1", "B=2"], "Async": True}, "id-1"
    )
    assert data == (
        b"Action: Originate\r\nActionID: id-1\r\nChannel: Local/100@x\r\n"
        b"Variable: A=1\r\nVariable: B=2\r\nAsync: true\r\n\r\n"
    )
    assert encode_action("Ping", None, "") == b"Action: Ping\r\n\r\n"
    with pytest.raises(ValueError):
        encode_action("DBPut", {"Val": "x\r\n\r\nAction: Originate"}, "id-2")


def test_message_accessors() -> None:
    msg = AMIMessage([("Event", "VarSet"), ("Variable", "A"), ("variable", "B")])
    assert msg.event == "VarSet" and msg.response is None and msg.action_id is None
    assert msg.getall("VARIABLE") == ["A", "B"]
    assert "variable" in msg and "Nope" not in msg
    with pytest.raises(KeyError):
        msg["Nope"]
    assert AMIParser(expect_banner=False).feed(msg.to_bytes()) == [msg]
    assert "secret" not in repr(AMIMessage([("Secret", "secret")]))


def test_lookups_on_unsplit_bytes_agree_with_the_split_headers() -> None:
    # Every shape that makes a text search disagree with splitting, read through the parser (unsplit bytes).
    data = (
        "Event: Newchannel\r\nChannelState: 4\r\nUNIQUEID: first\r\nUniqueid: second\r\nChannel: PJSIP/1001\r\n"
        "Empty:\r\nEmpty: late\r\nBare\r\nBare: late\r\nCallerIDName: 홍길동\r\nBad: \xff ok\r\n"
        "Ke: x\r\nLast: no-crlf"
    ).encode("utf-8", "surrogateescape")
    data = data.replace("\xff".encode(), b"\xff")

    def fresh() -> AMIMessage:
        return AMIParser(expect_banner=False).feed(data + b"\r\n\r\n")[0]

    split = fresh().headers
    cases = {
        "Uniqueid": "first", "uniqueid": "first",  # first line wins whatever its spelling
        "Channel": "PJSIP/1001",  # an earlier line that only starts with the key's letters
        "Empty": "", "Bare": "",  # "Key:" and a bare "Key" split into empty values and come first
        "CallerIDName": "홍길동", "Bad": "\ufffd ok", "Last": "no-crlf", "Event": "Newchannel",
        "Ke": "x", "K": None, "Missing": None, "Uniqueid: first": None, "홍": None,
    }
    for key, expected in cases.items():
        assert fresh().get(key) == expected, key
        assert dict((k.lower(), v) for k, v in reversed(split)).get(key.lower()) == expected, key
    warm = fresh()
    assert [warm.get(k) for k in cases] == list(cases.values())  # the cached lower-cased text changes nothing
    # KELVIN SIGN lower-cases to an ASCII "k": such a message is compared the Unicode way.
    kelvin = AMIParser(expect_banner=False).feed("\u212aey: kelvin\r\nKey: ascii\r\n\r\n".encode())[0]
    assert kelvin.get("key") == "kelvin" and kelvin.get("\u212aEY") == "kelvin"
    msg = fresh()
    msg.headers = [("Uniqueid", "replaced")]
    assert msg.get("uniqueid") == "replaced" and msg.get("Channel") is None and msg.event is None


# ------------------------------------------------------------------------------------------ client: login


async def test_plain_login_reads_versions(server: SimulatedAMIServer, make_client, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    client = await _connected(make_client)
    assert client.connected and client.ami_version == "11.0.0" and client.asterisk_version == "22.10.1"
    login = await server.wait_for_action("Login")
    assert login["Username"] == "contactd" and login["Secret"] == SECRET
    assert SECRET not in caplog.text and SECRET not in repr(client)


async def test_md5_login_never_sends_the_secret(server: SimulatedAMIServer, make_client) -> None:
    client = await _connected(make_client, auth="md5")
    assert client.connected
    login = await server.wait_for_action("Login")
    assert login["AuthType"] == "MD5" and len(login["Key"]) == 32 and "Secret" not in login
    assert all(SECRET not in m.to_bytes().decode() for m in server.received)


async def test_asterisk_version_falls_back_to_core_show_version(
    server: SimulatedAMIServer, make_client
) -> None:
    server.register_action("CoreSettings", lambda a: success(None, AMIversion="11.0.0"))
    client = await _connected(make_client)
    assert client.asterisk_version == "22.10.1"


async def test_wrong_secret_logs_auth_error_and_backs_off(
    server: SimulatedAMIServer, make_client, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(secret="not-the-secret-at-all")
    await client.start()
    with pytest.raises(AMITimeoutError):
        await client.wait_connected(1.6)
    attempts = [m for m in server.received if m.get("Action") == "Login"]
    # 0.2 s for the refusal, then >= 1 s before retrying: hammering would show many more attempts.
    assert 1 <= len(attempts) <= 2
    assert "refused" in caplog.text and "Authentication failed" in caplog.text
    assert "not-the-secret-at-all" not in caplog.text
    assert not client.connected


async def test_action_before_connect_fails_at_once(make_client) -> None:
    client = make_client()
    with pytest.raises(AMIConnectionError):
        await client.action("Ping")


# ---------------------------------------------------------------------------------------- client: actions


async def test_responses_are_correlated_with_interleaved_events(
    server: SimulatedAMIServer, make_client
) -> None:
    async def echo(action: AMIAction) -> object:
        delay = float(action.message["Delay"])
        server.emit([("Event", "Tick"), ("Tag", action.message["Tag"])])
        await asyncio.sleep(0)  # the other concurrent actions get to run in between
        # Answer out of order: the later request answers first, with events written around the response.
        action.connection.send_event([("Event", "Before"), ("Tag", action.message["Tag"])])
        return [("Response", "Success"), ("Tag", action.message["Tag"]), ("Delay", str(delay))]

    server.register_action("Echo", echo)
    client = await _connected(make_client)
    seen: list[str] = []
    client.subscribe(lambda m: seen.append(f"{m.event}:{m['Tag']}"), "Tick", "Before")
    results = await asyncio.gather(*(client.action("Echo", {"Tag": f"t{i}", "Delay": 0}) for i in range(20)))
    assert [r.response["Tag"] for r in results] == [f"t{i}" for i in range(20)]
    assert all(r.ok and r.events == [] for r in results)
    await _until(lambda: len(seen) == 40)
    assert sorted(seen) == sorted([f"Tick:t{i}" for i in range(20)] + [f"Before:t{i}" for i in range(20)])


@pytest.mark.parametrize(
    ("action", "traced_id", "fields", "item_events", "complete"),
    [
        ("CoreShowChannels", "ami-003", None, ["CoreShowChannel"] * 4, "CoreShowChannelsComplete"),
        (
            "QueueStatus",
            "ami-027",
            {"Queue": "support"},
            ["QueueParams", "QueueMember"],
            "QueueStatusComplete",
        ),
        ("DBGet", "ami-018", {"Family": "contactd", "Key": "agent1001"}, ["DBGetResponse"], "DBGetComplete"),
    ],
)
async def test_list_actions_collect_recorded_events(
    server: SimulatedAMIServer, make_client, action, traced_id, fields, item_events, complete
) -> None:
    recorded = _trace_action_messages("ami-actions-misc.txt", traced_id)
    assert recorded[-1].event == complete
    noise = next(m for m in server_messages("ami-actions-misc.txt") if m.event == "Newchannel")
    _replay(server, action, recorded, noise=noise)
    client = await _connected(make_client)
    others: list[AMIMessage] = []
    client.subscribe(others.append)
    result = await client.action(action, fields)
    assert result.ok and result.message is not None
    assert [e.event for e in result.events] == item_events
    assert len(result.events) == int(recorded[-1]["ListItems"])
    assert (
        result.events[0].headers[1:]
        == [(k, result.response.action_id if k == "ActionID" else v) for k, v in recorded[1].headers][1:]
    )
    if action == "DBGet":
        assert result.events[0]["Val"] == "ready"
    await _until(lambda: any(m.event == "Newchannel" for m in others))
    assert not any(m.event in item_events for m in others)  # list items go to the result only


async def test_dbget_of_missing_key_raises_action_error(server: SimulatedAMIServer, make_client) -> None:
    _replay(server, "DBGet", _trace_action_messages("ami-actions-misc.txt", "ami-019"))
    client = await _connected(make_client)
    with pytest.raises(AMIActionError) as info:
        await client.action("DBGet", {"Family": "contactd", "Key": "nosuchkey"})
    assert info.value.response.response == "Error"
    result = await client.action("DBGet", {"Family": "contactd", "Key": "nosuchkey"}, raise_on_error=False)
    assert not result.ok and result.message == str(info.value)


async def test_command_output_lines(server: SimulatedAMIServer, make_client) -> None:
    _recorded = _trace_action_messages("ami-actions-misc.txt", "ami-008")  # core show channels
    server.register_command("core show channels", lambda cli: _recorded[0].getall("Output"))
    client = await _connected(make_client)
    lines = await client.command("core show channels")
    assert lines == _recorded[0].getall("Output") and len(lines) > 3
    assert (await client.command("core show version"))[0].startswith("Asterisk 22.10.1 built by")
    with pytest.raises(AMIActionError) as info:
        await client.command("core show nonsense")
    assert info.value.response.getall("Output")[0].startswith("No such command 'core show nonsense'")


async def test_action_timeout_removes_the_pending_entry(server: SimulatedAMIServer, make_client) -> None:
    client = await _connected(make_client)
    server.drop_responses = True
    start = time.monotonic()
    with pytest.raises(AMITimeoutError):
        await client.action("Ping", timeout=0.2)
    assert 0.15 < time.monotonic() - start < 1.0
    assert client._pending == {}
    server.drop_responses = False
    assert (await client.action("Ping")).response["Ping"] == "Pong"


async def test_pending_actions_fail_at_once_when_the_link_drops_and_are_never_resent(
    server: SimulatedAMIServer, make_client
) -> None:
    server.register_action("Originate", lambda a: None)  # never answered
    client = await _connected(make_client, action_timeout=30.0)
    tasks = [asyncio.create_task(client.action("Originate", {"Channel": f"Local/{i}@x"})) for i in range(3)]
    await _until(lambda: sum(m.get("Action") == "Originate" for m in server.received) == 3)
    start = time.monotonic()
    await server.kill()
    done, _ = await asyncio.wait(tasks, timeout=1.0)
    assert len(done) == 3 and time.monotonic() - start < 1.0
    for task in tasks:
        assert isinstance(task.exception(), AMIConnectionError)
    await server.start()
    await client.wait_connected(3)
    await client.action("Ping")
    assert sum(m.get("Action") == "Originate" for m in server.received) == 3


# ------------------------------------------------------------------------------------ client: reconnecting


async def test_killed_and_restarted_server_relogin_within_2s(server: SimulatedAMIServer, make_client) -> None:
    connects: list[float] = []
    disconnects: list[str] = []

    async def on_connect() -> None:
        connects.append(time.monotonic())

    client = make_client()
    client.add_connect_listener(on_connect)
    client.add_disconnect_listener(disconnects.append)
    await client.start()
    await client.wait_connected(3)
    await _until(lambda: len(connects) == 1)
    await server.kill()
    await _until(lambda: not client.connected, 1.0)
    assert len(disconnects) == 1
    await asyncio.sleep(0.5)  # Asterisk is down for a while: the client keeps retrying with backoff
    await server.start()
    restarted = time.monotonic()
    await client.wait_connected(2.0)
    await _until(lambda: len(connects) == 2, 1.0)
    assert connects[1] - restarted < 2.0
    assert client.reconnects == 1 and server.login_count == 2


async def test_reset_before_banner_then_refused_then_up(make_client) -> None:
    """Right after an Asterisk restart: one connect reset before the banner, ~0.4 s refused, then a banner."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    srv = SimulatedAMIServer(secret=SECRET, port=port)
    client = AMIClient("127.0.0.1", port, "contactd", SECRET, action_timeout=1.0, reconnect_max_delay=0.4)
    try:
        await client.start()
        loop = asyncio.get_running_loop()
        listener.setblocking(False)
        conn, _ = await asyncio.wait_for(loop.sock_accept(listener), 2)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()  # RST before any banner
        listener.close()  # refused from now on
        await asyncio.sleep(0.4)
        await srv.start()
        up = time.monotonic()
        await client.wait_connected(2.0)
        assert time.monotonic() - up < 1.0
    finally:
        listener.close()
        await client.close()
        await srv.stop()


async def test_shutdown_event_marks_disconnected_and_reconnects(
    server: SimulatedAMIServer, make_client
) -> None:
    client = await _connected(make_client)
    reasons: list[str] = []
    client.add_disconnect_listener(reasons.append)
    shutdowns: list[AMIMessage] = []
    client.subscribe(shutdowns.append, "Shutdown")
    await server.shutdown(restart=True)
    await _until(lambda: not client.connected, 1.0)
    assert shutdowns and shutdowns[0]["Restart"] == "True"
    await _until(lambda: bool(reasons), 1.0)
    assert "shut down" in reasons[0]
    with pytest.raises(AMIConnectionError):
        await client.action("Ping")
    await server.start()
    await client.wait_connected(2.0)


async def test_half_open_link_detected_by_unanswered_ping(
    server: SimulatedAMIServer, make_client, caplog
) -> None:
    client = await _connected(make_client, ping_interval=0.2, action_timeout=0.3)
    server.pause_pings = True
    took = await _until(lambda: server.login_count >= 2, 3.0)
    assert took < 1.5
    assert "Ping" in caplog.text and "not answered" in caplog.text
    server.pause_pings = False
    await client.wait_connected(2)
    assert client.reconnects >= 1


async def test_oversized_message_closes_link_with_logged_error_then_reconnects(
    server: SimulatedAMIServer, make_client, caplog
) -> None:
    client = await _connected(make_client)
    received: list[AMIMessage] = []
    client.subscribe(received.append, "Small")
    server.connections[0].send([("Event", "Huge"), ("Data", "x" * (1 << 20) + "y")])
    await _until(lambda: server.login_count == 2, 3.0)
    assert any(r.levelno == logging.ERROR and "larger than" in r.getMessage() for r in caplog.records)
    await client.wait_connected(2)
    server.emit([("Event", "Small")])
    await _until(lambda: len(received) == 1)


# -------------------------------------------------------------------------------------- client: handlers


async def test_raising_handler_does_not_stop_others_nor_lose_the_read(
    server: SimulatedAMIServer, make_client
) -> None:
    client = await _connected(make_client)
    good: list[str] = []

    def bad(msg: AMIMessage) -> None:
        raise RuntimeError("handler bug")

    client.subscribe(bad)
    client.subscribe(lambda m: good.append(m["N"]), "Burst")
    for i in range(50):  # one write burst: many events per read
        server.emit([("Event", "Burst"), ("N", str(i))])
    await _until(lambda: len(good) == 50)
    assert good == [str(i) for i in range(50)]
    assert client.handler_errors >= 50
    assert client.connected and (await client.action("Ping")).ok


async def test_slow_async_subscriber_does_not_delay_a_fast_one(
    server: SimulatedAMIServer, make_client, caplog
) -> None:
    client = await _connected(make_client)
    fast: list[float] = []
    slow_seen: list[str] = []

    async def slow(msg: AMIMessage) -> None:
        slow_seen.append(msg["N"])
        await asyncio.sleep(1.0)

    async def quick(msg: AMIMessage) -> None:
        fast.append(time.monotonic())

    client.subscribe(slow, "Work", maxsize=5)
    client.subscribe(quick, "Work")
    start = time.monotonic()
    for i in range(30):
        server.emit([("Event", "Work"), ("N", str(i))])
    await _until(lambda: len(fast) == 30, 2.0)
    assert fast[-1] - start < 0.5
    assert client.events_dropped >= 20
    assert "too slow" in caplog.text
    unsubscribe = client.subscribe(quick, "Other")
    unsubscribe()
    assert len(slow_seen) <= 2


async def test_routes_follow_subscribe_and_unsubscribe() -> None:
    # Routing is cached per event name: a subscriber added or removed later must see (or stop seeing) events.
    client = AMIClient("127.0.0.1", 1, "u", "x")
    link = _Link(client, AMIParser(expect_banner=False))
    client._link = link  # feed the real data_received path without a socket
    first: list[str] = []
    later: list[str] = []
    client.subscribe(lambda m: first.append(m["N"]), "Newchannel")
    link.data_received(b"Event: Newchannel\r\nN: 1\r\n\r\nEvent: Hangup\r\nN: 2\r\n\r\n")
    unsubscribe = client.subscribe(lambda m: later.append(m["N"]))
    link.data_received(b"Event: Newchannel\r\nN: 3\r\n\r\nevent: Hangup\r\nN: 4\r\n\r\n")
    unsubscribe()
    link.data_received(b"Event: Newchannel\r\nN: 5\r\n\r\n")
    assert first == ["1", "3", "5"] and later == ["3", "4"]
    assert client.events_received == 5
