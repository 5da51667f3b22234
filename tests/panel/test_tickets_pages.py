"""Ticket pages and API, consultation types and the inbox through the real app (seed 004, 003 §19-21)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from panel_helpers import Panel, UserSession
from sqlalchemy import func, select

from contactd.crm.callbacks import CallbackService
from contactd.crm.customers import CustomerService
from contactd.store.db import Database
from contactd.store.models import Call, Ticket, TicketEntry, utcnow
from contactd.store.models.callbacks import Callback
from contactd.store.models.tickets import ConsultationType


async def ticket_count(db: Database) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Ticket)) or 0)


async def get_ticket(db: Database, ticket_id: int) -> Ticket:
    async with db.session() as session:
        return await session.get(Ticket, ticket_id)


async def new_ticket(user: UserSession, **fields: object) -> dict:
    status, body = await user.post_json("/api/tickets", {"title": "배송 문의", "body": "언제 오나요", **fields})
    assert status == 201, body
    return body["ticket"]


async def test_ticket_flow_through_the_api(panel: Panel, db: Database) -> None:
    kim, lee = await panel.login("kim"), await panel.login("lee")
    lee_id = panel.users["lee"].id
    customer = await CustomerService(db).create(name="홍길동", mobile="010-1234-5678")
    # Temp-save, then resume it as received (F12 → F4).
    status, body = await kim.post_json("/api/tickets", {"temp": True, "customer_id": customer.id, "title": "임시"})
    assert status == 201 and body["ticket"]["status"] == "temp"
    tid = body["ticket"]["id"]
    status, body = await kim.get_json("/api/tickets", tab="temp")
    assert [t["id"] for t in body["tickets"]] == [tid]
    status, body = await kim.post_json(f"/api/tickets/{tid}/save", {"body": "배송이 늦어요",
                                                                     "due_at": "2030-01-02T10:00"})
    assert status == 200 and body["ticket"]["status"] == "received"
    assert body["ticket"]["due_at"] == "2030-01-02T01:00:00+00:00"  # entered as Korea time
    # Transfer needs an assignee.
    status, body = await kim.post_json(f"/api/tickets/{tid}/transfer", {})
    assert status == 422 and "이관 담당자" in body["error"]
    assert (await get_ticket(db, tid)).status == "received"
    status, body = await kim.post_json(f"/api/tickets/{tid}/transfer", {"assignee_id": lee_id, "note": "확인 부탁"})
    assert status == 200 and body["ticket"]["status"] == "transferred" and body["ticket"]["assignee_id"] == lee_id
    status, counts = await lee.get_json("/api/inbox/counts")
    assert counts["received_transfers"] == 1 and counts["my_open_tickets"] == 1
    status, counts = await kim.get_json("/api/inbox/counts")
    assert counts["sent_transfers"] == 1 and counts["received_transfers"] == 0
    # Edit keeps the state; complete closes it; a completed ticket cannot be transferred again.
    status, body = await lee.post_json(f"/api/tickets/{tid}/edit", {"admin_memo": "VIP 고객"})
    assert status == 200 and body["ticket"]["status"] == "transferred"
    status, body = await lee.post_json(f"/api/tickets/{tid}/complete")
    assert status == 200 and body["ticket"]["status"] == "completed"
    status, body = await lee.post_json(f"/api/tickets/{tid}/transfer", {"assignee_id": panel.users["kim"].id})
    assert status == 422
    # Additional ticket carries the customer.
    status, body = await lee.post_json(f"/api/tickets/{tid}/additional", {"title": "추가 문의"})
    assert status == 200 and body["ticket"]["customer_id"] == customer.id
    assert body["ticket"]["parent_ticket_id"] == tid
    status, body = await kim.get_json(f"/api/tickets/{tid}")
    actions = [h["action"] for h in body["history"]]
    assert actions == ["temp_saved", "saved", "transferred", "edited", "completed"]
    status, body = await kim.get_json("/api/tickets/999999")
    assert status == 404


async def test_entry_rules_forbidden_changes_nothing(panel: Panel, db: Database) -> None:
    kim, lee = await panel.login("kim"), await panel.login("lee")
    ticket = await new_ticket(kim)
    status, body = await kim.post_json(f"/api/tickets/{ticket['id']}/entries", {"body": "첫 상담"})
    assert status == 201
    entry_id = body["entry"]["id"]
    # Someone else's entry: 403 and the text stays.
    status, body = await lee.request_json("PUT", f"/api/ticket-entries/{entry_id}", {"body": "바꿈"})
    assert status == 403
    status, body = await lee.request_json("DELETE", f"/api/ticket-entries/{entry_id}")
    assert status == 403
    async with db.session() as session:
        assert (await session.get(TicketEntry, entry_id)).body == "첫 상담"
    # The author may, within a day.
    status, body = await kim.request_json("PUT", f"/api/ticket-entries/{entry_id}", {"body": "고친 상담"})
    assert status == 200 and body["entry"]["body"] == "고친 상담"
    # After a day the author may not; a user with "edit consultations" still may.
    async with db.transaction() as session:
        (await session.get(TicketEntry, entry_id)).created_at = utcnow() - timedelta(days=2)
    status, _ = await kim.request_json("DELETE", f"/api/ticket-entries/{entry_id}")
    assert status == 403
    await panel.accounts.update_user(panel.users["lee"].id, can_edit_consultations=True)
    status, _ = await lee.request_json("DELETE", f"/api/ticket-entries/{entry_id}")
    assert status == 200
    async with db.session() as session:
        assert await session.get(TicketEntry, entry_id) is None


async def test_ticket_pages_from_a_call_and_the_button_bar(panel: Panel, db: Database) -> None:
    kim = await panel.login("kim")
    customer = await CustomerService(db).create(name="김고객", mobile="010-2222-3333")
    async with kim.http.get("/tickets/new", params={"number": "010-2222-3333", "linkedid": "1700000000.42"}) as r:
        html = await r.text()
    assert r.status == 200
    assert "김고객" in html and 'value="1700000000.42"' in html and f'value="{customer.id}"' in html
    # 접수 with nothing typed is refused and nothing is saved.
    response = await kim.form("/tickets/new", {"action": "save", "customer_id": str(customer.id)})
    assert response.status == 422 and await ticket_count(db) == 0
    response = await kim.form("/tickets/new", {"action": "save", "customer_id": str(customer.id), "title": "교환 요청",
                                               "body": "사이즈 교환", "call_linkedid": "1700000000.42",
                                               "recall_at": "2030-05-01T09:30"})
    assert response.status == 302
    tid = int(response.headers["Location"].rsplit("/", 1)[1])
    ticket = await get_ticket(db, tid)
    assert (ticket.status, ticket.call_linkedid, ticket.customer_id) == ("received", "1700000000.42", customer.id)
    # 이관 from the page without an assignee: 422, state unchanged; with one: transferred.
    response = await kim.form(f"/tickets/{tid}", {"action": "transfer", "title": "교환 요청", "assignee_id": ""})
    assert response.status == 422 and (await get_ticket(db, tid)).status == "received"
    response = await kim.form(f"/tickets/{tid}", {"action": "transfer", "title": "교환 요청(수정)",
                                                 "assignee_id": str(panel.users["lee"].id)})
    assert response.status == 302
    ticket = await get_ticket(db, tid)
    assert ticket.status == "transferred" and ticket.title == "교환 요청(수정)"
    async with kim.http.get(f"/tickets/{tid}") as r:
        html = await r.text()
    assert "담당자이관" in html and "이관" in html and "Lee" in html
    # Overdue: received more than 3 days ago → shown red in lists.
    async with db.transaction() as session:
        (await session.get(Ticket, tid)).created_at = utcnow() - timedelta(days=4)
    lee = await panel.login("lee")
    async with lee.http.get("/inbox", params={"tab": "received"}) as r:
        html = await r.text()
    assert f'class="overdue" data-ticket="{tid}"' in html
    # The customer page has a tickets tab listing it.
    async with kim.http.get(f"/customers/{customer.id}", params={"tab": "tickets"}) as r:
        html = await r.text()
    assert ticket.number in html
    # 추가접수 opens a new screen carrying the customer.
    response = await kim.form(f"/tickets/{tid}", {"action": "additional"})
    assert response.status == 302 and response.headers["Location"] == f"/tickets/new?from={tid}"
    # Logged out: pages redirect to the login, the API answers 401.
    anon = panel.anonymous()
    async with anon.get("/api/tickets") as r:
        assert r.status == 401
    async with anon.post("/api/tickets", json={"title": "x"}) as r:
        assert r.status == 401
    assert await ticket_count(db) == 1


async def test_consultation_types_are_supervisor_only(panel: Panel, db: Database) -> None:
    kim, boss = await panel.login("kim"), await panel.login("boss")
    status, _ = await kim.post_json("/api/consultation-types", {"name": "상품문의"})
    assert status == 403
    response = await kim.form("/admin/consultation-types", {"op": "add", "name": "상품문의"})
    assert response.status == 403
    async with kim.http.get("/admin/consultation-types") as r:
        assert r.status == 403
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(ConsultationType)) == 0
    status, body = await boss.post_json("/api/consultation-types", {"name": "상품문의"})
    assert status == 201
    top = body["type"]["id"]
    status, body = await boss.post_json("/api/consultation-types", {"name": "사이즈", "parent_id": top})
    assert status == 201 and body["type"]["level"] == 2
    status, body = await boss.post_json("/api/consultation-types", {"name": "상품문의"})
    assert status == 422
    response = await boss.form("/admin/consultation-types", {"op": "add", "name": "배송문의"})
    assert response.status == 302
    async with boss.http.get("/admin/consultation-types") as r:
        html = await r.text()
    assert "배송문의" in html and "사이즈" in html
    # A used type is locked.
    await new_ticket(kim, type1_id=top)
    status, body = await boss.request_json("DELETE", f"/api/consultation-types/{top}")
    assert status == 422
    status, body = await kim.get_json("/api/consultation-types")
    assert {t["name"] for t in body["types"]} == {"상품문의", "사이즈", "배송문의"}


async def test_inbox_tabs_callbacks_and_recall(panel: Panel, db: Database) -> None:
    kim = await panel.login("kim")
    customer = await CustomerService(db).create(name="콜백고객", mobile="010-5555-6666")
    callbacks = CallbackService(db, None)
    first = await callbacks.capture("010-5555-6666", customer_id=customer.id)
    await callbacks.capture("01055556666", customer_id=customer.id)
    other = await callbacks.capture("02-123-4567")
    now = utcnow()
    async with db.transaction() as session:
        session.add(Call(linkedid="L1", uniqueid="L1", direction="in", from_number="01055556666", to_number="1588",
                         agent_extension="1001", customer_id=customer.id, started_at=now, disposition="ANSWERED"))
        session.add(Call(linkedid="L2", uniqueid="L2", direction="in", from_number="0311112222", to_number="1588",
                         agent_extension="1002", started_at=now, disposition="ANSWERED"))
    status, counts = await kim.get_json("/api/inbox/counts")
    assert counts["todays_calls"] == 1 and counts["callbacks"] == 3
    async with kim.http.get("/inbox", params={"tab": "calls"}) as r:
        html = await r.text()
    assert "콜백고객" in html and "linkedid=L1" in html and "0311112222" not in html
    async with kim.http.get("/inbox", params={"tab": "callbacks"}) as r:
        html = await r.text()
    assert "이 고객 콜백 모두 완료" in html
    response = await kim.form("/inbox/callbacks/done-for-customer", {"customer_id": str(customer.id)})
    assert response.status == 302
    async with db.session() as session:
        open_ids = set(await session.scalars(select(Callback.id).where(Callback.done.is_(False))))
    assert open_ids == {other.id} and first.id not in open_ids
    status, body = await kim.post_json(f"/api/callbacks/{other.id}/done")
    assert status == 200
    # Recall list: due first, "done" takes it off.
    later = await new_ticket(kim, recall_at="2030-01-02T10:00", title="나중")
    sooner = await new_ticket(kim, recall_at="2030-01-01T10:00", title="먼저")
    async with kim.http.get("/inbox", params={"tab": "recall"}) as r:
        html = await r.text()
    assert html.index("먼저") < html.index("나중")
    response = await kim.form(f"/inbox/recall/{sooner['id']}/done", {})
    assert response.status == 302
    status, body = await kim.get_json("/api/tickets", tab="recall")
    assert [t["id"] for t in body["tickets"]] == [later["id"]]


async def test_inbox_events_push_ticket_changes(panel: Panel) -> None:
    kim, lee = await panel.login("kim"), await panel.login("lee")
    response = await lee.http.get("/api/inbox/events")
    assert response.status == 200
    await asyncio.wait_for(response.content.readline(), 5)  # "retry:": registered
    ticket = await new_ticket(kim)
    await kim.post_json(f"/api/tickets/{ticket['id']}/transfer", {"assignee_id": panel.users["lee"].id})

    async def next_event() -> str:
        while True:
            line = (await response.content.readline()).decode()
            if line.startswith("data: "):
                return line[6:].strip()

    topics = {await asyncio.wait_for(next_event(), 5), await asyncio.wait_for(next_event(), 5)}
    assert topics == {"ticket.created", "ticket.transferred"}
    response.close()


async def test_ticket_page_links_to_order_search_for_its_customer(panel: Panel, db: Database) -> None:
    kim = await panel.login("kim")
    customer = await CustomerService(db).create(name="주문고객", mobile="010-4444-5555")
    ticket = await new_ticket(kim, customer_id=customer.id)
    async with kim.http.get(f"/tickets/{ticket['id']}") as response:
        html = await response.text()
    assert f'href="/orders?ticket={ticket["id"]}&amp;phone=01044445555&amp;period=all"' in html
