"""SMS rules from seeds 003 §22 and 000 ch. 5: sizes, placeholders, opt-out, quiet hours, scheduling, gateway."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sms_standin import StandinGateway

from contactd.config import SmsConfig
from contactd.crm.sms import Recipient, SmsService, SmsTemplateService, parse_quiet_hours, quiet_until
from contactd.crm.sms_gateways import HttpGateway, OutboxGateway
from contactd.crm.sms_text import (
    SmsError,
    fill,
    measure,
    parse_bulk,
    text_bytes,
    validate_image,
    validate_message,
    validate_sender,
)
from contactd.store.db import Database
from contactd.store.models import Customer

NOON_SEOUL = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)  # 12:00 Asia/Seoul


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.mark.parametrize(
    ("text", "size"),
    [("hello", 5), ("안녕하세요", 10), ("주문 #123 확인", 14), ("똠방각하", 8), ("감사합니다 😀", 13), ("", 0),
     ("줄\r\n바꿈", 7)],
)
def test_bytes_are_counted_in_euc_kr(text: str, size: int) -> None:
    assert text_bytes(text) == size


def test_kind_boundaries() -> None:
    assert measure("가" * 40).kind == "SMS"  # 80 bytes
    assert measure("가" * 40 + "a").kind == "LMS"  # 81 bytes
    assert measure("a" * 80).kind == "SMS" and measure("a" * 81).kind == "LMS"
    assert measure("짧음", has_image=True).kind == "MMS"
    validate_message("가" * 1000, "제목")  # exactly 2,000 bytes
    with pytest.raises(SmsError, match="2000"):
        validate_message("가" * 1000 + "a", "제목")
    with pytest.raises(SmsError, match="제목"):
        validate_message("a" * 81)
    assert measure("😀").unsupported == ["😀"]


def test_placeholders_and_bulk_paste() -> None:
    assert fill("{고객명}님, {오늘날짜} 주문 확인", name="홍길동", today=date(2026, 11, 24)) == \
        "홍길동님, 2026-11-24 주문 확인"
    parsed = parse_bulk("010-1234-5678\n01012345678\n\n02-123-4567\nabc\n011-234-5678\n")
    assert parsed.numbers == ["01012345678", "0112345678"]
    assert parsed.duplicates == 1 and [n for n, _ in parsed.invalid] == [4, 5]


@pytest.mark.parametrize("number", ["030-1234-5678", "0601234567", "800-123-4567", "12"])
def test_refused_sender_numbers(number: str) -> None:
    with pytest.raises(SmsError):
        validate_sender(number)
    assert validate_sender("02-1234-5678") == "0212345678"


def test_image_limits() -> None:
    with pytest.raises(SmsError, match="JPG"):
        validate_image(b"\x89PNG\r\n\x1a\n" + b"0" * 100, max_kb=300)
    with pytest.raises(SmsError, match="300KB"):
        validate_image(b"\xff\xd8\xff" + b"0" * 301 * 1024, max_kb=300)
    assert validate_image(b"\xff\xd8\xff" + b"0" * 1000, max_kb=300) == "image/jpeg"


def test_quiet_hours_span_midnight() -> None:
    quiet = parse_quiet_hours("21:00-08:00")
    at_2230 = datetime(2026, 11, 24, 13, 30, tzinfo=UTC)  # 22:30 Seoul
    assert quiet_until(at_2230, quiet) == datetime(2026, 11, 24, 23, 0, tzinfo=UTC)  # 08:00 Seoul next day
    assert quiet_until(NOON_SEOUL, quiet) is None


def config(tmp_path: Path, **overrides: object) -> SmsConfig:
    return SmsConfig(sender="02-1234-5678", spool_dir=str(tmp_path / "spool"), **overrides)  # type: ignore[arg-type]


async def test_opt_out_excluded_and_counted(any_db: Database, tmp_path: Path) -> None:
    async with any_db.transaction() as session:
        session.add(Customer(name="수신거부", mobile="01011112222", sms_opt_out=True))
        session.add(Customer(name="홍길동", mobile="01033334444"))
    sms = SmsService(any_db, OutboxGateway(tmp_path / "spool"), config(tmp_path), clock=Clock(NOON_SEOUL))
    people = [Recipient("01011112222", "수신거부"), Recipient("01033334444", "홍길동")]
    assert await sms.count_opted_out(people) == 1
    result = await sms.compose(people, "{고객명}님 안녕하세요")
    assert (result.recipients, result.excluded_opt_out) == (1, 1)
    assert await sms.send_due() == 1
    spooled = [json.loads(line) for line in (tmp_path / "spool" / "outbox.jsonl").read_text().splitlines()]
    assert [(m["to"], m["body"], m["kind"]) for m in spooled] == [("01033334444", "홍길동님 안녕하세요", "SMS")]


async def test_kind_follows_the_longest_filled_text(any_db: Database, tmp_path: Path) -> None:
    sms = SmsService(any_db, OutboxGateway(tmp_path / "spool"), config(tmp_path), clock=Clock(NOON_SEOUL))
    body = "{고객명}님 " + "가" * 37  # 76 bytes + the name
    short = await sms.compose([Recipient("01011112222", "김")], body)
    assert short.message.kind == "SMS"
    with pytest.raises(SmsError, match="제목"):
        await sms.compose([Recipient("01011112222", "김"), Recipient("01033334444", "남궁민수")], body)


async def test_schedule_survives_restart_and_cancel_rule(any_db: Database, tmp_path: Path) -> None:
    clock = Clock(NOON_SEOUL)
    first = SmsService(any_db, OutboxGateway(tmp_path / "spool"), config(tmp_path), clock=clock)
    at = NOON_SEOUL + timedelta(hours=1)
    keep = await first.compose([Recipient("01011112222")], "예약 발송", scheduled_at=at)
    drop = await first.compose([Recipient("01033334444")], "취소할 예약", scheduled_at=at)
    assert await first.send_due() == 0
    await first.cancel(drop.message.id)
    clock.now = at - timedelta(minutes=9)
    with pytest.raises(SmsError, match="10분"):
        await first.cancel(keep.message.id)
    # the daemon restarts: a new service over the same database sends what is due
    clock.now = at + timedelta(seconds=1)
    second = SmsService(any_db, OutboxGateway(tmp_path / "spool"), config(tmp_path), clock=clock)
    assert await second.send_due() == 1
    statuses = {row["message"].id: row["message"].status for row in
                await second.history(start=date(2026, 11, 1), end=date(2026, 11, 30))}
    assert statuses == {keep.message.id: "sent", drop.message.id: "cancelled"}
    with pytest.raises(SmsError, match="1년"):
        await second.history(start=date(2025, 11, 1), end=date(2026, 11, 30))


async def test_automatic_messages_wait_out_quiet_hours(any_db: Database, tmp_path: Path) -> None:
    night = datetime(2026, 11, 24, 13, 30, tzinfo=UTC)  # 22:30 Seoul
    clock = Clock(night)
    sms = SmsService(any_db, OutboxGateway(tmp_path / "spool"), config(tmp_path), clock=clock)
    auto = await sms.compose([Recipient("01011112222")], "배송 출발 안내", automatic=True)
    manual = await sms.compose([Recipient("01033334444")], "상담원 직접 발송")
    assert await sms.send_due() == 1  # the agent's own message goes; the automatic one waits
    waiting = await sms.scheduled()
    assert [m.id for m in waiting] == [auto.message.id]
    assert waiting[0].scheduled_at == datetime(2026, 11, 24, 23, 0, tzinfo=UTC)
    clock.now = datetime(2026, 11, 24, 23, 0, 1, tzinfo=UTC)
    assert await sms.send_due() == 1
    assert manual.message.id != auto.message.id


async def test_http_gateway_retries_without_double_sending(any_db: Database, tmp_path: Path) -> None:
    standin = StandinGateway(fail_next=2, refuse_numbers={"01099998888"})
    url = await standin.start()
    gateway = HttpGateway(config(tmp_path, driver="http", http_url=url, http_token="gw-token"), backoff=0.01)
    try:
        sms = SmsService(any_db, gateway, config(tmp_path), clock=Clock(NOON_SEOUL))
        sent = await sms.compose([Recipient("01011112222", "홍길동"), Recipient("01099998888", "없는번호")],
                                 "{고객명}님 주문이 접수되었습니다")
        await sms.send_due()
        rows = {r.number: r for r in await sms.recipients(sent.message.id)}
        assert rows["01011112222"].status == "sent" and rows["01011112222"].attempts == 1
        assert rows["01099998888"].status == "failed" and "400" in rows["01099998888"].error
        assert len(standin.delivered) == 1  # three HTTP attempts, one message on the handset
        assert standin.requests == 4
        history = await sms.history(start=date(2026, 11, 24), end=date(2026, 11, 24))
        assert (history[0]["message"].status, history[0]["sent"], history[0]["failed"]) == ("partial", 1, 1)
        # the gateway reports back: delivered on the handset
        assert await sms.apply_report(rows["01011112222"].gateway_ref, delivered=True)
        assert not await sms.apply_report("no-such-ref", delivered=True)
        assert (await sms.recipients(sent.message.id))[0].status == "delivered"
    finally:
        await gateway.close()
        await standin.close()


async def test_gateway_down_marks_failed_after_retries(any_db: Database, tmp_path: Path) -> None:
    gateway = HttpGateway(config(tmp_path, driver="http", http_url="http://127.0.0.1:9/send", http_retries=2,
                                 http_timeout=1.0), backoff=0.01)
    sms = SmsService(any_db, gateway, config(tmp_path), clock=Clock(NOON_SEOUL))
    sent = await sms.compose([Recipient("01011112222")], "테스트")
    await sms.send_due()
    await gateway.close()
    [row] = await sms.recipients(sent.message.id)
    assert row.status == "failed" and "unreachable" in row.error


async def test_template_folders(any_db: Database) -> None:
    templates = SmsTemplateService(any_db)
    top = await templates.add_folder("배송")
    sub = await templates.add_folder("지연", parent_id=top.id)
    with pytest.raises(SmsError):
        await templates.add_folder("너무 깊음", parent_id=sub.id)
    kept = await templates.save_template("지연 안내", "{고객명}님, 배송이 지연되고 있습니다.", folder_id=sub.id)
    await templates.delete_folder(top.id)
    assert await templates.folders() == []
    [survivor] = await templates.templates()
    assert survivor.id == kept.id and survivor.folder_id is None


async def test_pasted_numbers_of_customers_get_their_names(any_db: Database, tmp_path: Path) -> None:
    async with any_db.transaction() as session:
        session.add(Customer(name="홍길동", mobile="01033334444"))
    sms = SmsService(any_db, OutboxGateway(tmp_path / "spool"), config(tmp_path), clock=Clock(NOON_SEOUL))
    sent = await sms.compose([Recipient("01033334444"), Recipient("01055556666")], "{고객명}님 안녕하세요")
    rows = {r.number: r for r in await sms.recipients(sent.message.id)}
    assert rows["01033334444"].body == "홍길동님 안녕하세요" and rows["01033334444"].customer_id is not None
    assert rows["01055556666"].body == "고객님 안녕하세요"


async def test_wake_sends_at_once_without_waiting_for_the_tick(any_db: Database, tmp_path: Path) -> None:
    import asyncio

    sms = SmsService(any_db, OutboxGateway(tmp_path / "spool"), config(tmp_path), clock=Clock(NOON_SEOUL))
    stop = asyncio.Event()
    loop = asyncio.create_task(sms.run(stop, interval=60))
    try:
        await asyncio.sleep(0.1)  # the first pass found nothing; the next tick is a minute away
        sent = await sms.compose([Recipient("01011112222")], "지금 보내기")
        sms.wake()
        for _ in range(50):
            if (await sms.recipients(sent.message.id))[0].status == "sent":
                break
            await asyncio.sleep(0.05)
        assert (await sms.recipients(sent.message.id))[0].status == "sent"
    finally:
        stop.set()
        await asyncio.wait_for(loop, 5)


async def test_two_senders_racing_send_each_message_once(any_db: Database, tmp_path: Path) -> None:
    import asyncio

    spool = tmp_path / "spool"
    clock = Clock(NOON_SEOUL)
    first = SmsService(any_db, OutboxGateway(spool), config(tmp_path), clock=clock)
    second = SmsService(any_db, OutboxGateway(spool), config(tmp_path), clock=clock)
    for n in range(5):
        await first.compose([Recipient(f"0101111{n:04d}")], f"메시지 {n}")
    await asyncio.gather(first.send_due(), second.send_due())
    lines = (spool / "outbox.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 5


async def test_a_half_sent_message_is_taken_over_only_once_its_claim_is_stale(any_db: Database,
                                                                              tmp_path: Path) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from contactd.store.models import SmsMessage

    clock = Clock(NOON_SEOUL)
    spool = tmp_path / "spool"
    sms = SmsService(any_db, OutboxGateway(spool), config(tmp_path), clock=clock)
    made = await sms.compose([Recipient("01011112222"), Recipient("01033334444")], "중단된 발송")
    async with any_db.transaction() as session:  # a sender claimed it a minute ago and is still at work
        await session.execute(update(SmsMessage).where(SmsMessage.id == made.message.id)
                              .values(status="sending", sent_at=NOON_SEOUL - timedelta(minutes=1)))
    assert await sms.send_due() == 0 and not (spool / "outbox.jsonl").exists()
    clock.now = NOON_SEOUL + timedelta(minutes=5)  # six minutes after its claim: that sender is gone
    assert await sms.send_due() == 1
    assert len((spool / "outbox.jsonl").read_text(encoding="utf-8").splitlines()) == 2
    assert await sms.send_due() == 0  # settled: nothing more to send
