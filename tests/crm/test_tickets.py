"""CS tickets (seed 004) and consultation types (seed 003 §2) on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contactd.bus import Bus
from contactd.crm.accounts import AccountService
from contactd.crm.consultation_types import ConsultationTypeError, ConsultationTypeService
from contactd.crm.tickets import TicketError, TicketForbidden, TicketService, is_overdue
from contactd.store.db import Database
from contactd.store.models import Call, User
from contactd.store.models.callbacks import Callback

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)  # 11:00 in Seoul


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def people(any_db: Database) -> dict[str, User]:
    accounts = AccountService(any_db)
    return {
        "kim": await accounts.create_user("kim", "password-kim", "agent", extension="1001"),
        "lee": await accounts.create_user("lee", "password-lee", "agent", extension="1002"),
        "boss": await accounts.create_user("boss", "password-boss", "supervisor", can_edit_consultations=True),
    }


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def tickets(any_db: Database, clock: Clock) -> TicketService:
    return TicketService(any_db, Bus(), clock=clock)


async def test_full_flow_is_written_to_history(tickets: TicketService, people: dict[str, User]) -> None:
    kim, lee = people["kim"], people["lee"]
    ticket = await tickets.create(kim, title="배송 지연", body="주문한 상품이 아직 안 왔어요")
    assert ticket.status == "received" and ticket.number == "T20261124-0001"
    with pytest.raises(TicketError, match="assignee"):
        await tickets.transfer(kim, ticket.id, None)
    await tickets.transfer(kim, ticket.id, lee.id, "택배사 확인 부탁")
    assert [t.number for t in await tickets.list(tab="received_transfers", user=lee)] == [ticket.number]
    assert [t.number for t in await tickets.list(tab="sent_transfers", user=kim)] == [ticket.number]
    await tickets.edit(lee, ticket.id, admin_memo="CJ 문의 완료")
    assert (await tickets.get(ticket.id)).status == "transferred"  # edit never changes the state
    await tickets.complete(lee, ticket.id)
    with pytest.raises(TicketError):
        await tickets.discard(lee, ticket.id)
    history = [(h.action, h.user_id) for h in await tickets.history(ticket.id)]
    assert history == [("created", kim.id), ("transferred", kim.id), ("edited", lee.id), ("completed", lee.id)]


async def test_temp_save_resume_and_additional_ticket(tickets: TicketService, people: dict[str, User]) -> None:
    kim = people["kim"]
    draft = await tickets.create(kim, temp=True, body="작성 중")
    assert [t.id for t in await tickets.list(tab="temp", user=kim)] == [draft.id]
    assert await tickets.list(tab="my_open", user=kim) == []
    resumed = await tickets.save(kim, draft.id, title="반품 문의")
    assert resumed.status == "received"
    extra = await tickets.additional(kim, draft.id, title="추가 접수")
    assert extra.parent_ticket_id == draft.id and extra.number.endswith("-0002")
    assert extra.status == "received"


async def test_entry_rules(tickets: TicketService, people: dict[str, User], clock: Clock) -> None:
    kim, lee, boss = people["kim"], people["lee"], people["boss"]
    ticket = await tickets.create(kim, title="문의")
    mine = await tickets.add_entry(kim, ticket.id, "고객에게 안내함")
    with pytest.raises(TicketForbidden):
        await tickets.delete_entry(lee, mine.id)  # not the author, no permission
    clock.now = NOW + timedelta(days=1, minutes=1)
    with pytest.raises(TicketForbidden, match="1일"):
        await tickets.delete_entry(kim, mine.id)  # the author, but too late
    await tickets.edit_entry(boss, mine.id, "수정된 안내")  # "edit consultations" may edit any
    await tickets.delete_entry(boss, mine.id)
    assert await tickets.entries(ticket.id) == []
    fresh = await tickets.add_entry(kim, ticket.id, "다시 안내")
    await tickets.delete_entry(kim, fresh.id)  # within a day: the author may delete


async def test_overdue_rule(tickets: TicketService, people: dict[str, User], clock: Clock) -> None:
    plain = await tickets.create(people["kim"], title="일반")
    due = await tickets.create(people["kim"], title="기한", due_at=NOW + timedelta(hours=2))
    assert not is_overdue(plain, NOW) and not is_overdue(due, NOW)
    assert is_overdue(due, NOW + timedelta(hours=3))
    assert not is_overdue(plain, NOW + timedelta(days=2, hours=23))
    assert is_overdue(plain, NOW + timedelta(days=3, minutes=1))
    done = await tickets.complete(people["kim"], plain.id)
    assert not is_overdue(done, NOW + timedelta(days=30))


async def test_recall_list_orders_due_first(tickets: TicketService, people: dict[str, User]) -> None:
    kim = people["kim"]
    later = await tickets.create(kim, title="나중", recall_at=NOW + timedelta(hours=5))
    sooner = await tickets.create(kim, title="먼저", recall_at=NOW + timedelta(hours=1))
    await tickets.create(kim, title="리콜 없음")
    assert [t.id for t in await tickets.list(tab="recall")] == [sooner.id, later.id]
    await tickets.mark_recall_done(kim, sooner.id)
    assert [t.id for t in await tickets.list(tab="recall")] == [later.id]


async def test_inbox_counts(any_db: Database, tickets: TicketService, people: dict[str, User]) -> None:
    kim, lee = people["kim"], people["lee"]
    for n in range(3):
        ticket = await tickets.create(kim, title=f"문의 {n}")
        if n < 2:
            await tickets.transfer(kim, ticket.id, lee.id)
    async with any_db.transaction() as session:
        session.add(Call(linkedid="a", uniqueid="a", direction="in", agent_extension="1001", started_at=NOW))
        session.add(Call(linkedid="b", uniqueid="b", direction="in", agent_extension="1001",
                         started_at=NOW - timedelta(days=1)))
        session.add(Callback(number="01012345678", caller_id="01012345678", captured_at=NOW))
        session.add(Callback(number="0212345678", caller_id="", captured_at=NOW, done=True))
    kim_counts = await tickets.inbox_counts(kim)
    lee_counts = await tickets.inbox_counts(lee)
    assert (kim_counts.todays_calls, kim_counts.sent_transfers, kim_counts.my_open_tickets) == (1, 2, 1)
    assert (lee_counts.received_transfers, lee_counts.my_open_tickets, lee_counts.todays_calls) == (2, 2, 0)
    assert kim_counts.callbacks == lee_counts.callbacks == 1  # the shop's open after-hours callbacks


async def test_consultation_types(any_db: Database, tickets: TicketService, people: dict[str, User]) -> None:
    types = ConsultationTypeService(any_db)
    delivery = await types.add("배송")
    delay = await types.add("지연", parent_id=delivery.id)
    courier = await types.add("택배사", parent_id=delay.id)
    with pytest.raises(ConsultationTypeError, match="3"):
        await types.add("너무 깊음", parent_id=courier.id)
    with pytest.raises(ConsultationTypeError, match="같은 단계"):
        await types.add("배송")
    await types.rename(delay.id, "배송 지연")
    await tickets.create(people["kim"], title="지연", type1_id=delivery.id, type2_id=delay.id)
    with pytest.raises(ConsultationTypeError, match="사용된"):
        await types.rename(delay.id, "다른 이름")
    with pytest.raises(ConsultationTypeError, match="사용된"):
        await types.delete(delivery.id)
    await types.delete(courier.id)
    tree = await types.tree()
    assert [(n.name, n.used, [c.name for c in n.children]) for n in tree] == [("배송", True, ["배송 지연"])]
