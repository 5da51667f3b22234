"""The simulator's FastAGI caller answers like Asterisk 22 (checked against the recorded traces) — driven by a
plain asyncio server on 127.0.0.1 that writes raw command lines, so the caller is tested on its own."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from trace_reader import TRACES_DIR  # noqa: E402

from contactd.simulator.agi_caller import AGICallTranscript, CallerBehaviour, place_agi_call

TRACES = TRACES_DIR
T = 5.0
DEAD = "511 Command Not Permitted on a dead channel or intercept routine"


async def drive(commands: list[str], *, close: bool = True, settle: float = 0.0,
                **kwargs: Any) -> tuple[bytes, list[list[str]], AGICallTranscript]:
    """Accept one call, send `commands` one by one and collect every line that came back for each."""
    header = bytearray()
    answers: list[list[str]] = []
    done = asyncio.Event()

    async def on_call(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await asyncio.wait_for(reader.readline(), T)
                header.extend(line)
                if line == b"\n":
                    break
            if settle:
                await asyncio.sleep(settle)
            for command in commands:
                writer.write(command.encode() + b"\n")
                lines: list[str] = []
                while True:
                    got = (await asyncio.wait_for(reader.readline(), T)).decode().rstrip("\n")
                    lines.append(got)
                    if got == "HANGUP":
                        continue
                    if got.startswith("520-"):
                        while got != "520 End of proper usage.":
                            got = (await asyncio.wait_for(reader.readline(), T)).decode().rstrip("\n")
                            lines.append(got)
                    break
                answers.append(lines)
            if settle:
                await asyncio.sleep(settle)
                if not close:
                    return
            # Unsolicited notices the caller sent after the last reply.
            try:
                extra = await asyncio.wait_for(reader.read(1000), 0.05)
                if extra:
                    answers.append(extra.decode().splitlines())
            except TimeoutError:
                pass
        finally:
            if close:
                writer.close()
            done.set()

    server = await asyncio.start_server(on_call, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        transcript = await place_agi_call("127.0.0.1", port, **{"timeout": T, **kwargs})
        await asyncio.wait_for(done.wait(), T)
    finally:
        server.close()
    return bytes(header), answers, transcript


def trace_header() -> bytes:
    lines = []
    for line in (TRACES / "agi-session-inbound.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith("S: agi_") or line == "S: \\n":
            lines.append(line[3:].replace("\\n", "\n"))
        elif line.startswith("C: "):
            break
    return "".join(lines).encode("utf-8")


async def test_header_matches_the_recorded_agi_block() -> None:
    header, _, t = await drive([], channel="Local/100@from-pstn-00000000;2", uniqueid="1795385863.1",
                               calleridname="홍길동", callerid="0212345678", extension="100")
    expected = trace_header()
    got_lines = header.decode().split("\n")
    expected_lines = expected.decode().split("\n")
    assert len(got_lines) == len(expected_lines)
    for got, want in zip(got_lines, expected_lines, strict=True):
        key = want.split(":", 1)[0]
        if key in ("agi_threadid", "agi_request"):
            assert got.split(":", 1)[0] == key  # thread id and the server's port differ by nature
        else:
            assert got == want
    assert t.closed_by == "server" and t.commands == []


async def test_header_carries_args_after_threadid_and_unknown_name() -> None:
    header, _, _ = await drive([], args=["a b", "2"], calleridname="")
    text = header.decode()
    assert "agi_calleridname: unknown\n" in text
    assert text.endswith("agi_arg_1: a b\nagi_arg_2: 2\n\n")
    assert text.index("agi_threadid") < text.index("agi_arg_1")


async def test_answers_the_inbound_trace_commands_like_asterisk() -> None:
    commands = ["ANSWER", "GET VARIABLE CALLERID(num)", "GET VARIABLE CALLERID(name)",
                'SET VARIABLE CONTACTD_STATE "in ivr"', "GET VARIABLE CONTACTD_STATE", "GET VARIABLE NOSUCHVAR",
                'STREAM FILE hello-world "0123456789#"', "GET DATA beep 8000 4", "WAIT FOR DIGIT 6000",
                'SAY DIGITS 123 ""', "EXEC Playback beep",
                'RECORD FILE /var/spool/asterisk/monitor/agi-record wav "#" 3000 0 beep s=2', "FOO BAR", "GET DATA",
                "WAIT FOR DIGIT -1", "GET VARIABLE CONTACTD_STATE", 'STREAM FILE beep ""', "ANSWER",
                "NOOP still here", 'VERBOSE "agi on dead channel" 1']
    _, answers, t = await drive(commands, calleridname="홍길동", behaviour=CallerBehaviour(keys=["1#", "5"]))
    expected = [
        ["200 result=0"], ["200 result=1 (0212345678)"], ["200 result=1 (홍길동)"], ["200 result=1"],
        ["200 result=1 (in ivr)"], ["200 result=0"], ["200 result=0 endpos=11360"], ["200 result=1"],
        ["200 result=53"], ["200 result=0"], ["200 result=0"], ["200 result=0 (timeout) endpos=0"],
        ["510 Invalid or unknown command"],
        ["520-Invalid command syntax.  Proper usage follows:",
         "Stream the given <replaceable>file</replaceable>, and receive DTMF data.",
         "Returns the digits received from the channel at the other end.", "520 End of proper usage."],
        ["200 result=-1"], ["HANGUP", "200 result=1 (in ivr)"], [DEAD], [DEAD], ["200 result=0"], ["200 result=1"],
    ]
    assert answers == expected
    assert t.streamed == ["hello-world", "beep", "beep"] and t.hung_up and t.closed_by == "server"
    assert len(t.commands) == len(t.replies) == len(commands)


async def test_dead_channel_rules_from_the_sip_trace_with_notice_before_reply() -> None:
    commands = ["ANSWER", "WAIT FOR DIGIT 2000", 'SAY DIGITS 0101234 ""', 'EXEC Playback "beep"',
                'RECORD FILE /tmp/agi-rec wav "#" 2000 0 BEEP s=1', "FOO BAR", "STREAM FILE",
                "GET FULL VARIABLE ${CHANNEL}"]
    _, answers, t = await drive(commands, channel="PJSIP/pstn-00000000",
                                behaviour=CallerBehaviour(hangup_after=1, hangup_notice_first=True))
    assert answers == [["200 result=0"], ["HANGUP", DEAD], [DEAD], ["200 result=0"], [DEAD],
                       ["510 Invalid or unknown command"], [DEAD], ["200 result=1 (PJSIP/pstn-00000000)"]]
    assert t.streamed == []  # Playback on a dead channel plays nothing


async def test_hangup_after_sends_notice_right_after_the_reply() -> None:
    _, answers, t = await drive(["ANSWER", "NOOP"], behaviour=CallerBehaviour(hangup_after=1), settle=0.02)
    assert answers[0] == ["200 result=0"]
    assert answers[1] == ["HANGUP", "200 result=0"]  # the notice was already waiting before NOOP's reply
    _, answers, _ = await drive([], behaviour=CallerBehaviour(hangup_after=0))
    assert answers == [["HANGUP"]]


async def test_hangup_during_a_prompt_replies_first_then_notice() -> None:
    _, answers, t = await drive(['STREAM FILE welcome "1"', "GET DATA menu 3000 1"],
                                behaviour=CallerBehaviour(keys=["1"], hangup_during="STREAM FILE"))
    assert answers[0] == ["200 result=-1 endpos=4000"]
    assert answers[1] == ["HANGUP", DEAD]
    assert t.hung_up and t.streamed == ["welcome"]


async def test_get_data_timeout_hash_and_max_digits() -> None:
    keys = ["1#", "12", "", "0101234567#", "98765", "*3#"]
    commands = ["GET DATA beep 8000 4", "GET DATA beep 3000 4", "GET DATA beep 3000 4", "GET DATA p 5000 11",
                "GET DATA p 5000 3", "GET DATA p", "GET DATA p 1000 2"]
    _, answers, _ = await drive(commands, behaviour=CallerBehaviour(keys=keys))
    assert answers == [["200 result=1"], ["200 result=12 (timeout)"], ["200 result= (timeout)"],
                       ["200 result=0101234567"], ["200 result=987"], ["200 result=*3"],
                       ["200 result= (timeout)"]]  # keys ran out: silence


async def test_stream_file_escape_digits_wait_for_digit_and_say_digits() -> None:
    keys = ["5", "2", "", "9", "#"]
    commands = ['STREAM FILE menu "12"',  # 5 is not an escape digit: plays to the end, key kept
                "WAIT FOR DIGIT 3000",  # → 5
                'STREAM FILE menu "12"',  # → 2 interrupts
                "WAIT FOR DIGIT 3000",  # "" → silent
                'STREAM FILE menu ""',  # no escape digits: 9 stays
                'SAY DIGITS 123 "9"',  # → interrupted by 9
                'STREAM FILE missing "#"']
    _, answers, t = await drive(commands, behaviour=CallerBehaviour(keys=keys, missing_files={"missing"}))
    assert answers == [["200 result=0 endpos=8000"], ["200 result=53"], ["200 result=50 endpos=1600"],
                       ["200 result=0"], ["200 result=0 endpos=8000"], ["200 result=57"],
                       ["200 result=-1 endpos=0"]]
    assert t.streamed == ["menu", "menu", "menu", "missing"]


async def test_exec_default_custom_and_unknown_application() -> None:
    seen: list[tuple[str, str]] = []

    async def pbx(app: str, args: str) -> str | None:
        seen.append((app, args))
        return "200 result=-1" if app == "Queue" else None

    handler: Callable[[str, str], Awaitable[str | None]] = pbx
    _, answers, t = await drive(["EXEC Queue support,,,,300", 'EXEC Playback "intro&menu,noanswer"',
                                 "EXEC NoSuchApp x", "EXEC"], exec_handler=handler)
    assert answers[:3] == [["200 result=-1"], ["200 result=0"], ["200 result=-2"]]
    assert answers[3][0] == "520-Invalid command syntax.  Proper usage follows:"
    assert seen == [("Queue", "support,,,,300"), ("Playback", "intro&menu,noanswer"), ("NoSuchApp", "x")]
    assert t.streamed == ["intro", "menu"]


async def test_variables_seeded_and_quoting_round_trip() -> None:
    _, answers, _ = await drive(['SET VARIABLE NOTE "say \\"hi\\" \\\\ ok"', "GET VARIABLE NOTE",
                                 "GET VARIABLE SHOP", "GET VARIABLE CALLERID(num)", "CHANNEL STATUS"],
                                variables={"SHOP": "가게"}, callerid="01012345678")
    assert answers == [["200 result=1"], ['200 result=1 (say "hi" \\ ok)'], ["200 result=1 (가게)"],
                       ["200 result=1 (01012345678)"], ["200 result=6"]]


async def test_caller_never_closes_first_except_on_its_timeout() -> None:
    _, _, t = await drive([], close=False, settle=0.5, timeout=0.3)
    assert t.closed_by == "caller" and 0.25 < t.duration < 1.0


async def test_many_calls_in_parallel_do_not_share_state() -> None:
    results = await asyncio.gather(*[
        drive(["GET DATA p 1000 3", "GET VARIABLE CALLERID(num)"], callerid=f"0101234{i:04d}",
              behaviour=CallerBehaviour(keys=[f"{i % 10}#"]))
        for i in range(20)])
    for i, (_, answers, _) in enumerate(results):
        assert answers == [[f"200 result={i % 10}"], [f"200 result=1 (0101234{i:04d})"]]


async def test_hangup_command_kills_the_channel_and_sends_the_notice() -> None:
    _, answers, t = await drive(["HANGUP", "ANSWER", "GET VARIABLE CALLERID(num)"], callerid="0212345678")
    assert answers == [["200 result=1"], ["HANGUP", DEAD], ["200 result=1 (0212345678)"]]
    assert t.hung_up
