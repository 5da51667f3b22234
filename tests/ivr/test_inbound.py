"""The inbound flow end to end: real FastAGI server, simulated Asterisk caller, real SQLite (and PostgreSQL)."""

from __future__ import annotations

import logging
from datetime import date

import pytest
from ivr_rig import CLOSED_TIME, OPEN_TIME, IVRRig
from sqlalchemy import select

from contactd.store.models import Customer
from contactd.store.models.blacklist import BlockedAttempt
from contactd.store.models.callbacks import Callback

UID = "1795385863.1"


def prompts(transcript) -> list[str]:  # type: ignore[no-untyped-def]
    return [name.removeprefix("contactd/") for name in transcript.streamed]


async def callbacks(rig: IVRRig) -> list[Callback]:
    async with rig.services.db.session() as session:
        return list(await session.scalars(select(Callback).order_by(Callback.id)))


async def add_customer(rig: IVRRig, **fields) -> Customer:  # type: ignore[no-untyped-def]
    customer = Customer(**fields)
    async with rig.services.db.transaction() as session:
        session.add(customer)
    return customer


# ------------------------------------------------------------------------------------------- open hours


async def test_open_menu_1_queues_support_with_choice(rig: IVRRig) -> None:
    t = await rig.call(["1"], uniqueid=UID)
    assert prompts(t) == ["greeting", "menu", "connecting"]
    assert t.commands[0] == "ANSWER"
    assert "GET DATA contactd/menu 5000 1" in t.commands
    assert 'SET VARIABLE CONTACTD_IVR_CHOICE "1"' in t.commands
    assert rig.execs == [("Queue", "support")]
    assert rig.tracker.choices == {UID: "1"}
    assert t.commands[-1] == "HANGUP"
    assert t.closed_by == "server"  # the flow closed the socket promptly (Asterisk never does)


async def test_zero_goes_to_an_agent(rig: IVRRig) -> None:
    t = await rig.call(["0"])
    assert prompts(t) == ["greeting", "menu", "connecting"]
    assert 'SET VARIABLE CONTACTD_IVR_CHOICE "0"' in t.commands
    assert rig.execs == [("Queue", "support")]


async def test_three_wrong_keys_go_to_an_agent(rig: IVRRig) -> None:
    t = await rig.call(["7", "*", "9"])
    assert prompts(t) == ["greeting", "menu", "invalid", "menu", "invalid", "menu", "invalid", "connecting"]
    assert rig.execs == [("Queue", "support")]
    assert not any("IVR_CHOICE" in c for c in t.commands)
    assert rig.tracker.choices == {}


async def test_wrong_key_then_valid_choice(rig: IVRRig) -> None:
    t = await rig.call(["5", "2"], uniqueid=UID)
    assert prompts(t) == ["greeting", "menu", "invalid", "menu", "connecting"]
    assert rig.tracker.choices == {UID: "2"}


async def test_three_timeouts_go_to_an_agent(rig: IVRRig) -> None:
    t = await rig.call([])
    assert prompts(t) == ["greeting", "menu", "menu", "menu", "connecting"]
    assert rig.execs == [("Queue", "support")]


async def test_vip_customer_goes_to_vip_queue(rig: IVRRig) -> None:
    await add_customer(rig, name="김태희", mobile="01012345678", vip=True)
    t = await rig.call(["3"], callerid="010-1234-5678")
    assert prompts(t) == ["greeting", "menu", "vip-connecting"]
    assert rig.execs == [("Queue", "support-vip")]


async def test_known_non_vip_customer_goes_to_normal_queue(rig: IVRRig) -> None:
    await add_customer(rig, name="홍길동", phone="0212345678", vip=False)
    await rig.call(["1"], callerid="0212345678")
    assert rig.execs == [("Queue", "support")]


async def test_queue_without_agents_offers_a_callback(rig: IVRRig) -> None:
    rig.queue_status = "JOINEMPTY"
    t = await rig.call(["1", "#", "1"])
    assert prompts(t)[:3] == ["greeting", "menu", "connecting"]
    assert prompts(t)[3:] == ["no-agents", "callback-ask", "callback-readback", "callback-confirm", "callback-saved", "goodbye"]
    [cb] = await callbacks(rig)
    assert cb.number == "01012345678"


async def test_hangup_during_menu_is_logged_and_nothing_queued(rig: IVRRig, caplog: pytest.LogCaptureFixture
                                                               ) -> None:
    caplog.set_level(logging.INFO, logger="contactd.ivr.inbound")
    t = await rig.call(["1"], hangup_during="GET DATA contactd/menu", uniqueid=UID)
    assert t.hung_up
    assert rig.execs == []
    assert rig.tracker.choices == {}
    assert t.commands[-1].startswith("GET DATA contactd/menu")  # nothing sent after the hang-up
    assert f"inbound {UID} from 01012345678: caller hung up during menu" in caplog.text


# ------------------------------------------------------------------------------------------- blacklist


async def test_blacklisted_caller_hears_blocked_and_is_hung_up(rig: IVRRig) -> None:
    await rig.services.blacklist.add("010-1234-5678", "악성", "폭언")
    t = await rig.call(["1"], uniqueid=UID)
    assert prompts(t) == ["blocked"]
    assert t.commands[-1] == "HANGUP"
    assert not any(c.startswith(("GET DATA", "EXEC")) for c in t.commands)
    async with rig.services.db.session() as session:
        [attempt] = list(await session.scalars(select(BlockedAttempt)))
    assert (attempt.number, attempt.uniqueid, attempt.at) == ("01012345678", UID, OPEN_TIME)


async def test_blacklist_applies_after_hours_too(rig: IVRRig) -> None:
    rig.now[0] = CLOSED_TIME
    await rig.services.blacklist.add("01012345678")
    t = await rig.call(["#", "1"])
    assert prompts(t) == ["blocked"]
    assert await callbacks(rig) == []


async def test_anonymous_caller_is_not_matched_against_the_blacklist(rig: IVRRig) -> None:
    await rig.services.blacklist.add("01012345678")
    t = await rig.call(["1"], callerid="anonymous")
    assert prompts(t) == ["greeting", "menu", "connecting"]


# ------------------------------------------------------------------------------------------- after hours


async def test_closed_typed_number_confirmed_saves_callback(any_rig: IVRRig) -> None:
    rig = any_rig
    rig.now[0] = CLOSED_TIME
    customer = await add_customer(rig, name="홍길동", mobile="01012345678")
    sub = rig.services.bus.subscribe("callback.*")
    t = await rig.call(["0298765432#", "1"], uniqueid=UID)
    assert prompts(t) == ["after-hours", "callback-ask", "callback-readback", "callback-confirm", "callback-saved",
                          "goodbye"]
    assert "GET DATA contactd/callback-ask 8000 12" in t.commands
    assert 'SAY DIGITS 0298765432 ""' in t.commands
    assert t.commands[-1] == "HANGUP"
    [cb] = await callbacks(rig)
    assert (cb.number, cb.caller_id, cb.uniqueid, cb.customer_id) == ("0298765432", "01012345678", UID, customer.id)
    assert cb.captured_at == CLOSED_TIME and cb.done is False
    event = await sub.get(2.0)
    assert (event.topic, event.payload["id"], event.payload["customer_id"]) == ("callback.captured", cb.id,
                                                                                customer.id)


async def test_hash_alone_means_the_calling_number(rig: IVRRig) -> None:
    rig.now[0] = CLOSED_TIME
    t = await rig.call(["#", "1"], callerid="+82 10 5555 6666")
    assert 'SAY DIGITS 01055556666 ""' in t.commands
    [cb] = await callbacks(rig)
    assert (cb.number, cb.caller_id, cb.customer_id) == ("01055556666", "01055556666", None)


async def test_typed_number_of_a_known_customer_links_the_customer(rig: IVRRig) -> None:
    rig.now[0] = CLOSED_TIME
    customer = await add_customer(rig, name="이몽룡", mobile="01077778888")
    await rig.call(["01077778888#", "1"], callerid="anonymous")
    [cb] = await callbacks(rig)
    assert (cb.number, cb.caller_id, cb.customer_id) == ("01077778888", "", customer.id)


async def test_letters_too_short_then_valid_number(rig: IVRRig) -> None:
    rig.now[0] = CLOSED_TIME
    t = await rig.call(["0101234A678#", "12345678#", "01098765432#", "1"])
    assert prompts(t) == ["after-hours", "callback-ask", "callback-invalid", "callback-ask", "callback-invalid",
                          "callback-ask", "callback-readback", "callback-confirm", "callback-saved", "goodbye"]
    [cb] = await callbacks(rig)
    assert cb.number == "01098765432"


async def test_star_too_long_and_silence_three_times_end_with_goodbye(rig: IVRRig) -> None:
    rig.now[0] = CLOSED_TIME
    t = await rig.call(["010*1234567#", "010123456789", ""])
    assert prompts(t) == ["after-hours", "callback-ask", "callback-invalid", "callback-ask", "callback-invalid",
                          "callback-ask", "callback-invalid", "goodbye"]
    assert not any(c.startswith("SAY DIGITS") for c in t.commands)
    assert t.commands[-1] == "HANGUP"
    assert await callbacks(rig) == []


async def test_hash_alone_from_anonymous_caller_is_refused(rig: IVRRig) -> None:
    rig.now[0] = CLOSED_TIME
    t = await rig.call(["#", "0212345678#", "1"], callerid="unknown")
    assert prompts(t)[:3] == ["after-hours", "callback-ask", "callback-invalid"]
    [cb] = await callbacks(rig)
    assert (cb.number, cb.caller_id) == ("0212345678", "")


async def test_two_re_enters_the_number(rig: IVRRig) -> None:
    rig.now[0] = CLOSED_TIME
    t = await rig.call(["01011112222#", "2", "01033334444#", "1"])
    says = [c for c in t.commands if c.startswith("SAY DIGITS")]
    assert says == ['SAY DIGITS 01011112222 ""', 'SAY DIGITS 01033334444 ""']
    [cb] = await callbacks(rig)
    assert cb.number == "01033334444"


async def test_never_confirming_saves_nothing(rig: IVRRig) -> None:
    rig.now[0] = CLOSED_TIME
    t = await rig.call(["01011112222#", "", "9", ""])
    assert prompts(t)[-1] == "goodbye"
    assert await callbacks(rig) == []


@pytest.mark.parametrize("hangup_during, stage", [
    ("GET DATA contactd/callback-ask", "callback-entry"),
    ("SAY DIGITS", "callback-readback"),
    ("GET DATA contactd/callback-confirm", "callback-readback"),
    ("STREAM FILE contactd/after-hours", "after-hours"),
])
async def test_hangup_during_callback_capture_saves_nothing(rig: IVRRig, caplog: pytest.LogCaptureFixture,
                                                            hangup_during: str, stage: str) -> None:
    caplog.set_level(logging.INFO, logger="contactd.ivr.inbound")
    rig.now[0] = CLOSED_TIME
    t = await rig.call(["01011112222#", "1"], hangup_during=hangup_during, uniqueid=UID)
    assert t.hung_up
    assert await callbacks(rig) == []
    assert f"caller hung up during {stage}" in caplog.text
    assert t.closed_by == "server"


async def test_holiday_on_a_weekday_is_after_hours(rig: IVRRig) -> None:
    await rig.services.hours.add_holiday(date(2026, 11, 25), "창립기념일")
    t = await rig.call(["#", "1"])
    assert prompts(t)[0] == "after-hours"
    assert rig.execs == []


async def test_broken_hours_check_still_reaches_agents(rig: IVRRig) -> None:
    async def broken(_at):  # type: ignore[no-untyped-def]
        raise RuntimeError("database is down")

    rig.services.hours.is_open = broken  # type: ignore[method-assign]
    await rig.call(["1"])
    assert rig.execs == [("Queue", "support")]


# ------------------------------------------------------------------------------------------- dialplan hand-off

DONE = 'SET VARIABLE CONTACTD_IVR_DONE "1"'


async def test_first_commands_answer_and_switch_the_channel_to_korean(rig: IVRRig) -> None:
    # SAY DIGITS looks for digits/<d> in the channel language: ko is where `contactd prompts install` puts ours.
    t = await rig.call(["1"])
    assert t.commands[:3] == ["ANSWER", 'SET VARIABLE CHANNEL(language) "ko"', 'STREAM FILE contactd/greeting ""']
    rig.now[0] = CLOSED_TIME
    t = await rig.call(["#", "1"])
    assert t.commands[1] == 'SET VARIABLE CHANNEL(language) "ko"'
    assert t.commands.index('SET VARIABLE CHANNEL(language) "ko"') < \
        next(i for i, c in enumerate(t.commands) if c.startswith("SAY DIGITS"))


async def test_done_flag_is_set_right_before_the_queue(rig: IVRRig) -> None:
    t = await rig.call(["1"])
    queue = t.commands.index("EXEC Queue support")
    assert t.commands[queue - 1] == DONE
    assert t.commands.count(DONE) == 1


@pytest.mark.parametrize("keys, closed, blocked", [
    (["#", "1"], True, False),  # callback saved
    (["", "", ""], True, False),  # no callback left: goodbye
    (["1"], False, True),  # blacklisted
])
async def test_done_flag_is_set_before_the_ivr_ends_the_call(rig: IVRRig, keys: list[str], closed: bool,
                                                             blocked: bool) -> None:
    if closed:
        rig.now[0] = CLOSED_TIME
    if blocked:
        await rig.services.blacklist.add("01012345678")
    t = await rig.call(keys)
    assert t.commands[-1] == "HANGUP"
    done = t.commands.index(DONE)
    # Set before the last prompt: if contactd died while it played, the dialplan must not queue the caller.
    last_prompt = max(i for i, c in enumerate(t.commands) if c.startswith("STREAM FILE"))
    assert done < last_prompt < len(t.commands) - 1
    assert not any(c.startswith("EXEC Queue") for c in t.commands)


async def test_done_flag_is_not_set_while_the_ivr_still_has_the_caller(rig: IVRRig) -> None:
    # Hung up in the menu: the flag was never set (a crash there would have sent the caller to the queue).
    t = await rig.call(["1"], hangup_during="GET DATA contactd/menu")
    assert DONE not in t.commands
    # The queue had no agents and the IVR takes the caller back for a callback: the flag is cleared until the
    # callback is saved.
    rig.queue_status = "JOINEMPTY"
    t = await rig.call(["1", "#", "1"])
    queue = t.commands.index("EXEC Queue support")
    cleared = t.commands.index('SET VARIABLE CONTACTD_IVR_DONE "0"')
    assert t.commands[queue - 1] == DONE and queue < cleared
    assert cleared < t.commands.index("GET DATA contactd/callback-ask 8000 12")
    assert t.commands.index(DONE, cleared) < t.commands.index('STREAM FILE contactd/callback-saved ""')
