"""FastAGI server: real sockets on 127.0.0.1, Asterisk's side played from the recorded trace bytes or by the
simulator's caller. Every test is bounded by timeouts."""

from __future__ import annotations

import ast
import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from trace_reader import TRACES_DIR  # noqa: E402

from contactd.simulator.agi_caller import CallerBehaviour, place_agi_call
from contactd.telephony.agi import (
    AGIAppNotFound,
    AGICommandTimeout,
    AGIDeadChannel,
    AGIError,
    AGIHangup,
    AGIInvalidCommand,
    AGIServer,
    AGISession,
    AGIUsageError,
    parse_reply_line,
)

TRACES = TRACES_DIR
T = 5.0  # upper bound for anything that should take milliseconds


# Trace reading --------------------------------------------------------------------------------------------


def _unescape(text: str) -> bytes:
    """Trace notation → bytes: `\\n` literal terminators, `\\\\` a backslash, `\\xNN` a control byte."""
    out = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "n":
                out += b"\n"
                i += 2
                continue
            if nxt == "r":
                out += b"\r"
                i += 2
                continue
            if nxt == "\\":
                out += b"\\"
                i += 2
                continue
            if nxt == "x":
                out.append(int(text[i + 2:i + 4], 16))
                i += 4
                continue
        out += ch.encode("utf-8")
        i += 1
    return bytes(out)


def agi_trace(name: str) -> list[tuple[str, bytes]]:
    """[("S"|"C"|"#", bytes)] in order; `#` entries mark the recorder's chunk boundaries."""
    steps: list[tuple[str, bytes]] = []
    for line in (TRACES / name).read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            steps.append(("#", b""))
        elif line[:3] in ("S: ", "C: "):
            body = line[3:]
            data = ast.literal_eval(body).encode("utf-8") if body.startswith("'") else _unescape(body)
            steps.append((line[0], data))
    return steps


class FakeAsterisk:
    """Plays the `S:` bytes of a trace and checks that our server sends exactly the `C:` bytes in between."""

    def __init__(self, steps: list[tuple[str, bytes]]) -> None:
        self.steps = steps
        self.received: list[bytes] = []
        self.mismatches: list[tuple[bytes, bytes]] = []
        self.eof_after: float | None = None

    async def run(self, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            pending = bytearray()
            for kind, data in self.steps:
                if kind == "#" and pending:
                    # A recorder note = a chunk boundary: keep the TCP segments apart as recorded.
                    writer.write(bytes(pending))
                    await writer.drain()
                    pending.clear()
                    await asyncio.sleep(0.005)
                elif kind == "S":
                    pending += data
                elif kind == "C":
                    if pending:
                        writer.write(bytes(pending))
                        await writer.drain()
                        pending.clear()
                    got = await asyncio.wait_for(reader.readline(), T)
                    self.received.append(got)
                    if got != data:
                        self.mismatches.append((data, got))
                        return
            if pending:
                writer.write(bytes(pending))
                await writer.drain()
            started = time.monotonic()
            # Asterisk never closes: the server must.
            assert await read_to_close(reader) == b""
            self.eof_after = time.monotonic() - started
        finally:
            writer.close()


@pytest.fixture
async def server() -> AsyncIterator[AGIServer]:
    srv = AGIServer(port=0, header_timeout=2.0, command_timeout=3.0)
    await srv.start()
    yield srv
    await srv.stop()


async def wait_until(predicate: Callable[[], bool], timeout: float = T) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


async def read_to_close(reader: asyncio.StreamReader) -> bytes:
    """Everything until the server closes (a reset counts as closed), bounded by T."""
    try:
        return await asyncio.wait_for(reader.read(), T)
    except ConnectionResetError:
        return b""


async def raw_connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


HEADER = (
    "agi_network: yes\nagi_network_script: {script}\nagi_request: agi://127.0.0.1:4573/{script}\n"
    "agi_channel: PJSIP/pstn-00000007\nagi_language: ko\nagi_type: PJSIP\nagi_uniqueid: 1795385863.7\n"
    "agi_version: 22.10.1\nagi_callerid: 01012345678\nagi_calleridname: 홍길동\nagi_dnid: 100\n"
    "agi_context: from-pstn\nagi_extension: 100\nagi_priority: 3\nagi_accountcode: \n{extra}\n"
)


def header(script: str = "inbound", extra: str = "") -> bytes:
    return HEADER.format(script=script, extra=extra).encode("utf-8")


# The recorded sessions, byte for byte ---------------------------------------------------------------------


async def test_replays_inbound_trace_byte_for_byte(server: AGIServer) -> None:
    seen: dict[str, Any] = {}

    async def flow(s: AGISession) -> None:
        await s.answer()
        seen["num"] = await s.get_variable("CALLERID(num)")
        seen["name"] = await s.get_variable("CALLERID(name)")
        await s.set_variable("CONTACTD_STATE", "in ivr")
        seen["state"] = await s.get_variable("CONTACTD_STATE")
        seen["nosuch"] = await s.get_variable("NOSUCHVAR")
        seen["stream"] = await s.stream_file("hello-world", "0123456789#")
        seen["data"] = await s.get_data("beep", 8000, 4)
        seen["digit"] = await s.wait_for_digit(6000)
        seen["say"] = await s.say_digits("123")
        seen["exec"] = (await s.exec("Playback", "beep")).result
        rec = await s.command('RECORD FILE /var/spool/asterisk/monitor/agi-record wav "#" 3000 0 beep s=2')
        seen["record"] = (rec.result, rec.data, rec.endpos)
        with pytest.raises(AGIInvalidCommand):
            await s.command("FOO BAR")
        try:
            await s.command("GET DATA")
        except AGIUsageError as exc:
            seen["usage"] = exc.usage
        try:
            await s.wait_for_digit(-1)
        except AGIHangup:
            seen["hangup"] = True
        await asyncio.sleep(0.1)  # the HANGUP notice arrives ~40 ms after the reply
        seen["hung_up"] = s.hung_up
        seen["dead_state"] = (await s.command("GET VARIABLE CONTACTD_STATE", allow_dead=True)).data
        for line in ('STREAM FILE beep ""', "ANSWER"):
            try:
                await s.command(line, allow_dead=True)
            except AGIDeadChannel:
                seen.setdefault("dead", []).append(line)
        await s.command("NOOP still here", allow_dead=True)
        await s.verbose("agi on dead channel", 1)

    server.route("inbound", flow)
    fake = FakeAsterisk(agi_trace("agi-session-inbound.txt"))
    await asyncio.wait_for(fake.run(server.port), T)

    assert fake.mismatches == []
    assert len(fake.received) == 20  # every C: line of the trace
    assert seen["num"] == "0212345678" and seen["name"] == "홍길동"
    assert seen["state"] == "in ivr" and seen["nosuch"] is None
    assert seen["stream"] == "" and seen["data"] == ("1", False) and seen["digit"] == "5" and seen["say"] == ""
    assert seen["exec"] == 0 and seen["record"] == (0, "timeout", 0)
    assert seen["usage"] == ("Stream the given <replaceable>file</replaceable>, and receive DTMF data.\n"
                             "Returns the digits received from the channel at the other end.")
    assert seen["hangup"] and seen["hung_up"] and seen["dead_state"] == "in ivr"
    assert seen["dead"] == ['STREAM FILE beep ""', "ANSWER"]
    assert fake.eof_after is not None and fake.eof_after < 1.0
    assert server.sessions_completed == 1 and server.sessions_failed == 0


async def test_replays_sip_caller_trace_hangup_before_reply_and_final_timeout(server: AGIServer) -> None:
    seen: dict[str, Any] = {}

    async def flow(s: AGISession) -> None:
        await s.answer()
        seen["num"] = await s.get_variable("CALLERID(num)")
        await s.set_variable("CONTACTD_TEST", "hello world")
        seen["test"] = await s.get_variable("CONTACTD_TEST")
        await s.stream_file("beep", "#")
        try:
            await s.get_data("beep", 3000, 4)  # the caller hangs up: result=-1
        except AGIHangup:
            seen["get_data_hangup"] = True
        outcomes = []
        for line in ("WAIT FOR DIGIT 2000", 'SAY DIGITS 0101234 ""', 'EXEC Playback "beep"',
                     'RECORD FILE /tmp/agi-rec wav "#" 2000 0 BEEP s=1', "FOO BAR", "STREAM FILE",
                     "GET FULL VARIABLE ${CHANNEL}"):
            try:
                reply = await s.command(line, allow_dead=True)
                outcomes.append(reply.raw)
            except AGIError as exc:
                outcomes.append(type(exc).__name__)
        seen["outcomes"] = outcomes
        try:
            # The trace ends without a reply to this: a command timeout must close the socket.
            await s.command("EXEC Wait 30", timeout=0.2, allow_dead=True)
        except AGICommandTimeout:
            seen["timeout"] = True

    server.route("inbound", flow)
    fake = FakeAsterisk(agi_trace("agi-session-sip-caller.txt"))
    await asyncio.wait_for(fake.run(server.port), T)

    assert fake.mismatches == []
    assert seen["num"] == "sipp" and seen["test"] == "hello world" and seen["get_data_hangup"]
    assert seen["outcomes"] == ["AGIDeadChannel", "AGIDeadChannel", "200 result=0", "AGIDeadChannel",
                                "AGIInvalidCommand", "AGIDeadChannel", "200 result=1 (PJSIP/pstn-00000000)"]
    assert seen["timeout"]
    assert fake.eof_after is not None and fake.eof_after < 1.0


# Wire-format rules -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "expected"), [
    ("200 result=0", (200, 0, None, None)),
    ("200 result=1 (0212345678)", (200, 1, "0212345678", None)),
    ("200 result=1 (in ivr)", (200, 1, "in ivr", None)),
    ("200 result=0 endpos=11360", (200, 0, None, 11360)),
    ("200 result=0 (timeout) endpos=0", (200, 0, "timeout", 0)),
    ("200 result=-1 endpos=0", (200, -1, None, 0)),
    ("200 result= (timeout)", (200, None, "timeout", None)),
    ("200 result=12 (timeout)", (200, 12, "timeout", None)),
    ("200 result=1 (a) b (c) endpos=3)", (200, 1, "a) b (c) endpos=3", None)),
    ("510 Invalid or unknown command", (510, None, "Invalid or unknown command", None)),
    ("511 Command Not Permitted on a dead channel or intercept routine",
     (511, None, "Command Not Permitted on a dead channel or intercept routine", None)),
])
def test_parse_reply_line(line: str, expected: tuple[Any, ...]) -> None:
    reply = parse_reply_line(line)
    assert (reply.code, reply.result, reply.data, reply.endpos) == expected
    assert reply.raw == line


def test_reply_digit_and_result_text() -> None:
    assert parse_reply_line("200 result=53").digit == "5"
    assert parse_reply_line("200 result=35").digit == "#"
    assert parse_reply_line("200 result=0").digit == ""
    assert parse_reply_line("200 result=-1").digit == ""
    assert parse_reply_line("200 result=0101234567").result_text == "0101234567"
    with pytest.raises(ValueError):
        parse_reply_line("hello")


async def test_header_split_bytewise_with_crlf_and_hangul_split_mid_character(server: AGIServer) -> None:
    got: list[AGISession] = []

    async def flow(s: AGISession) -> None:
        got.append(s)
        await s.answer()

    server.route("inbound", flow)
    reader, writer = await raw_connect(server.port)
    data = header().replace(b"\n", b"\r\n")
    for i in range(len(data)):  # one byte per write: every UTF-8 Hangul character is split across reads
        writer.write(data[i:i + 1])
        await writer.drain()
        await asyncio.sleep(0)
    assert await asyncio.wait_for(reader.readline(), T) == b"ANSWER\n"
    writer.write(b"200 result=0\r\n")
    assert await read_to_close(reader) == b""  # flow done → server closes
    writer.close()
    req = got[0].request
    assert req.calleridname == "홍길동" and req.callerid == "01012345678" and req.language == "ko"
    assert req.raw["accountcode"] == "" and req.channel == "PJSIP/pstn-00000007"
    assert server.sessions_completed == 1


async def test_routes_on_script_path_parses_query_and_orders_args(server: AGIServer) -> None:
    got: list[AGISession] = []

    async def flow(s: AGISession) -> None:
        got.append(s)

    server.route("ivr/inbound", flow)
    extra = "".join(f"agi_arg_{i}: a{i}\n" for i in (1, 2, 10, 3, 4, 5, 6, 7, 8, 9, 11))
    reader, writer = await raw_connect(server.port)
    writer.write(header("ivr/inbound?lang=ko&x=1&empty=", extra))
    assert await read_to_close(reader) == b""
    writer.close()
    req = got[0].request
    assert req.script == "ivr/inbound" and req.query == {"lang": "ko", "x": "1", "empty": ""}
    assert req.args == [f"a{i}" for i in range(1, 12)]


async def test_two_scripts_go_to_two_handlers(server: AGIServer) -> None:
    async def inbound(s: AGISession) -> None:
        await s.stream_file("welcome")

    async def callback(s: AGISession) -> None:
        await s.say_digits(s.request.query["n"])

    server.route("inbound", inbound)
    server.route("callback", callback)
    a, b = await asyncio.gather(place_agi_call("127.0.0.1", server.port, script="inbound", timeout=T),
                                place_agi_call("127.0.0.1", server.port, script="callback?n=42", timeout=T))
    assert a.commands == ['STREAM FILE welcome ""'] and a.closed_by == "server"
    assert b.commands == ['SAY DIGITS 42 ""'] and b.closed_by == "server"


async def test_usage_block_with_reply_lookalike_lines_is_one_reply(server: AGIServer) -> None:
    seen: dict[str, Any] = {}

    async def flow(s: AGISession) -> None:
        try:
            await s.command("GET DATA")
        except AGIUsageError as exc:
            seen["usage"] = exc.usage
        seen["next"] = await s.get_variable("X")

    server.route("inbound", flow)
    reader, writer = await raw_connect(server.port)
    writer.write(header())
    assert await asyncio.wait_for(reader.readline(), T) == b"GET DATA\n"
    writer.write(b"520-Invalid command syntax.  Proper usage follows:\n200 result=1 (not a reply)\n"
                 b"520 End of proper usage (almost)\n510 Invalid or unknown command\nHANGUP\n")
    await asyncio.sleep(0.05)  # the block's end comes in a later segment
    writer.write(b"520 End of proper usage.\n")
    assert await asyncio.wait_for(reader.readline(), T) == b"GET VARIABLE X\n"
    writer.write(b"200 result=1 (real)\n")
    assert await read_to_close(reader) == b""
    writer.close()
    assert seen["usage"] == ("200 result=1 (not a reply)\n520 End of proper usage (almost)\n"
                             "510 Invalid or unknown command\nHANGUP")
    assert seen["next"] == "real"


async def test_hangup_notice_before_reply_is_consumed_and_next_command_raises(server: AGIServer) -> None:
    seen: dict[str, Any] = {}

    async def flow(s: AGISession) -> None:
        await s.answer()
        seen["value"] = await s.get_variable("V")  # HANGUP arrives, then this command's 200
        seen["hung_up"] = s.hung_up
        try:
            await s.stream_file("menu")
        except AGIHangup:
            seen["raised"] = True

    server.route("inbound", flow)
    t = await place_agi_call("127.0.0.1", server.port, variables={"V": "x"},
                             behaviour=CallerBehaviour(hangup_after=1, hangup_notice_first=True), timeout=T)
    assert seen == {"value": "x", "hung_up": True, "raised": True}
    # The refused command was never sent: a dead channel only gets what the flow really means.
    assert t.commands == ["ANSWER", "GET VARIABLE V"] and t.closed_by == "server"


async def test_hangup_mid_flow_flow_catches_and_server_closes_promptly(server: AGIServer) -> None:
    cleanup: list[str] = []

    async def flow(s: AGISession) -> None:
        try:
            await s.answer()
            while True:
                await s.stream_file("menu", "12")
                await s.wait_for_digit(3000)
        except AGIHangup:
            cleanup.append("caught")

    server.route("inbound", flow)
    t = await place_agi_call("127.0.0.1", server.port, behaviour=CallerBehaviour(hangup_after=3), timeout=T)
    assert cleanup == ["caught"]
    assert t.hung_up and t.closed_by == "server" and t.duration < 1.0
    assert t.commands == ["ANSWER", 'STREAM FILE menu "12"', "WAIT FOR DIGIT 3000"]
    await wait_until(lambda: server.sessions_completed == 1)
    assert server.active_sessions == 0 and server.sessions_failed == 0


async def test_hangup_during_prompt_then_next_command_raises(server: AGIServer) -> None:
    seen: list[Any] = []

    async def flow(s: AGISession) -> None:
        seen.append(await s.stream_file("welcome", "1"))
        await asyncio.sleep(0.05)
        try:
            await s.get_data("menu", 5000, 1)
        except AGIHangup:
            seen.append("hangup")

    server.route("inbound", flow)
    t = await place_agi_call("127.0.0.1", server.port, behaviour=CallerBehaviour(hangup_during="STREAM FILE"),
                             timeout=T)
    assert seen == ["", "hangup"]
    assert t.replies[0].startswith("200 result=-1 endpos=") and t.closed_by == "server"


async def test_uncaught_hangup_is_a_normal_end_and_socket_closes(server: AGIServer) -> None:
    async def flow(s: AGISession) -> None:
        await s.answer()
        await s.wait_for_digit(-1)  # raises AGIHangup, not caught

    server.route("inbound", flow)
    t = await place_agi_call("127.0.0.1", server.port, timeout=T)
    assert t.closed_by == "server" and t.duration < 1.0
    await wait_until(lambda: server.sessions_completed == 1)
    assert server.sessions_failed == 0


async def test_raising_handler_is_counted_and_server_keeps_serving(server: AGIServer,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    calls = 0

    async def flow(s: AGISession) -> None:
        nonlocal calls
        calls += 1
        await s.answer()
        if calls == 1:
            raise RuntimeError("boom in flow")
        await s.verbose("second call fine")

    server.route("inbound", flow)
    first = await place_agi_call("127.0.0.1", server.port, timeout=T)
    second = await place_agi_call("127.0.0.1", server.port, timeout=T)
    assert first.closed_by == "server" and first.commands == ["ANSWER"]
    assert second.commands == ["ANSWER", 'VERBOSE "second call fine" 1']
    await wait_until(lambda: server.sessions_completed == 1 and server.sessions_failed == 1)
    assert "boom in flow" in caplog.text


async def test_unknown_script_without_default_says_so_and_closes(server: AGIServer) -> None:
    t = await place_agi_call("127.0.0.1", server.port, script="nosuch", timeout=T)
    assert t.commands == ['VERBOSE "contactd: no handler for AGI script nosuch" 1']
    assert t.closed_by == "server"
    await wait_until(lambda: server.sessions_failed == 1)

    async def fallback(s: AGISession) -> None:
        await s.exec("Queue", "support")

    server.set_default(fallback)
    t = await place_agi_call("127.0.0.1", server.port, script="nosuch", timeout=T)
    assert t.commands == ["EXEC Queue support"]


async def test_connect_and_close_neither_spins_nor_blocks(server: AGIServer) -> None:
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    async def flow(s: AGISession) -> None:
        await s.answer()

    server.route("inbound", flow)
    tick = asyncio.create_task(ticker())
    cpu0 = time.process_time()
    for _ in range(100):
        _, writer = await raw_connect(server.port)
        writer.close()
        await writer.wait_closed()
    half_open = []
    for _ in range(5):  # connected, silent, then closed after a pause
        _, writer = await raw_connect(server.port)
        half_open.append(writer)
    await asyncio.sleep(0.3)
    for writer in half_open:
        writer.close()
    await wait_until(lambda: server.connections_dropped == 105)
    await asyncio.sleep(0.2)
    cpu = time.process_time() - cpu0
    stop.set()
    await tick
    assert max(gaps) < 0.1
    assert cpu < 1.0  # a spinning reader would burn the whole 0.5 s window and more
    t = await place_agi_call("127.0.0.1", server.port, timeout=T)
    assert t.commands == ["ANSWER"]
    assert not server._connections


async def test_header_timeout_closes_silent_and_partial_peers() -> None:
    srv = AGIServer(port=0, header_timeout=0.2)
    await srv.start()
    try:
        started = time.monotonic()
        r1, w1 = await raw_connect(srv.port)
        r2, w2 = await raw_connect(srv.port)
        w2.write(header()[:60])  # part of the block, never the empty line
        assert await read_to_close(r1) == b""
        assert await read_to_close(r2) == b""
        assert 0.15 < time.monotonic() - started < 1.5
        assert srv.connections_dropped == 2 and srv.active_sessions == 0
        w1.close()
        w2.close()
    finally:
        await srv.stop()


async def test_idle_timeout_closes_the_session_and_cancels_a_stuck_flow() -> None:
    srv = AGIServer(port=0, idle_timeout=0.3)
    cancelled = asyncio.Event()

    async def stuck(s: AGISession) -> None:
        await s.answer()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    srv.route("inbound", stuck)
    await srv.start()
    try:
        t = await place_agi_call("127.0.0.1", srv.port, timeout=T)
        assert t.closed_by == "server" and 0.25 < t.duration < 2.0
        await asyncio.wait_for(cancelled.wait(), T)
        await wait_until(lambda: srv.sessions_failed == 1)
        assert srv.sessions_idle_closed == 1
    finally:
        await srv.stop()


async def test_long_command_in_flight_is_not_idle() -> None:
    srv = AGIServer(port=0, idle_timeout=0.2)
    results: list[str] = []

    async def flow(s: AGISession) -> None:
        results.append((await s.exec("Queue", "support")).raw)

    async def slow_queue(app: str, args: str) -> str:
        await asyncio.sleep(0.5)  # the caller talks to an agent inside Queue()
        return "200 result=0"

    srv.route("inbound", flow)
    await srv.start()
    try:
        t = await place_agi_call("127.0.0.1", srv.port, exec_handler=slow_queue, timeout=T)
        assert results == ["200 result=0"] and t.closed_by == "server"
    finally:
        await srv.stop()


async def test_cancelled_command_closes_the_socket(server: AGIServer) -> None:
    seen: list[str] = []

    async def flow(s: AGISession) -> None:
        try:
            await asyncio.wait_for(s.command("WAIT FOR DIGIT 5000"), 0.1)
        except TimeoutError:
            seen.append("cancelled")
        try:
            await s.answer()
        except AGIHangup:
            seen.append("closed")

    server.route("inbound", flow)
    reader, writer = await raw_connect(server.port)
    writer.write(header())
    assert await asyncio.wait_for(reader.readline(), T) == b"WAIT FOR DIGIT 5000\n"
    # No reply: after the cancel the server must drop the link rather than mistake a late reply.
    assert await read_to_close(reader) == b""
    writer.close()
    await wait_until(lambda: seen == ["cancelled", "closed"])


async def test_undecodable_bytes_and_overlong_lines_do_not_crash(server: AGIServer) -> None:
    seen: list[Any] = []

    async def flow(s: AGISession) -> None:
        seen.append(s.request.calleridname)
        seen.append(await s.get_variable("X"))

    server.route("inbound", flow)
    reader, writer = await raw_connect(server.port)
    writer.write(header().replace("홍길동".encode(), b"\xff\xfe\xed"))
    assert await asyncio.wait_for(reader.readline(), T) == b"GET VARIABLE X\n"
    writer.write(b"200 result=1 (\xc3\x28 ok)\n")
    assert await read_to_close(reader) == b""
    writer.close()
    assert seen == ["\ufffd\ufffd\ufffd", "\ufffd( ok"]

    # A peer streaming an endless line is cut off without the server buffering it.
    reader, writer = await raw_connect(server.port)
    try:
        for _ in range(40):
            writer.write(b"x" * 4096)
            await writer.drain()
    except ConnectionError:
        pass
    assert await read_to_close(reader) == b""
    writer.close()
    await wait_until(lambda: not server._connections)
    assert server.sessions_failed == 0


async def test_session_helpers_against_simulated_asterisk(server: AGIServer) -> None:
    seen: dict[str, Any] = {}

    async def flow(s: AGISession) -> None:
        await s.set_variable("NOTE", 'say "hi" \\ 안녕')
        seen["note"] = await s.get_variable("NOTE")
        with pytest.raises(ValueError):
            await s.set_variable("BAD", "two\nlines")
        seen["missing"] = await s.stream_file("no-such-prompt", "1")
        seen["gd"] = [await s.get_data("enter-phone", 5000, 11), await s.get_data("menu", 3000, 4),
                      await s.get_data("menu", 3000, 4), await s.get_data("menu", 3000, 1)]
        seen["wfd"] = [await s.wait_for_digit(100), await s.wait_for_digit(100)]
        seen["queue"] = (await s.exec("Queue", "support", "", "", "", "300")).result
        with pytest.raises(AGIAppNotFound):
            await s.exec("NoSuchApp")
        await s.hangup()
        await s.hangup()  # idempotent
        with pytest.raises(AGIHangup):
            await s.answer()

    server.route("inbound", flow)
    t = await place_agi_call("127.0.0.1", server.port, timeout=T,
                             behaviour=CallerBehaviour(keys=["0101234567#", "12", "", "98", "", "7"],
                                                       missing_files={"no-such-prompt"}))
    assert seen["note"] == 'say "hi" \\ 안녕'
    assert seen["missing"] == ""
    assert seen["gd"] == [("0101234567", False), ("12", True), ("", True), ("9", False)]
    assert seen["wfd"] == ["", "7"]
    assert seen["queue"] == 0
    assert "EXEC Queue support,,,,300" in t.commands and t.commands[-1] == "HANGUP"
    assert t.closed_by == "server" and server.sessions_failed == 0


async def test_two_hundred_concurrent_sessions(server: AGIServer) -> None:
    async def flow(s: AGISession) -> None:
        await s.answer()
        name = await s.get_variable("CALLERID(name)")
        await s.set_variable("SEEN", f"{name}-{s.request.uniqueid}")
        digits, _ = await s.get_data("menu", 3000, 4)
        await s.say_digits(digits)
        await s.hangup()

    server.route("inbound", flow)
    calls = [place_agi_call("127.0.0.1", server.port, calleridname=f"고객{i}", uniqueid=f"u.{i}",
                            behaviour=CallerBehaviour(keys=[f"{i}#"]), timeout=20)
             for i in range(200)]
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, server.active_sessions)
            await asyncio.sleep(0.001)

    watcher = asyncio.create_task(watch())
    transcripts = await asyncio.wait_for(asyncio.gather(*calls), 30)
    watcher.cancel()
    for i, t in enumerate(transcripts):
        assert t.commands == ["ANSWER", "GET VARIABLE CALLERID(name)", f'SET VARIABLE SEEN "고객{i}-u.{i}"',
                              "GET DATA menu 3000 4", f'SAY DIGITS {i} ""', "HANGUP"]
        assert t.closed_by == "server"
    await wait_until(lambda: server.sessions_completed == 200)
    assert server.sessions_failed == 0 and server.active_sessions == 0
    assert peak > 10  # they really overlapped


async def test_stop_closes_live_sessions() -> None:
    srv = AGIServer(port=0)

    async def flow(s: AGISession) -> None:
        await s.answer()
        await s.exec("Queue", "support")

    async def long_queue(app: str, args: str) -> str:
        await asyncio.sleep(0.3)
        return "200 result=0"

    srv.route("inbound", flow)
    await srv.start()
    call = asyncio.create_task(place_agi_call("127.0.0.1", srv.port, exec_handler=long_queue, timeout=T))
    await wait_until(lambda: srv.active_sessions == 1)
    await srv.stop()
    assert srv.active_sessions == 0 and srv.sessions_failed == 1
    t = await asyncio.wait_for(call, T)
    assert t.closed_by == "server" and t.duration < 2.0


async def test_one_command_at_a_time_per_session(server: AGIServer) -> None:
    seen: list[str] = []

    async def flow(s: AGISession) -> None:
        first = asyncio.create_task(s.wait_for_digit(1000))
        await asyncio.sleep(0.01)
        try:
            await s.answer()
        except AGIError as exc:
            seen.append(str(exc))
        seen.append(await first)

    server.route("inbound", flow)
    reader, writer = await raw_connect(server.port)
    writer.write(header())
    assert await asyncio.wait_for(reader.readline(), T) == b"WAIT FOR DIGIT 1000\n"
    await asyncio.sleep(0.05)
    writer.write(b"200 result=52\n")
    assert await read_to_close(reader) == b""  # nothing else was put on the wire
    writer.close()
    assert seen == ["another AGI command is still in flight on this session", "4"]
