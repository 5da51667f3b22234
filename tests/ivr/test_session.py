"""CallSession, the API flows are written against, driven through a real FastAGI server and simulated caller."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from contactd.ivr.session import CallerHungUp, CallSession
from contactd.simulator.agi_caller import AGICallTranscript, CallerBehaviour, place_agi_call
from contactd.telephony.agi import AGIServer, AGISession

Flow = Callable[[CallSession], Awaitable[Any]]


async def run(flow: Flow, keys: list[str] | None = None, *, callerid: str = "01012345678",
              calleridname: str = "", variables: dict[str, str] | None = None,
              exec_handler: Any = None, **behaviour: Any) -> tuple[Any, AGICallTranscript]:
    """Serve one call with `flow`; returns what the flow returned (or the exception it raised) and the transcript."""
    outcome: list[Any] = []

    async def handler(agi: AGISession) -> None:
        try:
            outcome.append(await flow(CallSession(agi)))
        except Exception as exc:  # handed to the test
            outcome.append(exc)

    server = AGIServer("127.0.0.1", 0, command_timeout=5.0)
    server.route("inbound", handler)
    await server.start()
    try:
        transcript = await place_agi_call("127.0.0.1", server.port, callerid=callerid, calleridname=calleridname,
                                          uniqueid="1795385863.7", channel="PJSIP/pstn-00000007",
                                          behaviour=CallerBehaviour(keys=list(keys or []), **behaviour),
                                          variables=variables, exec_handler=exec_handler, timeout=5.0)
    finally:
        await server.stop()
    assert len(outcome) == 1
    return outcome[0], transcript


@pytest.mark.parametrize("callerid, name, number, shown", [
    ("01012345678", "홍길동", "01012345678", "홍길동"),
    ("+82 10-1234-5678", "", "01012345678", ""),
    ("anonymous", "unknown", "", ""),
    ("unknown", "Anonymous", "", ""),
])
async def test_caller_identity_is_normalized(callerid: str, name: str, number: str, shown: str) -> None:
    async def flow(call: CallSession) -> tuple[str, str, bool, str, str]:
        return call.caller_number, call.caller_name, call.anonymous, call.uniqueid, call.channel

    result, _ = await run(flow, callerid=callerid, calleridname=name)
    assert result == (number, shown, not number, "1795385863.7", "PJSIP/pstn-00000007")


async def test_play_streams_the_contactd_prompt() -> None:
    async def flow(call: CallSession) -> str:
        await call.play("greeting")
        return await call.play("menu", "12")

    result, t = await run(flow, ["2"])
    assert t.commands == ['STREAM FILE contactd/greeting ""', 'STREAM FILE contactd/menu "12"']
    assert result == "2"  # the key that cut the prompt short


async def test_read_returns_digits_and_empty_on_timeout() -> None:
    async def flow(call: CallSession) -> list[Any]:
        return [await call.read("callback-ask", max_digits=12, timeout_s=8),
                await call.read("callback-ask", max_digits=12, timeout_s=8),
                await call.collect("callback-ask", max_digits=12, timeout_s=8),
                await call.collect("callback-ask", max_digits=12, timeout_s=8)]

    result, t = await run(flow, ["0212345678#", "", "#", "0101234"])
    assert t.commands[0] == "GET DATA contactd/callback-ask 8000 12"
    typed, silent, hash_only, partial = result
    assert (typed, silent) == ("0212345678", "")
    assert hash_only.empty_by_hash and not hash_only.timed_out
    assert (partial.digits, partial.timed_out, partial.empty_by_hash) == ("0101234", True, False)


async def test_menu_retries_and_gives_up() -> None:
    async def flow(call: CallSession) -> list[str | None]:
        return [await call.menu("menu", "1230", attempts=3),
                await call.menu("menu", "1230", attempts=2)]

    result, t = await run(flow, ["9", "", "3", "8", "7"])
    assert result == ["3", None]
    assert t.streamed == ["contactd/menu", "contactd/invalid", "contactd/menu", "contactd/menu",
                          "contactd/menu", "contactd/invalid", "contactd/menu", "contactd/invalid"]


async def test_say_digits_queue_and_call_data() -> None:
    execs: list[tuple[str, str]] = []

    async def on_exec(app: str, args: str) -> None:
        execs.append((app, args))

    async def flow(call: CallSession) -> list[Any]:
        await call.say_digits("01012345678")
        await call.set_call_data("ivr_choice", "2")
        first = await call.queue("support")
        second = await call.queue("support-vip", timeout_s=300)
        with pytest.raises(ValueError):
            await call.say_digits("12 ; HANGUP")
        with pytest.raises(ValueError):
            await call.set_call_data("bad key", "x")
        await call.hangup()
        await call.hangup()  # no-op on a channel already hung up
        return [first, second]

    result, t = await run(flow, variables={"QUEUESTATUS": "TIMEOUT"}, exec_handler=on_exec)
    assert result == ["TIMEOUT", "TIMEOUT"]
    assert execs == [("Queue", "support"), ("Queue", "support-vip,,,,300")]
    assert t.commands == ['SAY DIGITS 01012345678 ""', 'SET VARIABLE CONTACTD_IVR_CHOICE "2"',
                          "EXEC Queue support", "GET VARIABLE QUEUESTATUS", "EXEC Queue support-vip,,,,300",
                          "GET VARIABLE QUEUESTATUS", "HANGUP"]


@pytest.mark.parametrize("hangup_during", ["STREAM FILE", "GET DATA", "SAY DIGITS"])
async def test_hangup_surfaces_as_caller_hung_up(hangup_during: str) -> None:
    async def flow(call: CallSession) -> None:
        await call.play("greeting")
        await call.read("menu", max_digits=1, timeout_s=5)
        await call.say_digits("123")
        await call.play("goodbye")

    result, t = await run(flow, ["1"], hangup_during=hangup_during)
    assert isinstance(result, CallerHungUp)
    assert t.hung_up
    assert t.commands[-1].startswith(hangup_during)  # nothing more was sent to the dead channel


async def test_hangup_notice_between_commands_raises_on_next_call() -> None:
    async def flow(call: CallSession) -> None:
        await call.play("greeting")
        await asyncio.sleep(0.05)  # the HANGUP notice lands while the flow is busy elsewhere
        await call.read("menu", max_digits=1, timeout_s=5)

    result, t = await run(flow, hangup_after=1)
    assert isinstance(result, CallerHungUp)
    assert t.commands == ['STREAM FILE contactd/greeting ""']
